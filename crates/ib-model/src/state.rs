//! The controller's whole decision state, updated by inputs and outcomes, read and advanced by the
//! planner.
//!
//! Inputs are the watch streams (`apply`/`delete`/`reset` of pods and NADs), the subnet manager's
//! listings, the ownership records, and the outcomes of the requests the planner asked for. Nothing
//! here performs I/O or reads a clock: retries after a failure wait until the caller says so
//! (`retry_*`), which is where the controller's backoff timers plug in.
//!
//! The state is made of parts that each keep their own invariant:
//! - `Known` (known.rs): what the watches delivered of pods and NADs;
//! - `Ownership` (ownership.rs): who holds which GUID (owners, the subnet manager, changes in flight),
//!   with the pool kept in step inside, so a GUID is never generated while anything still holds it;
//! - `Records` (records.rs): what the cluster's ownership records hold, and the writes in flight;
//! - `InFlight` (flight.rs): pod patches and the subnet manager's listing;
//! - `Waits` (waits.rs): why each pod waits, and which pods a NAD change wakes;
//! - `StartPhase` (phase.rs): how far this leadership has read before it may decide anything.
//!
//! The planner (`Planner`, planner.rs) reads the first and changes the others.

use std::collections::BTreeMap;

use crate::annotation::NetworkRef;
use crate::flight::InFlight;
use crate::guid::Guid;
use crate::known::Known;
use crate::ledger::Ledger;
use crate::marks::Marks;
use crate::membership::SmMembership;
use crate::names::Names;
use crate::ownership::Ownership;
use crate::pending::PendingReason;
use crate::phase::{RecordsRead, StartPhase};
use crate::planner::Planner;
use crate::pod::{PodUid, PodView};
use crate::pool::{GuidPool, GuidRange};
use crate::records::{BlockId, Record, RecordWrite, Records};
pub use crate::requests::{Imported, Notice, PatchOutcome, Plan, PodPatch, Policy, SmFailure, SmOp, SmRequest};

/// What is to be planned next.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    /// Every one: every known pod.
    pub(crate) pods: Marks<PodUid>,
    /// Every one: every GUID the subnet manager, an owner or a stored record holds.
    pub(crate) guids: Marks<Guid>,
}

impl Dirty {
    pub(crate) fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.guids.is_empty()
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct State {
    known: Known,
    owners: Ownership,
    records: Records,
    flight: InFlight,
    waits: Waits,
    dirty: Dirty,
    /// One copy of each name the pods and claims repeat.
    names: Names,
    phase: StartPhase,
    /// Drift repair is on hold at the start of a leadership (see [`State::allow_drift_repair`]).
    drift_held: bool,
    policy: Policy,
    /// Records for the next plan.
    out: Plan,
    /// The new leader's fresh pod list while its pages arrive.
    fresh: fresh::FreshList,
    /// The pod watch's own list while its pages arrive.
    relist: relist::Relist,
}

use crate::waits::Waits;

mod claimed;
mod fresh;
mod outcomes;
mod record_pages;
mod relist;

impl State {
    /// A state for the GUIDs of `range`, with the default policy.
    pub fn new(range: GuidRange) -> Self {
        Self::with_policy(range, Policy::default())
    }

    /// A state for the GUIDs of `range`.
    pub fn with_policy(range: GuidRange, policy: Policy) -> Self {
        State {
            known: Known::default(),
            owners: Ownership::new(range),
            records: Records::default(),
            flight: InFlight::default(),
            waits: Waits::default(),
            dirty: Dirty::default(),
            names: Names::default(),
            phase: StartPhase::default(),
            drift_held: false,
            policy,
            out: Plan::default(),
            fresh: fresh::FreshList::default(),
            relist: relist::Relist::default(),
        }
    }

