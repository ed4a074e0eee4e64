//! The controller's whole decision state, updated by inputs and outcomes, read by the planner.
//!
//! Inputs are the watch streams (`apply`/`delete`/`reset` of pods and NADs), the subnet manager's
//! listings, and the outcomes of the requests the planner asked for. Nothing here performs I/O or
//! reads a clock: retries after a failure wait until the caller says so (`retry_*`), which is where
//! the controller's backoff timers plug in.
//!
//! The pool is kept equal to "owned ∪ known to the subnet manager ∪ in flight" for every GUID of the
//! range, so a GUID is never generated while anything still holds it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::annotation::NetworkRef;
use crate::guid::Guid;
use crate::ledger::{Claim, Ledger};
use crate::membership::SmMembership;
use crate::nad::{self, NadError, NadKind};
use crate::pending::{Pending, PendingReason};
use crate::pkey::PKey;
use crate::pod::{InterfaceKey, PodRef, PodUid, PodView};
use crate::pool::{GuidPool, GuidRange};
use crate::records::{BlockId, Record, RecordWrite, Records};

/// A subnet-manager membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SmOp {
    Add,
    Remove,
}

/// One request to the subnet manager: every GUID of one partition that needs the same change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmRequest {
    pub op: SmOp,
    pub pkey: PKey,
    pub guids: Vec<Guid>,
}

/// A new networks annotation for one pod, valid only for the resourceVersion it was computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPatch {
    pub pod: PodRef,
    pub resource_version: String,
    pub annotation: String,
    /// The GUIDs this patch marks configured.
    pub guids: Vec<Guid>,
}

/// How a pod patch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchOutcome {
    /// Stored; the pod as the API server returned it.
    Applied(PodView),
    /// The pod changed since the planned resourceVersion (or was re-created): the caller re-reads it,
    /// applies what it read, then calls [`State::retry_pod`].
    Conflict,
    /// No pod with that uid exists any more.
    NotFound,
    /// Not stored: `kind` is a short fixed word for metrics (`timeout`, `forbidden`, …), `message` says
    /// why for the pod's Event.
    Failed { kind: &'static str, message: String },
}

/// Why a subnet-manager request did not succeed, as much as decisions need: the details go to the
/// controller's log, never into a tenant's Events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmFailure {
    /// A short fixed word (`timeout`, `status`, …) for metrics and Events.
    pub kind: &'static str,
    /// The change may have been applied although no success came back (a timeout after sending, a
    /// dropped connection, a server error): the GUID is held until a listing settles it.
    pub unknown: bool,
}

/// Cluster-wide rules that are not about one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Multus' `namespaceIsolation`: a pod may only use NADs of its own namespace or of
    /// `global_namespaces`.
    pub namespace_isolation: bool,
    pub global_namespaces: BTreeSet<String>,
    /// Remove memberships of pool GUIDs that no record explains (the subnet manager may be shared with
    /// other clusters and with people, so this is off unless the operator opts in).
    pub remove_unrecorded: bool,
}

/// A Normal Event for a pod: something it should know that is not a reason to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub pod: PodRef,
    pub reason: &'static str,
    pub message: String,
}

/// What the planner decided. The I/O parts (`list_sm`, `sm`, `patches`) are for the executors; the rest
/// records state changes already made, for logs, metrics and Events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ask the subnet manager for every GUID it holds.
    pub list_sm: bool,
    pub sm: Vec<SmRequest>,
    pub patches: Vec<PodPatch>,
    pub allocated: Vec<(Guid, InterfaceKey)>,
    pub released: Vec<Guid>,
    /// GUIDs being removed from a partition although no pod of this leadership ever owned them: leaks
    /// left by a crash or by pods that finished while no leader ran (drift repair).
    pub drift: Vec<Guid>,
    /// Pods whose reason for waiting changed to this one.
    pub pending: Vec<Pending>,
    /// Ownership record writes; a GUID joins a partition only after its record is stored.
    pub records: Vec<RecordWrite>,
    /// Pool GUIDs found in partitions that no record explains (reported once each; removed only when
    /// the policy allows).
    pub unrecorded: Vec<Guid>,
    /// Normal Events.
    pub notices: Vec<Notice>,
    /// The first start without records imported this many configured interfaces from annotations.
    pub imported: Option<Imported>,
}

