//! The planner: from what pods want and what is applied, the next subnet-manager requests and pod
//! patches.
//!
//! Rules:
//! - Ownership is what the records say ([`crate::records`]). A GUID's record is stored before the GUID
//!   joins a partition, and a pod is marked `configured` only once its GUIDs are members and recorded; a
//!   pod is patched once, when every one of its InfiniBand interfaces is ready.
//! - A pod's annotation is a request and an output, never proof. A `configured` element that no record
//!   backs is a request for that GUID: it never displaces an owner and never causes a removal. Only the
//!   first start without any records imports configured elements of live pods, oldest pod first.
//! - A GUID owned by a live pod is never given to another pod, even on request, nor is a GUID that the
//!   fabric holds without a record of ours; the newcomer waits with a reason and is woken when a GUID is
//!   released.
//! - A recorded claim lasts until its pod is gone or finished, and keeps the partition it was recorded
//!   with: a NAD's later change or deletion moves no running pod (its VF was set up for that partition).
//! - The only membership removed for a GUID is the one its record names, once the record's owner no
//!   longer wants it. Memberships of pool GUIDs that no record explains are reported, and removed only if
//!   the policy says so.
//! - Nothing is decided before the pods, the NADs, the records and the subnet manager have been read, so
//!   the pool is the union of what is owned, what the subnet manager holds and what is in flight.
//!
//! The `Planner` borrows the state's parts: it reads what is known of pods and NADs and the policy,
//! and changes ownership, records, what is in flight, why pods wait and what is to be planned next; the
//! plan it writes is what the executors do.

use std::collections::{BTreeMap, HashSet};

use crate::annotation::{MAX_IB_INTERFACES_PER_POD, NetworkRef, NetworksAnnotation};
use crate::flight::InFlight;
use crate::guid::Guid;
use crate::known::Known;
use crate::nad::{IbSriovSpec, NadKind};
use crate::names::Names;
use crate::ownership::Ownership;
use crate::partition::PartitionOptions;
use crate::pending::PendingReason;
use crate::pkey::PKey;
use crate::pod::{InterfaceKey, PodUid, PodView};
use crate::records::Records;
use crate::records::{BlockId, Record, RecordChange, RecordState, RecordWrite, owner_hash};
use crate::state::{Dirty, Imported, Notice, Plan, PodPatch, Policy, SmFailure, SmOp, SmRequest};
use crate::waits::Waits;

/// One planning step over the state's parts. See the module documentation.
pub(crate) struct Planner<'a> {
    /// Read: what the watches delivered.
    pub(crate) known: &'a Known,
    /// Read: the cluster-wide rules.
    pub(crate) policy: &'a Policy,
    /// Read: removing unrecorded memberships is on hold (the start of a leadership).
    pub(crate) drift_held: bool,
    /// Changed: who holds which GUID (claims, releases, membership changes sent).
    pub(crate) owners: &'a mut Ownership,
    /// Changed: record writes sent.
    pub(crate) records: &'a mut Records,
    /// Changed: patches sent, listings wanted.
    pub(crate) flight: &'a mut InFlight,
    /// Changed: why pods wait, which NADs they wait on.
    pub(crate) waits: &'a mut Waits,
    /// Changed: what is to be planned next (taken, and added to by what this step changes).
    pub(crate) dirty: &'a mut Dirty,
    /// Changed: the shared names a new claim's owner is made of.
    pub(crate) names: &'a mut Names,
    /// Written: the plan for the executors.
    pub(crate) out: &'a mut Plan,
}

/// The GUIDs of each set of options, in the order first planned, for one operation and partition.
type Changes = Vec<(PartitionOptions, Vec<Guid>)>;

/// Re-planning passes per call: a release in one pass can wake pods for the next. Work left after the
/// last pass stays dirty for the next call, so this only bounds the length of one call.
const MAX_PASSES: usize = 4;
/// Partition keys one node's ports can hold (the pkey table of current ConnectX adapters and the
/// limit the Go daemon's README documents).
pub const MAX_PKEYS_PER_NODE: usize = 128;

