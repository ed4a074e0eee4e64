//! Who holds which GUID of the pool range: the ledger's owners, the subnet manager's known memberships,
//! the membership changes in flight and those whose outcome is unknown.
//!
//! Invariant: for every GUID of the range, the pool has it allocated exactly when one of those holds it,
//! so a GUID is never generated while anything still holds it. Every method that changes a holder
//! brings the pool in step before it returns; nothing outside this module can change a holder.
//!
//! A GUID going back to the pool clears its last failure, ends an exhaustion, wakes every pod waiting
//! for a release (`take_woken`) and is reported in the next plan (`take_released`): those consequences
//! live here too, so no caller can forget one. The GUIDs already reported as in a partition that no
//! record explains are remembered here as well.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::guid::Guid;
use crate::ledger::{Claim, Ledger};
use crate::membership::{Partition, SmMembership};
use crate::pkey::PKey;
use crate::pod::{InterfaceKey, PodUid};
use crate::pool::{GuidPool, GuidRange};
use crate::state::{SmFailure, SmOp};

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Ownership {
    range: GuidRange,
    pool: GuidPool,
    ledger: Ledger,
    sm: SmMembership,
    /// At most one subnet-manager change in flight per GUID keeps the known membership exact.
    sm_ops: HashMap<Guid, (SmOp, PKey)>,
    /// GUIDs whose last change has an unknown outcome, with that change: held, and left alone, until
    /// a listing asked for after the outcome says where they are.
    uncertain: HashMap<Guid, (SmOp, PKey)>,
    /// GUIDs whose last request certainly failed, with the kind of failure; left alone until retried.
    sm_failed: HashMap<Guid, &'static str>,
    /// Per node, how many claims use each partition (the per-node pkey limit).
    node_pkeys: HashMap<String, BTreeMap<PKey, usize>>,
    /// A listing was asked for because the pool ran out, and nothing was released since.
    exhaustion_listed: bool,
    /// Pool GUIDs in partitions that no record explains, already reported.
    unrecorded: HashSet<Guid>,
    /// Pods waiting for a GUID to be released (pool exhausted, requested GUID in use).
    blocked_on_release: HashSet<PodUid>,
    /// Pods woken by a release, to be planned again.
    woken: Vec<PodUid>,
    /// GUIDs returned to the pool since the last plan, in order.
    released: Vec<Guid>,
}

impl Ownership {
    pub(crate) fn new(range: GuidRange) -> Self {
        Ownership {
            range,
            pool: GuidPool::new(range),
            ledger: Ledger::default(),
            sm: SmMembership::default(),
            sm_ops: HashMap::new(),
            uncertain: HashMap::new(),
            sm_failed: HashMap::new(),
            node_pkeys: HashMap::new(),
            exhaustion_listed: false,
            unrecorded: HashSet::new(),
            blocked_on_release: HashSet::new(),
            woken: Vec::new(),
            released: Vec::new(),
        }
    }

    /// A new leadership: nothing is owned, known or in flight until it is read again. Whether the pool
    /// ran out since the last release is kept, and so are wake-ups and releases not yet taken.
    pub(crate) fn forget_all(&mut self) {
        self.pool = GuidPool::new(self.range);
        self.ledger = Ledger::default();
        self.sm = SmMembership::default();
        self.sm_ops.clear();
        self.uncertain.clear();
        self.sm_failed.clear();
        self.node_pkeys.clear();
        self.unrecorded.clear();
        self.blocked_on_release.clear();
    }

    // === reading ===

    pub(crate) fn range(&self) -> GuidRange {
        self.range
    }

    pub(crate) fn pool(&self) -> &GuidPool {
        &self.pool
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub(crate) fn sm(&self) -> &SmMembership {
        &self.sm
    }

    /// The partitions of the subnet-manager changes in flight or of unknown outcome.
    pub(crate) fn pkeys_in_flight(&self) -> impl Iterator<Item = PKey> + '_ {
        self.sm_ops.values().chain(self.uncertain.values()).map(|(_, pkey)| *pkey)
    }

    pub(crate) fn is_configured(&self, g: Guid) -> bool {
        self.ledger.get(g).is_some_and(|c| c.configured)
    }