    /// The cluster-wide rules this state applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decides what to do next. Deterministic: the same inputs give the same plan.
    pub fn plan(&mut self) -> Plan {
        if self.phase.watches_synced() {
            if let StartPhase::Reading { sm: true, records, .. } = self.phase
                && records != RecordsRead::Unread
            {
                self.phase = if records == RecordsRead::NoneExist {
                    let imported = self.planner().import_from_annotations();
                    self.out.imported = Some(imported);
                    StartPhase::Anchoring { may_send: true }
                } else {
                    StartPhase::Running
                };
            }
            match self.phase {
                StartPhase::Reading { .. } => {}
                StartPhase::Anchoring { may_send } => {
                    if may_send && self.planner().send_anchor() {
                        self.phase = StartPhase::Anchoring { may_send: false };
                    }
                }
                StartPhase::Running => self.planner().plan_dirty(),
            }
            // After planning: exhaustion found while planning asks for a listing at once.
            if self.flight.start_listing() {
                self.out.list_sm = true;
            }
        }
        self.out.released.extend(self.owners.take_released());
        std::mem::take(&mut self.out)
    }

    /// The planner over this state's parts.
    fn planner(&mut self) -> Planner<'_> {
        Planner {
            known: &self.known,
            policy: &self.policy,
            drift_held: self.drift_held,
            owners: &mut self.owners,
            records: &mut self.records,
            flight: &mut self.flight,
            waits: &mut self.waits,
            dirty: &mut self.dirty,
            names: &mut self.names,
            out: &mut self.out,
        }
    }

    // === pods ===

    /// A pod as the watch (or a patch response) delivered it.
    pub fn apply_pod(&mut self, view: PodView) {
        let uid = view.uid.clone();
        let ledger = self.owners.ledger();
        if self.known.apply_pod(view, |p| ledger.owns_any(p), &mut self.names) {
            self.dirty.pods.insert(uid);
        }
    }

    /// The uid a list kept for a pod it named, as the pod table holds it when the pod is kept: the
    /// page's own copy is then freed with the page, where keeping it would hold a string of its own for
    /// every pod until the list ends.
    fn listed_uid(&self, uid: PodUid) -> PodUid {
        self.known.shared_uid(&uid).cloned().unwrap_or(uid)
    }

    /// A pod is gone.
    pub fn delete_pod(&mut self, uid: &PodUid) {
        if self.known.delete_pod(uid) {
            self.dirty.pods.insert(uid.clone());
        }
    }

    /// Replaces every pod (a re-list); pods not in `views` are gone.
    pub fn reset_pods<I: IntoIterator<Item = PodView>>(&mut self, views: I) {
        let ledger = self.owners.ledger();
        let changed = self.known.reset_pods(views, |p| ledger.owns_any(p), &mut self.names);
        self.dirty.pods.extend(changed);
    }

    /// A consistent list read at `list_rv` while the watch keeps running (a new leader's fresh read).
    /// Unlike a watch's own re-list, a pod missing from it is gone only if what is known of it is not
    /// newer than the list: the watch may already have delivered a pod created after the list's
    /// snapshot, and dropping that pod would lose it until it changes again. Newer known versions of
    /// listed pods are kept too (`apply_pod` ignores older ones).
    pub fn refresh_pods<I: IntoIterator<Item = PodView>>(&mut self, views: I, list_rv: Option<&str>) {
        let ledger = self.owners.ledger();
        let changed = self.known.refresh_pods(views, list_rv, |p| ledger.owns_any(p), &mut self.names);
        self.dirty.pods.extend(changed);
    }

    /// The pod watch has delivered its initial list: ownership is complete, so GUIDs may be handed out.
    pub fn pods_synced(&mut self) {
        self.phase.pods_read();
    }

    // === NADs ===

    /// Records a NAD from its `spec.config`.
    pub fn apply_nad(&mut self, network: NetworkRef, config: Option<&str>) {
        if self.known.apply_nad(network.clone(), config) {
            self.wake_nad_users(&network);
        }
    }

    /// A NAD is gone.
    pub fn delete_nad(&mut self, network: &NetworkRef) {
        if self.known.delete_nad(network) {
            self.wake_nad_users(network);
        }
    }