impl Planner<'_> {
    /// Plans every dirty pod and GUID, then the record writes.
    pub(crate) fn plan_dirty(&mut self) {
        let mut requests: BTreeMap<(SmOp, PKey), Changes> = BTreeMap::new();
        for _ in 0..MAX_PASSES {
            // Pods woken by a release since the last pass.
            self.dirty.pods.extend(self.owners.take_woken());
            if self.dirty.pods.is_empty() && self.dirty.guids.is_empty() {
                break;
            }
            let known = self.known;
            let pods = self.dirty.pods.take(|| known.pod_uids().cloned());
            for uid in &pods {
                self.plan_pod(uid);
            }
            let (owners, records) = (&*self.owners, &*self.records);
            let guids = self.dirty.guids.take(|| {
                let ledger = owners.ledger().iter().map(|(g, _)| g);
                owners.sm().guids().chain(ledger).chain(records.iter().map(|(g, _)| g))
            });
            for g in guids {
                if let Some((op, pkey, options)) = self.plan_guid(g) {
                    let groups = requests.entry((op, pkey)).or_default();
                    match groups.iter_mut().find(|(o, _)| *o == options) {
                        Some((_, guids)) => guids.push(g),
                        None => groups.push((options, vec![g])),
                    }
                }
            }
        }
        let must_exist = !self.policy.partitions.allow_create;
        for ((op, pkey), groups) in requests {
            let name = match op {
                SmOp::Add => self.known.allocated_to(pkey).map(crate::requests::partition_name),
                SmOp::Remove => None,
            };
            for (options, guids) in groups {
                let must_exist = must_exist && op == SmOp::Add;
                self.out.sm.push(SmRequest { op, pkey, guids, options, must_exist, partition_name: name.clone() });
            }
        }
        self.plan_records();
    }

    /// A pod that is gone, finished or host-networked: it owns nothing and waits for nothing.
    fn forget_pod(&mut self, uid: &PodUid) {
        for g in self.owners.ledger().guids_of_pod(uid) {
            self.unclaim(g);
        }
        self.owners.unblock(uid);
        self.flight.forget_pod(uid);
        self.waits.forget(uid);
    }

    /// In-progress claims of interfaces the pod no longer asks for (annotation edited, NAD no longer IB,
    /// pod terminating) are dropped; configured ones stay.
    fn drop_unconfigured_claims(&mut self, uid: &PodUid, keep: &HashSet<InterfaceKey>) {
        if self.flight.patching(uid) {
            return;
        }
        for g in self.owners.ledger().guids_of_pod(uid) {
            if self.owners.ledger().get(g).is_some_and(|c| !c.configured && !keep.contains(&c.owner)) {
                self.unclaim(g);
            }
        }
    }

    /// The node a kept pod runs on.
    fn node_of(&self, pod: &PodUid) -> Option<std::sync::Arc<str>> {
        self.known.pod(pod).and_then(|v| v.node_name.clone())
    }

    /// Records `owner`'s claim on the unclaimed `g`, reported as allocated.
    pub(crate) fn claim(&mut self, g: Guid, owner: InterfaceKey, pkey: Option<PKey>, configured: bool) {
        self.out.allocated.push((g, owner.clone()));
        self.hold(g, owner, pkey, configured);
    }

    /// Records the claim an ownership record holds: allocated by an earlier leadership, so not reported
    /// again (a leader's start restores every claim of the cluster at once).
    pub(crate) fn restore(&mut self, g: Guid, owner: InterfaceKey, pkey: Option<PKey>) {
        self.hold(g, owner, pkey, true);
    }

    fn hold(&mut self, g: Guid, owner: InterfaceKey, pkey: Option<PKey>, configured: bool) {
        let node = self.node_of(&owner.pod);
        let owner = self.names.key(owner);
        self.owners.claim(g, owner, pkey, node, configured);
        self.dirty.guids.insert(g);
    }

    /// Drops an owner; the GUID leaves its partitions and returns to the pool once nothing holds it.
    fn unclaim(&mut self, g: Guid) {
        if self.owners.unclaim(g) {
            self.dirty.guids.insert(g);
        }
    }

    /// Records why a pod waits (an Event only when the reason changes).
    pub(crate) fn set_pending(&mut self, uid: &PodUid, reason: PendingReason) {
        let pod = self.known.pod(uid).map(PodView::pod_ref);
        self.waits.set(uid, pod, reason, &mut self.out.pending);
    }
}

mod guids;
mod import;
mod pods;
#[cfg(test)]
mod tests;