/// What the one-time import from annotations did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub interfaces: usize,
    /// Interfaces whose GUID another pod had claimed first (each got a `DuplicateGUID` Event).
    pub duplicates: usize,
}

impl Plan {
    /// Nothing for the executors to do.
    pub fn is_idle(&self) -> bool {
        !self.list_sm && self.sm.is_empty() && self.patches.is_empty() && self.records.is_empty()
    }
}

/// Whether resourceVersion `a` is older than `b` (both decimal, as API servers issue them).
fn is_older(a: &str, b: &str) -> bool {
    matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if a < b)
}

/// See the module documentation.
#[derive(Debug)]
pub struct State {
    pub(crate) range: GuidRange,
    pub(crate) pool: GuidPool,
    pub(crate) pods: HashMap<PodUid, PodView>,
    pub(crate) nads: HashMap<NetworkRef, Result<NadKind, NadError>>,
    pub(crate) ledger: Ledger,
    pub(crate) sm: SmMembership,
    /// At most one subnet-manager change in flight per GUID keeps the known membership exact.
    pub(crate) sm_ops: HashMap<Guid, (SmOp, PKey)>,
    /// GUIDs whose last request certainly failed, with the kind of failure; left alone until
    /// `retry_guids`.
    pub(crate) sm_failed: HashMap<Guid, &'static str>,
    /// Pods with a patch in flight, and the resourceVersion it was planned from.
    pub(crate) patches: HashMap<PodUid, String>,
    pub(crate) patch_failed: HashSet<PodUid>,
    /// Pods whose unconfigured interfaces use a NAD, so that a NAD change wakes exactly them.
    pub(crate) nad_users: HashMap<NetworkRef, HashSet<PodUid>>,
    pub(crate) pod_nads: HashMap<PodUid, Vec<NetworkRef>>,
    /// Pods waiting for a GUID to be released (pool exhausted, requested GUID in use).
    pub(crate) blocked_on_release: HashSet<PodUid>,
    pub(crate) pending: HashMap<PodUid, PendingReason>,
    pub(crate) dirty_pods: BTreeSet<PodUid>,
    pub(crate) dirty_guids: BTreeSet<Guid>,
    pub(crate) pods_synced: bool,
    pub(crate) nads_synced: bool,
    pub(crate) sm_known: bool,
    pub(crate) list_wanted: bool,
    /// The completion counter when the listing in flight was asked for.
    pub(crate) listing: Option<u64>,
    /// Completion counter: orders subnet-manager outcomes against listings.
    pub(crate) seq: u64,
    /// Per GUID, the counter of its last completed change: a listing asked for before that change
    /// cannot tell us anything about the GUID.
    pub(crate) last_touch: HashMap<Guid, u64>,
    /// Drift repair is on hold at the start of a leadership (see [`State::allow_drift_repair`]).
    pub(crate) drift_held: bool,
    /// A listing was asked for because the pool ran out, and nothing was released since.
    pub(crate) exhaustion_listed: bool,
    /// Per node, how many claims use each partition (the per-node pkey limit).
    pub(crate) node_pkeys: HashMap<String, BTreeMap<PKey, usize>>,
    /// What the cluster's ownership records hold.
    pub(crate) records: Records,
    /// The records have been read for this leadership (`Some(true)`: there were none at all).
    pub(crate) records_read: Option<bool>,
    /// Annotations were imported but the anchor block is not stored yet: until it is, a later leader
    /// would import again (reading whatever markers tenants wrote meanwhile), so nothing is decided.
    pub(crate) anchor_pending: bool,
    /// The anchor write may be sent (again): at once after the import, then after each backoff.
    pub(crate) anchor_may_send: bool,
    /// GUIDs whose last change has an unknown outcome, with that change: held, and left alone, until
    /// a listing asked for after the outcome says where they are.
    pub(crate) uncertain: HashMap<Guid, (SmOp, PKey)>,
    /// Pool GUIDs in partitions that no record explains, already reported.
    pub(crate) unrecorded: HashSet<Guid>,
    /// Configured pods already told that they keep a partition their NAD no longer names.
    pub(crate) told_kept: HashSet<(PodUid, NetworkRef)>,
    pub(crate) policy: Policy,
    /// Records for the next plan.
    pub(crate) out: Plan,
}