    /// Replaces every NAD (a re-list): `(network, spec.config)`.
    pub fn reset_nads<'a, I: IntoIterator<Item = (NetworkRef, Option<&'a str>)>>(&mut self, nads: I) {
        for n in self.known.reset_nads(nads) {
            self.wake_nad_users(&n);
        }
    }

    /// Whether more GUIDs are about to join `pkey`: they wait only for their ownership record, whose
    /// write is in flight. The executors may hold a join of `pkey` for a moment so that those go in the
    /// same request.
    pub fn joins_waiting_for_records(&self, pkey: crate::PKey) -> bool {
        let shared = self.policy.partitions.default_limited == Some(pkey);
        self.records.joins_waiting(pkey, shared)
    }

    /// The partitions allocated to networks that asked for one (`allocate_pkey`), the whole ledger each
    /// time. Pods of a network whose allocation changed are planned again.
    pub fn set_pkey_allocations(&mut self, allocated: std::collections::HashMap<NetworkRef, crate::PKey>) {
        for n in self.known.set_allocations(allocated) {
            self.wake_nad_users(&n);
        }
    }

    /// The NAD watch has delivered its initial list.
    pub fn nads_synced(&mut self) {
        self.phase.nads_read();
    }

    /// A NAD changed: pods waiting on it are planned again, and so are pods configured on it, which
    /// keep their recorded partition and are told so. NAD changes are rare, so the configured ones are
    /// found by a scan rather than by an index every configured pod would pay for.
    fn wake_nad_users(&mut self, network: &NetworkRef) {
        self.dirty.pods.extend(self.waits.users_of(network).cloned());
        let ledger = self.owners.ledger();
        let configured = ledger.iter().filter(|(_, c)| &c.owner.network == network).map(|(_, c)| c.owner.pod.clone());
        self.dirty.pods.extend(configured);
    }

    // === leadership and resync ===

    /// This replica starts acting: what is in flight belongs to nobody, and the subnet manager's state
    /// must be read before anything is decided (the leader-start rebuild).
    /// A cache kept by a follower may lag behind what the previous leader wrote; the caller reads every
    /// pod again ([`fresh_pods_page`](Self::fresh_pods_page) per page, then
    /// [`fresh_pods_end`](Self::fresh_pods_end)) before anything is decided. Pages of a list read for an
    /// earlier leadership name no pod listed for this one.
    ///
    /// Ownership is not carried over from an earlier leadership or from watching as a follower: it is
    /// read again from the records ([`records_listed`](Self::records_listed)), which are the only proof.
    pub fn begin_leading(&mut self) {
        self.phase.new_leadership();
        self.fresh = fresh::FreshList::default();
        self.drift_held = true;
        self.flight.new_leadership();
        self.owners.forget_all();
        self.records.clear();
        self.waits.clear_all();
        self.mark_all_dirty();
    }

    /// Every ownership record, read for this leadership: whether any block exists at all (none: the first
    /// start, when annotations are imported once), and `(GUID, record)` of every block. Records of GUIDs
    /// outside the pool range are left alone (the range may have been changed).
    pub fn records_listed<I: IntoIterator<Item = (Guid, Record)>>(&mut self, any_block: bool, records: I) {
        self.records_page(records);
        self.records_end(any_block);
    }

    /// Whether the records have been read for this leadership.
    pub fn records_known(&self) -> bool {
        self.phase.records_known()
    }

    /// Record writes that failed may be tried again (the caller's backoff is over).
    pub fn retry_records(&mut self) {
        self.records.retry();
        if let StartPhase::Anchoring { may_send } = &mut self.phase {
            *may_send = true;
        }
    }

    /// Writes the record changes that [can wait](crate::RecordChange::can_wait) in the next plan. The
    /// caller does this a moment after [`records_waiting`](Self::records_waiting) turns true, so stored
    /// states catch up in a quiet cluster too.
    pub fn flush_records(&mut self) {
        self.records.flush();
    }

    /// Whether record changes are waiting for a write to their block or a flush.
    pub fn records_waiting(&self) -> bool {
        self.records.has_waiting()
    }

    /// A record write ended.
    pub fn records_written(&mut self, write: &RecordWrite, ok: bool) {
        self.records.written(write, ok);
        if ok
            && write.block == self.anchor_block()
            && write.changes.is_empty()
            && matches!(self.phase, StartPhase::Anchoring { .. })
        {
            self.phase = StartPhase::Running;
        }
        for guid in write.changes.keys() {
            self.dirty.guids.insert(*guid);
            self.wake_owner(*guid);
        }
    }

    /// The blocks the import must create even when nothing is imported: their existence is what tells
    /// a later leader that annotations are no longer proof.
    pub fn anchor_block(&self) -> BlockId {
        BlockId::of(self.owners.range().start())
    }

    /// Ends the hold on removing unrecorded memberships that [`begin_leading`](Self::begin_leading)
    /// starts (only when the policy removes them at all): a previous leader's last record write may still
    /// be landing. The caller waits out the lease duration, after which no previous leader can still be
    /// writing.
    pub fn allow_drift_repair(&mut self) {
        if std::mem::take(&mut self.drift_held) {
            self.dirty.guids.extend(self.owners.sm().guids());
        }
    }

    /// Periodic drift repair: read the subnet manager again and look at every GUID it or the ledger
    /// holds. Pods are not planned again: every reason a pod waits for has its own wake-up (its events,
    /// its NADs', a released GUID, a retry), and planning every pod of a large cluster at once would hold
    /// up the new ones (half a second at 20,000 pods).
    pub fn resync(&mut self) {
        self.flight.want_listing();
        self.dirty.guids.extend(self.owners.sm().guids());
        self.dirty.guids.extend(self.owners.ledger().iter().map(|(g, _)| g));
    }

    fn mark_all_dirty(&mut self) {
        self.dirty.pods.mark_every();
        self.dirty.guids.mark_every();
    }

    /// The pod owning `g`, if any, is planned again.
    fn wake_owner(&mut self, g: Guid) {
        if let Some(claim) = self.owners.ledger().get(g) {
            self.dirty.pods.insert(claim.owner.pod.clone());
        }
    }

    // === reading ===

    /// The GUID pool: what is free and what is held.
    pub fn pool(&self) -> &GuidPool {
        self.owners.pool()
    }

    /// Which interface owns which GUID.
    pub fn ledger(&self) -> &Ledger {
        self.owners.ledger()
    }

    /// What the subnet manager is known to hold for the pool's GUIDs.
    pub fn sm_membership(&self) -> &SmMembership {
        self.owners.sm()
    }

    /// Stored ownership records.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Pool GUIDs in partitions that no record explains.
    pub fn unrecorded_count(&self) -> usize {
        self.owners.unrecorded_count()
    }

    /// GUIDs whose last change has an unknown outcome.
    pub fn uncertain_count(&self) -> usize {
        self.owners.uncertain_count()
    }

    /// A kept pod's view (a copy: the state keeps a configured pod's annotation in a smaller form).
    pub fn pod(&self, uid: &PodUid) -> Option<PodView> {
        self.known.whole_pod(uid)
    }

    /// Why a pod waits, if it does.
    pub fn pending_reason(&self, uid: &PodUid) -> Option<&PendingReason> {
        self.waits.reason(uid)
    }

    /// Pods waiting, counted by reason label.
    pub fn pending_by_reason(&self) -> BTreeMap<&'static str, usize> {
        self.waits.by_reason()
    }

    /// Whether anything is still in flight or waiting to be planned.
    pub fn is_settled(&self) -> bool {
        !matches!(self.phase, StartPhase::Anchoring { .. })
            && !self.owners.has_in_flight()
            && self.dirty.is_empty()
            && !self.owners.has_woken()
            && self.flight.is_idle()
            && self.records.is_settled()
    }

    #[cfg(test)]
    pub(crate) fn known(&self) -> &Known {
        &self.known
    }

    #[cfg(test)]
    pub(crate) fn owners(&self) -> &Ownership {
        &self.owners
    }
}
