//! Which partitions of a range anything in the state still names: what the partition allocator asks
//! before it gives a key back to the range, so that a key never goes to another network while a pod
//! of this one may still be joined to it.

use std::collections::BTreeSet;

use crate::PKey;
use crate::phase::StartPhase;
use crate::pkey::PKeyRange;

use super::State;

impl State {
    /// The keys of `range` that a claim names (a pod planned into the partition, configured on it or
    /// leaving it), that a stored or written record names, that a subnet-manager change in flight or of
    /// unknown outcome touches, or in which the subnet manager still has pool GUIDs.
    ///
    /// `None` until this leadership has read who owns what: before that an empty answer would mean
    /// nothing. A claim is made when a pod is planned, before its record is written, so a key this
    /// finds unnamed after the key was withdrawn from the planner cannot be joined by anyone.
    pub fn pkeys_claimed(&self, range: PKeyRange) -> Option<BTreeSet<PKey>> {
        if !matches!(self.phase, StartPhase::Running) {
            return None;
        }
        let claims = self.owners.ledger().iter().filter_map(|(_, claim)| claim.pkey);
        let records = self.records.iter().filter_map(|(_, stored)| stored.pkey);
        let mut named: BTreeSet<PKey> =
            claims.chain(records).chain(self.owners.pkeys_in_flight()).filter(|k| range.contains(*k)).collect();
        named.extend(range.iter().filter(|k| self.owners.sm().has_members(*k)));
        Some(named)
    }
}