impl State {
    pub fn new(range: GuidRange) -> Self {
        Self::with_policy(range, Policy::default())
    }

    pub fn with_policy(range: GuidRange, policy: Policy) -> Self {
        State {
            range,
            pool: GuidPool::new(range),
            pods: HashMap::new(),
            nads: HashMap::new(),
            ledger: Ledger::default(),
            sm: SmMembership::default(),
            sm_ops: HashMap::new(),
            sm_failed: HashMap::new(),
            patches: HashMap::new(),
            patch_failed: HashSet::new(),
            nad_users: HashMap::new(),
            pod_nads: HashMap::new(),
            blocked_on_release: HashSet::new(),
            pending: HashMap::new(),
            dirty_pods: BTreeSet::new(),
            dirty_guids: BTreeSet::new(),
            pods_synced: false,
            nads_synced: false,
            sm_known: false,
            list_wanted: true,
            listing: None,
            seq: 0,
            last_touch: HashMap::new(),
            exhaustion_listed: false,
            drift_held: false,
            node_pkeys: HashMap::new(),
            records: Records::default(),
            records_read: None,
            anchor_pending: false,
            anchor_may_send: false,
            uncertain: HashMap::new(),
            unrecorded: HashSet::new(),
            told_kept: HashSet::new(),
            policy,
            out: Plan::default(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    // === pods ===

    pub fn apply_pod(&mut self, view: PodView) {
        if !self.worth_keeping(&view) {
            return;
        }
        let view = compact(view);
        match self.pods.get(&view.uid) {
            Some(current) if *current == view => return,
            // A lagging watch can deliver a version older than one already read (by a fresh list or a
            // patch response). resourceVersions are opaque, but every API server issues them as
            // increasing integers; when both parse, the older view is ignored.
            Some(current) if is_older(&view.resource_version, &current.resource_version) => return,
            _ => {}
        }
        self.dirty_pods.insert(view.uid.clone());
        self.pods.insert(view.uid.clone(), view);
    }

    /// Most pods of a cluster have no networks annotation: they need nothing and own nothing, so they are
    /// not kept (at 100,000 pods that is half the controller's memory). One already kept stays until it
    /// is gone: its annotation was removed, and what it owned is released by planning it.
    ///
    /// A pod that owns GUIDs by record is kept whatever its annotation says: its VFs may carry them. So
    /// that it is known before the pods are read, a leader reads the records first.
    fn worth_keeping(&self, view: &PodView) -> bool {
        view.networks.is_some() || self.pods.contains_key(&view.uid) || self.ledger.owns_any(&view.uid)
    }

    /// Every pod kept, for the one-time import.
    pub(crate) fn pods_by_age(&self) -> Vec<PodUid> {
        let mut pods: Vec<(i64, &PodUid)> = self.pods.values().map(|v| (v.created, &v.uid)).collect();
        pods.sort();
        pods.into_iter().map(|(_, uid)| uid.clone()).collect()
    }

    pub fn delete_pod(&mut self, uid: &PodUid) {
        if self.pods.remove(uid).is_some() {
            self.dirty_pods.insert(uid.clone());
        }
    }

    /// Replaces every pod (a re-list); pods not in `views` are gone.
    pub fn reset_pods<I: IntoIterator<Item = PodView>>(&mut self, views: I) {
        let mut fresh: HashMap<PodUid, PodView> =
            views.into_iter().filter(|v| self.worth_keeping(v)).map(|v| (v.uid.clone(), compact(v))).collect();
        for (uid, old) in &self.pods {
            if fresh.get(uid) != Some(old) {
                self.dirty_pods.insert(uid.clone());
            }
        }
        for uid in fresh.keys() {
            if !self.pods.contains_key(uid) {
                self.dirty_pods.insert(uid.clone());
            }
        }
        std::mem::swap(&mut self.pods, &mut fresh);
    }

    /// A consistent list read at `list_rv` while the watch keeps running (a new leader's fresh read).
    /// Unlike a watch's own re-list, a pod missing from it is gone only if what is known of it is not
    /// newer than the list: the watch may already have delivered a pod created after the list's
    /// snapshot, and dropping that pod would lose it until it changes again. Newer known versions of
    /// listed pods are kept too (`apply_pod` ignores older ones).
    pub fn refresh_pods<I: IntoIterator<Item = PodView>>(&mut self, views: I, list_rv: Option<&str>) {
        let fresh: HashMap<PodUid, PodView> =
            views.into_iter().filter(|v| self.worth_keeping(v)).map(|v| (v.uid.clone(), v)).collect();
        let gone: Vec<PodUid> = self
            .pods
            .iter()
            .filter(|(uid, known)| {
                !fresh.contains_key(*uid) && !list_rv.is_some_and(|rv| is_older(rv, &known.resource_version))
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &gone {
            self.delete_pod(uid);
        }
        for view in fresh.into_values() {
            self.apply_pod(view);
        }
    }

    /// The pod watch has delivered its initial list: ownership is complete, so GUIDs may be handed out.
    pub fn pods_synced(&mut self) {
        self.pods_synced = true;
    }

    // === NADs ===

    /// Records a NAD from its `spec.config`.
    pub fn apply_nad(&mut self, network: NetworkRef, config: Option<&str>) {
        let kind = nad::classify(config);
        if self.nads.get(&network) == Some(&kind) {
            return;
        }
        self.wake_nad_users(&network);
        self.nads.insert(network, kind);
    }

    pub fn delete_nad(&mut self, network: &NetworkRef) {
        if self.nads.remove(network).is_some() {
            self.wake_nad_users(network);
        }
    }

    pub fn reset_nads<'a, I: IntoIterator<Item = (NetworkRef, Option<&'a str>)>>(&mut self, nads: I) {
        let fresh: HashMap<NetworkRef, Result<NadKind, NadError>> =
            nads.into_iter().map(|(n, c)| (n, nad::classify(c))).collect();
        let changed: Vec<NetworkRef> =
            self.nads.keys().chain(fresh.keys()).filter(|n| self.nads.get(*n) != fresh.get(*n)).cloned().collect();
        self.nads = fresh;
        for n in changed {
            self.wake_nad_users(&n);
        }
    }

    pub fn nads_synced(&mut self) {
        self.nads_synced = true;
    }

    /// A NAD changed: pods waiting on it are planned again, and so are pods configured on it, which
    /// keep their recorded partition and are told so. NAD changes are rare, so the configured ones are
    /// found by a scan rather than by an index every configured pod would pay for.
    fn wake_nad_users(&mut self, network: &NetworkRef) {
        if let Some(users) = self.nad_users.get(network) {
            self.dirty_pods.extend(users.iter().cloned());
        }
        let configured: Vec<PodUid> =
            self.ledger.iter().filter(|(_, c)| &c.owner.network == network).map(|(_, c)| c.owner.pod.clone()).collect();
        self.dirty_pods.extend(configured);
    }

    // === leadership and resync ===

    /// This replica starts acting: what is in flight belongs to nobody, and the subnet manager's state
    /// must be read before anything is decided (the leader-start rebuild).
    /// A cache kept by a follower may lag behind what the previous leader wrote; the caller reads every
    /// pod again ([`reset_pods`](Self::reset_pods) then [`pods_synced`](Self::pods_synced)) before anything
    /// is decided.
    ///
    /// Ownership is not carried over from an earlier leadership or from watching as a follower: it is
    /// read again from the records ([`records_listed`](Self::records_listed)), which are the only proof.
    pub fn begin_leading(&mut self) {
        self.pods_synced = false;
        self.drift_held = true;
        self.sm_ops.clear();
        self.patches.clear();
        self.sm_failed.clear();
        self.patch_failed.clear();
        self.sm_known = false;
        self.listing = None;
        self.list_wanted = true;
        self.ledger = Ledger::default();
        self.node_pkeys.clear();
        self.sm = SmMembership::default();
        self.uncertain.clear();
        self.unrecorded.clear();
        self.records.clear();
        self.records_read = None;
        self.anchor_pending = false;
        self.anchor_may_send = false;
        self.pool = GuidPool::new(self.range);
        self.pending.clear();
        self.blocked_on_release.clear();
        self.mark_all_dirty();
    }

    /// Every ownership record, read for this leadership: whether any block exists at all (none: the first
    /// start, when annotations are imported once), and `(GUID, record)` of every block. Records of GUIDs
    /// outside the pool range are left alone (the range may have been changed).
    pub fn records_listed<I: IntoIterator<Item = (Guid, Record)>>(&mut self, any_block: bool, records: I) {
        for (guid, record) in records {
            if !self.range.contains(guid) || self.ledger.contains(guid) {
                continue;
            }
            self.records.load(guid, &record);
            if record.state != crate::records::RecordState::Releasing && self.ledger.guid_of(&record.owner).is_none() {
                // A recorded claim lasts until its pod is gone or finished, whatever its annotation says
                // now: its VF may carry the GUID.
                self.dirty_pods.insert(record.owner.pod.clone());
                self.claim(guid, record.owner, record.pkey, true);
            }
            self.records.mark(guid);
            self.dirty_guids.insert(guid);
        }
        self.records_read = Some(!any_block);
    }

    /// Whether the records have been read for this leadership.
    pub fn records_known(&self) -> bool {
        self.records_read.is_some()
    }

    /// Record writes that failed may be tried again (the caller's backoff is over).
    pub fn retry_records(&mut self) {
        self.records.retry();
        self.anchor_may_send = true;
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
        if ok && write.block == self.anchor_block() && write.changes.is_empty() {
            self.anchor_pending = false;
        }
        for guid in write.changes.keys() {
            self.dirty_guids.insert(*guid);
            if let Some(claim) = self.ledger.get(*guid) {
                self.dirty_pods.insert(claim.owner.pod.clone());
            }
        }
    }

    /// The blocks the import must create even when nothing is imported: their existence is what tells
    /// a later leader that annotations are no longer proof.
    pub fn anchor_block(&self) -> BlockId {
        BlockId::of(self.range.start())
    }

    /// Ends the hold on removing unrecorded memberships that [`begin_leading`](Self::begin_leading)
    /// starts (only when the policy removes them at all): a previous leader's last record write may still
    /// be landing. The caller waits out the lease duration, after which no previous leader can still be
    /// writing.
    pub fn allow_drift_repair(&mut self) {
        if std::mem::take(&mut self.drift_held) {
            self.dirty_guids.extend(self.sm.guids());
        }
    }

    /// Periodic drift repair: read the subnet manager again and look at every GUID it or the ledger
    /// holds. Pods are not planned again: every reason a pod waits for has its own wake-up (its events,
    /// its NADs', a released GUID, a retry), and planning every pod of a large cluster at once would hold
    /// up the new ones (half a second at 20,000 pods).
    pub fn resync(&mut self) {
        self.list_wanted = true;
        self.dirty_guids.extend(self.sm.guids());
        self.dirty_guids.extend(self.ledger.iter().map(|(g, _)| g));
    }

    fn mark_all_dirty(&mut self) {
        self.dirty_pods.extend(self.pods.keys().cloned());
        self.dirty_guids.extend(self.sm.guids());
        self.dirty_guids.extend(self.ledger.iter().map(|(g, _)| g));
        let recorded: Vec<Guid> = self.records.iter().map(|(g, _)| g).collect();
        self.dirty_guids.extend(recorded);
    }

    // === outcomes ===

    /// The subnet manager's listing: (partition name as the SM writes it, GUID).
    pub fn sm_listed<'a, I: IntoIterator<Item = (&'a str, Guid)>>(&mut self, listing: I) {
        let asked_at = self.listing.take().unwrap_or(self.seq);
        let fresh = SmMembership::from_listing(listing, self.range);
        let guids: BTreeSet<Guid> = self.sm.guids().chain(fresh.guids()).collect();
        let settled: Vec<Guid> =
            self.uncertain.keys().copied().filter(|g| self.last_touch.get(g).is_none_or(|s| *s <= asked_at)).collect();
        let guids: BTreeSet<Guid> = guids.into_iter().chain(settled.iter().copied()).collect();
        for g in settled {
            self.uncertain.remove(&g);
            self.records.mark(g);
        }
        for g in guids {
            let changed_since = self.last_touch.get(&g).is_some_and(|s| *s > asked_at);
            if self.sm_ops.contains_key(&g) || changed_since || self.uncertain.contains_key(&g) {
                continue;
            }
            if self.sm.partitions(g) != fresh.partitions(g) {
                self.sm.set(g, fresh.partitions(g));
                self.sync_pool(g);
            }
            self.dirty_guids.insert(g);
        }
        self.last_touch.retain(|_, s| *s > asked_at);
        if !self.sm_known {
            self.sm_known = true;
            self.mark_all_dirty();
        }
        // The listing may have freed GUIDs: pods waiting on an exhausted pool try again (Go bug B1).
        self.wake_blocked();
    }

    /// The listing failed; the caller retries it after a backoff with [`resync`](Self::resync).
    pub fn sm_list_failed(&mut self) {
        self.listing = None;
    }

    /// A subnet-manager request ended.
    pub fn sm_done(&mut self, request: &SmRequest, result: Result<(), SmFailure>) {
        self.seq += 1;
        for &g in &request.guids {
            if self.sm_ops.get(&g) != Some(&(request.op, request.pkey)) {
                // Not ours (asked before this replica's leadership began): the next listing tells.
                continue;
            }
            self.sm_ops.remove(&g);
            self.last_touch.insert(g, self.seq);
            match &result {
                Ok(()) => {
                    match request.op {
                        SmOp::Add => self.sm.add(g, request.pkey),
                        SmOp::Remove => self.sm.remove(g, request.pkey),
                    }
                    self.sm_failed.remove(&g);
                    self.dirty_guids.insert(g);
                }
                Err(failure) => {
                    if failure.unknown {
                        // Maybe applied, maybe not: neither given away nor changed again until a
                        // listing asked for after now says which.
                        self.uncertain.insert(g, (request.op, request.pkey));
                        self.list_wanted = true;
                    }
                    // Either way the next attempt waits for the caller's backoff.
                    self.sm_failed.insert(g, failure.kind);
                }
            }
            self.records.mark(g);
            if let Some(claim) = self.ledger.get(g) {
                self.dirty_pods.insert(claim.owner.pod.clone());
            }
            self.sync_pool(g);
        }
    }

    /// Lets GUIDs whose request failed be tried again.
    pub fn retry_guids(&mut self, guids: &[Guid]) {
        for g in guids {
            if self.sm_failed.remove(g).is_some() {
                self.dirty_guids.insert(*g);
                if let Some(claim) = self.ledger.get(*g) {
                    self.dirty_pods.insert(claim.owner.pod.clone());
                }
            }
        }
    }

    /// A pod patch ended.
    pub fn patch_done(&mut self, uid: &PodUid, outcome: PatchOutcome) {
        self.patches.remove(uid);
        match outcome {
            PatchOutcome::Applied(view) => {
                self.patch_failed.remove(uid);
                self.apply_pod(view);
            }
            PatchOutcome::Conflict => {
                // Planned on a stale pod. The caller re-reads it and then calls `retry_pod`; planning
                // again before that would only conflict again.
                self.patch_failed.insert(uid.clone());
            }
            PatchOutcome::NotFound => self.delete_pod(uid),
            PatchOutcome::Failed { message, .. } => {
                self.patch_failed.insert(uid.clone());
                self.set_pending(uid, PendingReason::PatchFailed { message });
            }
        }
    }

    /// Lets a pod whose patch failed or conflicted be planned again.
    pub fn retry_pod(&mut self, uid: &PodUid) {
        if self.patch_failed.remove(uid) {
            self.dirty_pods.insert(uid.clone());
        }
    }

    // === reading ===

    pub fn pool(&self) -> &GuidPool {
        &self.pool
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn sm_membership(&self) -> &SmMembership {
        &self.sm
    }

    /// Stored ownership records.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Pool GUIDs in partitions that no record explains.
    pub fn unrecorded_count(&self) -> usize {
        self.unrecorded.len()
    }

    /// GUIDs whose last change has an unknown outcome.
    pub fn uncertain_count(&self) -> usize {
        self.uncertain.len()
    }

    pub fn pod(&self, uid: &PodUid) -> Option<&PodView> {
        self.pods.get(uid)
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn pending_reason(&self, uid: &PodUid) -> Option<&PendingReason> {
        self.pending.get(uid)
    }

    /// Pods waiting, counted by reason label.
    pub fn pending_by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for reason in self.pending.values() {
            *counts.entry(reason.label()).or_insert(0) += 1;
        }
        counts
    }

    /// Whether anything is still in flight or waiting to be planned.
    pub fn is_settled(&self) -> bool {
        !self.anchor_pending
            && self.sm_ops.is_empty()
            && self.patches.is_empty()
            && self.dirty_pods.is_empty()
            && self.dirty_guids.is_empty()
            && self.listing.is_none()
            && !self.list_wanted
            && self.records.is_settled()
    }

    // === helpers shared with the planner ===

    /// Keeps the pool equal to owned ∪ SM-held ∪ in flight for one GUID.
    pub(crate) fn sync_pool(&mut self, g: Guid) {
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
            self.out.released.push(g);
            self.exhaustion_listed = false;
            self.wake_blocked();
        }
    }

    pub(crate) fn wake_blocked(&mut self) {
        self.dirty_pods.extend(self.blocked_on_release.drain());
    }

    pub(crate) fn claim(&mut self, g: Guid, owner: InterfaceKey, pkey: Option<PKey>, configured: bool) {
        let node = self.pods.get(&owner.pod).and_then(|v| v.node_name.clone());
        self.count_node_pkey(node.as_deref(), pkey, true);
        self.out.allocated.push((g, owner.clone()));
        self.ledger.insert(g, Claim { owner, pkey, node, configured });
        self.sync_pool(g);
        self.dirty_guids.insert(g);
    }

    /// Drops an owner; the GUID leaves its partitions and returns to the pool once nothing holds it.
    pub(crate) fn unclaim(&mut self, g: Guid) {
        if let Some(claim) = self.ledger.remove(g) {
            self.count_node_pkey(claim.node.as_deref(), claim.pkey, false);
            self.dirty_guids.insert(g);
            self.sync_pool(g);
        }
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

    /// Records why a pod waits. An Event is raised only when the reason changes: a failure that comes
    /// back on every retry with a different detail is still the same reason.
    pub(crate) fn set_pending(&mut self, uid: &PodUid, reason: PendingReason) {
        if self.pending.get(uid).is_some_and(|old| old.same_as(&reason)) {
            return;
        }
        if let Some(view) = self.pods.get(uid) {
            self.out.pending.push(Pending { pod: view.pod_ref(), reason: reason.clone() });
        }
        self.pending.insert(uid.clone(), reason);
    }

    pub(crate) fn clear_pending(&mut self, uid: &PodUid) {
        self.pending.remove(uid);
    }
}

/// Drops what a pod's view need not keep: the annotation of a pod that cannot be configured now (not
/// scheduled, or finished) is read again from the watch when that changes, so only its presence is kept.
/// A tenant's unscheduled pods with huge annotations then cost a few bytes each.
fn compact(mut view: PodView) -> PodView {
    let scheduled = view.node_name.as_deref().is_some_and(|n| !n.is_empty());
    if (!scheduled || view.is_finished())
        && let Some(n) = view.networks.as_mut()
    {
        n.clear();
        n.shrink_to_fit();
    }
    view
}