    /// Whether any membership change is in flight.
    pub(crate) fn has_in_flight(&self) -> bool {
        !self.sm_ops.is_empty()
    }

    /// Whether a membership change for `g` is in flight.
    pub(crate) fn op_in_flight(&self, g: Guid) -> bool {
        self.sm_ops.contains_key(&g)
    }

    pub(crate) fn is_uncertain(&self, g: Guid) -> bool {
        self.uncertain.contains_key(&g)
    }

    /// GUIDs whose last change has an unknown outcome.
    pub(crate) fn uncertain_guids(&self) -> impl Iterator<Item = Guid> + '_ {
        self.uncertain.keys().copied()
    }

    pub(crate) fn uncertain_count(&self) -> usize {
        self.uncertain.len()
    }

    /// The kind of failure of `g`'s last request, while it waits to be retried.
    pub(crate) fn failure(&self, g: Guid) -> Option<&'static str> {
        self.sm_failed.get(&g).copied()
    }

    #[cfg(test)]
    pub(crate) fn failed_guids(&self) -> impl Iterator<Item = Guid> + '_ {
        self.sm_failed.keys().copied()
    }

    /// How many claims use each partition on `node`.
    pub(crate) fn node_pkeys(&self, node: &str) -> Option<&BTreeMap<PKey, usize>> {
        self.node_pkeys.get(node)
    }

    pub(crate) fn unrecorded_count(&self) -> usize {
        self.unrecorded.len()
    }

    // === owners ===

    /// Records `owner`'s claim on the unclaimed `g`.
    pub(crate) fn claim(
        &mut self,
        g: Guid,
        owner: InterfaceKey,
        pkey: Option<PKey>,
        node: Option<Arc<str>>,
        configured: bool,
    ) {
        self.count_node_pkey(node.as_deref(), pkey, true);
        self.ledger.insert(g, Claim { owner, pkey, node, configured });
        self.sync(g);
    }

    /// Claims a fresh GUID of the pool for `owner`; `None` if the pool ran out.
    pub(crate) fn generate(&mut self, owner: InterfaceKey, pkey: Option<PKey>, node: Option<Arc<str>>) -> Option<Guid> {
        let g = self.pool.generate().ok()?;
        self.count_node_pkey(node.as_deref(), pkey, true);
        self.ledger.insert(g, Claim { owner, pkey, node, configured: false });
        Some(g)
    }

    /// Drops an owner; the GUID returns to the pool once nothing else holds it. Whether there was one.
    pub(crate) fn unclaim(&mut self, g: Guid) -> bool {
        let Some(claim) = self.ledger.remove(g) else { return false };
        self.count_node_pkey(claim.node.as_deref(), claim.pkey, false);
        self.sync(g);
        true
    }

    /// Changes the partition a claimed GUID must join.
    pub(crate) fn set_claim_pkey(&mut self, g: Guid, pkey: Option<PKey>) {
        let Some((node, old)) = self.ledger.get(g).map(|c| (c.node.clone(), c.pkey)) else { return };
        self.count_node_pkey(node.as_deref(), old, false);
        self.count_node_pkey(node.as_deref(), pkey, true);
        if let Some(c) = self.ledger.get_mut(g) {
            c.pkey = pkey;
        }
    }

    /// The owner's pod was (or may have been) marked configured with `g`.
    pub(crate) fn mark_configured(&mut self, g: Guid) {
        if let Some(c) = self.ledger.get_mut(g) {
            c.configured = true;
        }
    }

    fn count_node_pkey(&mut self, node: Option<&str>, pkey: Option<PKey>, add: bool) {
        let (Some(node), Some(pkey)) = (node, pkey) else { return };
        let counts = self.node_pkeys.entry(node.to_owned()).or_default();
        let n = counts.entry(pkey).or_insert(0);
        if add {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&pkey);
                if counts.is_empty() {
                    self.node_pkeys.remove(node);
                }
            }
        }
    }

    // === the subnet manager ===

    /// A change for `g` is sent.
    pub(crate) fn start_op(&mut self, g: Guid, op: (SmOp, PKey)) {
        self.sm_ops.insert(g, op);
        self.sync(g);
    }

    /// A change for `g` ended. `false` if it was not the change in flight for `g` (asked before this
    /// leadership began): then nothing changes, and the next listing tells.
    pub(crate) fn finish_op(&mut self, g: Guid, op: SmOp, pkey: PKey, result: &Result<(), SmFailure>) -> bool {
        if self.sm_ops.get(&g) != Some(&(op, pkey)) {
            return false;
        }
        self.sm_ops.remove(&g);
        match result {
            Ok(()) => {
                match op {
                    SmOp::Add => self.sm.add(g, pkey),
                    SmOp::Remove => self.sm.remove(g, pkey),
                }
                self.sm_failed.remove(&g);
            }
            Err(failure) => {
                if failure.unknown {
                    // Maybe applied, maybe not: neither given away nor changed again until a listing
                    // asked for after now says which.
                    self.uncertain.insert(g, (op, pkey));
                }
                // Either way the next attempt waits for the caller's backoff.
                self.sm_failed.insert(g, failure.kind);
            }
        }
        self.sync(g);
        true
    }

    /// Lets a GUID whose request failed be tried again; whether it had failed.
    pub(crate) fn retry(&mut self, g: Guid) -> bool {
        self.sm_failed.remove(&g).is_some()
    }

    /// A listing says `g` is in `partitions`; `settles`: it also settles what an unknown outcome did to
    /// `g`.
    /// Makes room in the membership table for a listing of `guids` GUIDs.
    pub(crate) fn reserve_listed(&mut self, guids: usize) {
        self.sm.reserve(guids.saturating_sub(self.sm.len()));
    }

    pub(crate) fn listed(&mut self, g: Guid, partitions: Option<&[Partition]>, settles: bool) {
        if settles {
            self.uncertain.remove(&g);
        }
        if self.sm.partitions(g) != partitions {
            self.sm.set(g, partitions);
        }
        self.sync(g);
    }

    /// Reports `g` as in a partition no record explains; `true` the first time.
    pub(crate) fn report_unrecorded(&mut self, g: Guid) -> bool {
        self.unrecorded.insert(g)
    }

    /// `g` is in no partition that no record explains.
    pub(crate) fn explained(&mut self, g: Guid) {
        self.unrecorded.remove(&g);
    }

    // === waiting for a release ===

    /// The pool ran out: `true` if no listing was asked for since the last release (the subnet manager
    /// may have freed GUIDs since it was last read; it is read once per exhaustion, not per attempt).
    pub(crate) fn note_exhaustion(&mut self) -> bool {
        !std::mem::replace(&mut self.exhaustion_listed, true)
    }

    /// `pod` waits until a GUID is released.
    pub(crate) fn block(&mut self, pod: &PodUid) {
        self.blocked_on_release.insert(pod.clone());
    }

    pub(crate) fn unblock(&mut self, pod: &PodUid) {
        self.blocked_on_release.remove(pod);
    }

    /// Wakes every pod waiting for a release (GUIDs may have been freed elsewhere).
    pub(crate) fn wake_blocked(&mut self) {
        self.woken.extend(self.blocked_on_release.drain());
    }

    pub(crate) fn has_woken(&self) -> bool {
        !self.woken.is_empty()
    }

    /// Pods woken since the last call.
    pub(crate) fn take_woken(&mut self) -> Vec<PodUid> {
        std::mem::take(&mut self.woken)
    }

    /// GUIDs returned to the pool since the last call, in order.
    pub(crate) fn take_released(&mut self) -> Vec<Guid> {
        std::mem::take(&mut self.released)
    }

    /// Brings the pool in step with the holders of one GUID.
    fn sync(&mut self, g: Guid) {
        if !self.range.contains(g) {
            return;
        }
        let held = self.ledger.contains(g)
            || self.sm.holds(g)
            || self.sm_ops.contains_key(&g)
            || self.uncertain.contains_key(&g);
        let allocated = self.pool.is_allocated(g);
        if held && !allocated {
            // Cannot fail: the GUID is in range and free.
            let _ = self.pool.allocate(g);
        } else if !held && allocated {
            let _ = self.pool.release(g);
            self.sm_failed.remove(&g);
            self.released.push(g);
            self.exhaustion_listed = false;
            self.wake_blocked();
        }
    }
}

#[cfg(test)]
mod tests;
