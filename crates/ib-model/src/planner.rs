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

use std::collections::{BTreeMap, HashSet};

use crate::annotation::{MAX_IB_INTERFACES_PER_POD, NetworkRef, NetworksAnnotation};
use crate::guid::Guid;
use crate::nad::{IbSriovSpec, NadKind};
use crate::pending::PendingReason;
use crate::pkey::PKey;
use crate::pod::{InterfaceKey, PodUid, PodView};
use crate::records::{BlockId, Record, RecordChange, RecordState, RecordWrite, owner_hash};
use crate::state::{Imported, Notice, Plan, PodPatch, SmOp, SmRequest, State};

/// Re-planning passes per call: a release in one pass can wake pods for the next. Work left after the
/// last pass stays dirty for the next call, so this only bounds the length of one call.
const MAX_PASSES: usize = 4;
/// Partition keys one node's ports can hold (the pkey table of current ConnectX adapters and the
/// limit the Go daemon's README documents).
pub const MAX_PKEYS_PER_NODE: usize = 128;

/// Where an unconfigured interface's GUID comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Held(Guid),
    Requested(Guid),
    Generate,
}

/// An unconfigured IB interface the pod can have.
struct Wanted {
    index: usize,
    key: InterfaceKey,
    spec: IbSriovSpec,
    source: Source,
    generated: bool,
    /// The element already says `configured` (with a GUID no record backs: a request for it).
    marked: bool,
}

/// An unconfigured IB interface that the pod patch will mark configured.
struct Edit {
    index: usize,
    guid: Guid,
    generated: bool,
    marked: bool,
    spec: IbSriovSpec,
}

impl State {
    /// Decides what to do next. Deterministic: the same inputs give the same plan.
    pub fn plan(&mut self) -> Plan {
        if self.pods_synced && self.nads_synced {
            if self.sm_known && self.records_read.is_some() {
                if self.records_read == Some(true) {
                    self.import_from_annotations();
                }
                if self.anchor_pending {
                    self.send_anchor();
                } else {
                    self.plan_dirty();
                }
            }
            // After planning: exhaustion found while planning asks for a listing at once.
            if self.list_wanted && self.listing.is_none() {
                self.list_wanted = false;
                self.listing = Some(self.seq);
                self.out.list_sm = true;
            }
        }
        std::mem::take(&mut self.out)
    }

    fn plan_dirty(&mut self) {
        let mut requests: BTreeMap<(SmOp, PKey), Vec<Guid>> = BTreeMap::new();
        for _ in 0..MAX_PASSES {
            if self.dirty_pods.is_empty() && self.dirty_guids.is_empty() {
                break;
            }
            let pods = std::mem::take(&mut self.dirty_pods);
            for uid in &pods {
                self.plan_pod(uid);
            }
            for g in std::mem::take(&mut self.dirty_guids) {
                if let Some((op, pkey)) = self.plan_guid(g) {
                    requests.entry((op, pkey)).or_default().push(g);
                }
            }
        }
        self.out.sm.extend(requests.into_iter().map(|((op, pkey), guids)| SmRequest { op, pkey, guids }));
        self.plan_records();
    }

    /// The first start without any records (coming from the Go daemon or an earlier version): the
    /// configured elements of live pods are taken as owned, once, oldest pod first, and recorded. The
    /// anchor block is written even when nothing is imported, so that no later start imports again.
    fn import_from_annotations(&mut self) {
        self.records_read = Some(false);
        let mut imported = Imported::default();
        for uid in self.pods_by_age() {
            let Some(view) = self.pods.get(&uid).filter(|v| !v.is_finished() && !v.host_network) else { continue };
            let Some(Ok(annotation)) =
                view.networks.as_deref().map(|raw| NetworksAnnotation::parse(raw, &view.namespace))
            else {
                continue;
            };
            let namespace = view.namespace.clone();
            for s in annotation.selections().iter().filter(|s| s.configured) {
                let Some(guid) = s.guid.as_ref().and_then(|(t, _)| Guid::parse(t).ok()) else { continue };
                if !self.range.contains(guid) {
                    continue;
                }
                let key = InterfaceKey { pod: uid.clone(), network: s.network.clone(), interface: s.interface.clone() };
                if let Some(owner) = self.ledger.get(guid).map(|c| c.owner.pod.clone()) {
                    imported.duplicates += 1;
                    let reason = PendingReason::DuplicateGuid {
                        network: key.network,
                        interface: key.interface,
                        guid,
                        owner: self.describe_owner(&owner, &namespace),
                    };
                    self.set_pending(&uid, reason);
                    continue;
                }
                let nad = self.nads.get(&key.network);
                let nad_pkey = self.nad_pkey(&key.network);
                let written = match s.pkey.as_deref() {
                    Some(p) => PKey::parse(p).ok(),
                    // Releases before the partition was recorded in cni-args wrote only the marker; their
                    // pods are in their NAD's partition.
                    None => nad_pkey,
                };
                // Anyone who can edit a pod could have written the marker: it is imported only with
                // evidence, the membership it names in the subnet manager, or, for a GUID-only network
                // (which the subnet manager knows nothing of), an existing GUID-only NAD. Without it the
                // marker is a request like any other once the import is final.
                let evidence = match written {
                    Some(p) => self.sm.has(guid, p),
                    None => matches!(nad, Some(Ok(NadKind::InfiniBand(spec))) if spec.pkey.is_none()),
                };
                if !evidence {
                    continue;
                }
                let pkey = written;
                imported.interfaces += 1;
                self.claim(guid, key, pkey, true);
            }
            self.dirty_pods.insert(uid);
        }
        self.anchor_pending = true;
        self.anchor_may_send = true;
        self.out.imported = Some(imported);
    }

    /// The anchor block's write, which makes the import final: sent at once, and again after each
    /// failure once the caller's backoff is over. Nothing else is decided meanwhile.
    fn send_anchor(&mut self) {
        let anchor = self.anchor_block();
        if self.anchor_may_send && self.records.writes_to(anchor) == 0 {
            self.anchor_may_send = false;
            let write = RecordWrite { block: anchor, changes: BTreeMap::new() };
            self.records.sent(&write);
            self.out.records.push(write);
        }
    }

    fn plan_pod(&mut self, uid: &PodUid) {
        let view = match self.pods.get(uid) {
            Some(v) if !v.is_finished() && !v.host_network => v.clone(),
            // Gone, finished, or never ours: everything it owned goes back.
            _ => return self.forget_pod(uid),
        };
        let Some(raw) = view.networks.as_deref().filter(|r| !r.trim().is_empty()) else {
            // No networks (or a pod not scheduled): nothing to configure; recorded GUIDs stay owned
            // while the pod lives.
            self.register_nads(uid, Vec::new());
            self.drop_unconfigured_claims(uid, &HashSet::new());
            return self.clear_pending(uid);
        };
        let annotation = match NetworksAnnotation::parse(raw, &view.namespace) {
            Ok(a) => a,
            Err(e) => return self.set_pending(uid, PendingReason::AnnotationInvalid(e)),
        };

        let mut reason = None;
        let mut keep = HashSet::new();
        let mut unbacked = HashSet::new();
        let mut owned = 0;
        for (index, s) in annotation.selections().iter().enumerate().filter(|(_, s)| s.configured) {
            let key = InterfaceKey { pod: uid.clone(), network: s.network.clone(), interface: s.interface.clone() };
            keep.insert(key.clone());
            // A configured element whose GUID does not parse or lies outside the range is not ours to
            // manage.
            let Some(guid) = s.guid.as_ref().and_then(|(t, _)| Guid::parse(t).ok()) else { continue };
            if !self.range.contains(guid) {
                continue;
            }
            match self.ledger.get(guid).map(|c| c.owner.clone()) {
                Some(owner) if owner == key => {
                    owned += 1;
                    if let Some(c) = self.ledger.get_mut(guid) {
                        c.configured = true;
                    }
                    self.tell_if_partition_kept(&view, guid, &key.network);
                }
                Some(owner) => {
                    reason.get_or_insert(PendingReason::DuplicateGuid {
                        network: key.network,
                        interface: key.interface,
                        guid,
                        owner: self.describe_owner(&owner.pod, &view.namespace),
                    });
                }
                // The interface owns another GUID by record: that one stands, the text is ignored.
                None if self.ledger.guid_of(&key).is_some() => owned += 1,
                None => {
                    unbacked.insert(index);
                }
            }
        }

        let mut used_nads = Vec::new();
        let mut wanted = Vec::new();
        if view.wants_configuration() {
            // First decide, without changing anything, whether the pod can be configured at all: a pod
            // that cannot holds nothing new, so a waiting pod never keeps GUIDs or memberships.
            let mut requested_here = HashSet::new();
            let selections = annotation.selections().iter().enumerate();
            for (index, s) in selections.filter(|(i, s)| !s.configured || unbacked.contains(i)) {
                used_nads.push(s.network.clone());
                if self.policy.namespace_isolation
                    && s.network.namespace != view.namespace
                    && !self.policy.global_namespaces.contains(&s.network.namespace)
                {
                    reason.get_or_insert(PendingReason::NamespaceNotAllowed { network: s.network.clone() });
                    continue;
                }
                let spec = match self.nads.get(&s.network) {
                    None => {
                        reason.get_or_insert(PendingReason::NadMissing { network: s.network.clone() });
                        continue;
                    }
                    Some(Err(error)) => {
                        reason.get_or_insert(PendingReason::NadInvalid {
                            network: s.network.clone(),
                            error: error.clone(),
                        });
                        continue;
                    }
                    Some(Ok(NadKind::Other)) => continue,
                    Some(Ok(NadKind::InfiniBand(spec))) => spec.clone(),
                };
                let key = InterfaceKey { pod: uid.clone(), network: s.network.clone(), interface: s.interface.clone() };
                let requested = s.guid.as_ref().map(|(t, _)| t.as_str());
                match self.source_for(&key, requested, &view.namespace, &mut requested_here) {
                    Ok(source) => {
                        keep.insert(key.clone());
                        let (generated, marked) = (requested.is_none(), s.configured);
                        wanted.push(Wanted { index, key, spec, source, generated, marked });
                    }
                    Err(r) => {
                        reason.get_or_insert(r);
                    }
                }
            }
            let count = owned + wanted.len();
            if reason.is_none() && count > MAX_IB_INTERFACES_PER_POD {
                reason = Some(PendingReason::TooManyInterfaces { count, limit: MAX_IB_INTERFACES_PER_POD });
            }
            if reason.is_none()
                && let Some(node) = view.node_name.as_deref()
            {
                reason = self.check_node_pkeys(node, &wanted);
            }
            // Requested GUIDs not held yet come out of the free pool just like generated ones.
            let from_pool = wanted.iter().filter(|w| !matches!(w.source, Source::Held(_))).count() as u64;
            if reason.is_none() && from_pool > self.pool.free_count() {
                // The subnet manager may have freed GUIDs since it was last read; read it once per
                // exhaustion, not once per attempt.
                if !self.exhaustion_listed {
                    self.exhaustion_listed = true;
                    self.list_wanted = true;
                }
                reason = Some(PendingReason::PoolExhausted { range: self.range, capacity: self.pool.capacity() });
            }
        }
        self.register_nads(uid, used_nads);
        if let Some(r) = reason {
            return self.wait(uid, r, keep);
        }
        self.drop_unconfigured_claims(uid, &keep);

        let mut edits = Vec::new();
        let mut ready = true;
        let mut failure = None;
        for w in wanted {
            let Some(guid) = self.take_guid(&w) else {
                let r = PendingReason::PoolExhausted { range: self.range, capacity: self.pool.capacity() };
                return self.wait(uid, r, HashSet::new());
            };
            let member = match w.spec.pkey {
                None => true,
                Some(pk) => self.sm.has(guid, pk) && !self.sm_ops.contains_key(&guid),
            };
            if !member || !self.record_matches(guid) {
                ready = false;
                if let Some(kind) = self.sm_failed.get(&guid) {
                    failure.get_or_insert(PendingReason::SubnetManagerFailed { kind });
                }
            }
            edits.push(Edit { index: w.index, guid, generated: w.generated, marked: w.marked, spec: w.spec });
        }
        if let Some(r) = failure {
            return self.set_pending(uid, r);
        }
        if self.patch_failed.contains(uid) {
            return;
        }
        // A failure being retried stays the pod's reason until it is configured, so that the same
        // failure coming back raises no second Event.
        let retrying = matches!(
            self.pending.get(uid),
            Some(PendingReason::SubnetManagerFailed { .. } | PendingReason::PatchFailed { .. })
        );
        if ready || !retrying {
            self.clear_pending(uid);
        }
        if !ready || edits.is_empty() || self.patches.contains_key(uid) {
            return;
        }
        if edits.iter().all(|e| e.marked && !e.generated) {
            // The annotation already says so: nothing to write.
            for e in &edits {
                if let Some(c) = self.ledger.get_mut(e.guid) {
                    c.configured = true;
                }
            }
            return;
        }
        self.patch(&view, annotation, edits);
    }

    /// The pod waits for `reason`: it keeps only what it is configured with.
    fn wait(&mut self, uid: &PodUid, reason: PendingReason, keep: HashSet<InterfaceKey>) {
        if matches!(
            reason,
            PendingReason::GuidInUse { .. }
                | PendingReason::DuplicateGuid { .. }
                | PendingReason::PoolExhausted { .. }
                | PendingReason::TooManyPKeys { .. }
        ) {
            self.blocked_on_release.insert(uid.clone());
        }
        let configured_only: HashSet<InterfaceKey> =
            keep.into_iter().filter(|k| self.ledger.guid_of(k).is_some_and(|g| self.is_configured(g))).collect();
        self.drop_unconfigured_claims(uid, &configured_only);
        self.set_pending(uid, reason);
    }

    /// A running pod whose NAD now names another partition (or is gone) keeps the one it was recorded
    /// with; it is told once.
    fn tell_if_partition_kept(&mut self, view: &PodView, guid: Guid, network: &NetworkRef) {
        let Some(kept) = self.ledger.get(guid).map(|c| c.pkey) else { return };
        let now = match self.nads.get(network) {
            Some(Ok(NadKind::InfiniBand(spec))) => Some(spec.pkey),
            Some(_) => None,
            None => None,
        };
        if now == Some(kept) || !self.told_kept.insert((view.uid.clone(), network.clone())) {
            return;
        }
        let name = |p: Option<PKey>| p.map_or_else(|| "no partition".to_owned(), |p| format!("partition {p}"));
        let change = match now {
            Some(p) => format!("now names {}", name(p)),
            None => "is gone or no longer InfiniBand".to_owned(),
        };
        self.out.notices.push(Notice {
            pod: view.pod_ref(),
            reason: "PartitionKept",
            message: format!(
                "network {network}: the NetworkAttachmentDefinition {change}; this pod keeps {} until it ends, because its interface was set up for it",
                name(kept)
            ),
        });
    }

    /// The kernel's pkey table holds 128 entries per port: a pod whose new partitions would push its
    /// node past that waits with a clear reason instead of failing later inside the CNI.
    fn check_node_pkeys(&self, node: &str, wanted: &[Wanted]) -> Option<PendingReason> {
        let used = self.node_pkeys.get(node);
        let new: std::collections::BTreeSet<PKey> =
            wanted.iter().filter_map(|w| w.spec.pkey).filter(|pk| used.is_none_or(|m| !m.contains_key(pk))).collect();
        let total = used.map_or(0, |m| m.len()) + new.len();
        (!new.is_empty() && total > MAX_PKEYS_PER_NODE)
            .then(|| PendingReason::TooManyPKeys { node: node.to_owned(), limit: MAX_PKEYS_PER_NODE })
    }

    fn is_configured(&self, g: Guid) -> bool {
        self.ledger.get(g).is_some_and(|c| c.configured)
    }

    /// The partition of an InfiniBand NAD, when it is known and has one.
    fn nad_pkey(&self, network: &NetworkRef) -> Option<PKey> {
        match self.nads.get(network) {
            Some(Ok(NadKind::InfiniBand(spec))) => spec.pkey,
            _ => None,
        }
    }

    /// Where an unconfigured interface's GUID comes from: what it already holds, what the user asked
    /// for, or a fresh one. Changes nothing.
    fn source_for(
        &self,
        key: &InterfaceKey,
        requested: Option<&str>,
        namespace: &str,
        requested_here: &mut HashSet<Guid>,
    ) -> Result<Source, PendingReason> {
        let existing = self.ledger.guid_of(key);
        let requested = match requested.map(Guid::parse) {
            None => None,
            Some(Ok(g)) => Some(g),
            Some(Err(error)) => {
                return Err(PendingReason::GuidInvalid {
                    network: key.network.clone(),
                    interface: key.interface.clone(),
                    error,
                });
            }
        };
        match (existing, requested) {
            (Some(g), None) => Ok(Source::Held(g)),
            (Some(g), Some(r)) if g == r => Ok(Source::Held(g)),
            (Some(g), Some(_)) if self.is_configured(g) => Ok(Source::Held(g)),
            (_, Some(r)) => {
                let in_use = |owner: Option<String>| PendingReason::GuidInUse {
                    network: key.network.clone(),
                    interface: key.interface.clone(),
                    guid: r,
                    owner,
                };
                if !self.range.contains(r) {
                    return Err(PendingReason::GuidOutOfRange {
                        network: key.network.clone(),
                        interface: key.interface.clone(),
                        guid: r,
                        range: self.range,
                    });
                }
                if let Some(claim) = self.ledger.get(r).filter(|c| &c.owner != key) {
                    return Err(in_use(self.describe_owner(&claim.owner.pod, namespace)));
                }
                // Held without an owner: in a partition no record of ours explains (another cluster's
                // or a person's), leaving one, or with an outcome not known yet.
                if !self.ledger.contains(r) && self.pool.is_allocated(r) {
                    return Err(in_use(None));
                }
                if !requested_here.insert(r) {
                    return Err(in_use(self.describe_owner(&key.pod, namespace)));
                }
                Ok(Source::Requested(r))
            }
            (None, None) => Ok(Source::Generate),
        }
    }

    /// Claims the GUID decided by [`source_for`](Self::source_for); `None` if the pool ran out after all.
    fn take_guid(&mut self, w: &Wanted) -> Option<Guid> {
        let guid = match w.source {
            Source::Held(g) => g,
            Source::Requested(r) => {
                if let Some(old) = self.ledger.guid_of(&w.key).filter(|g| *g != r) {
                    // The user changed the request before configuration finished.
                    self.unclaim(old);
                }
                if !self.ledger.contains(r) {
                    if self.pool.is_allocated(r) {
                        return None;
                    }
                    self.claim(r, w.key.clone(), w.spec.pkey, false);
                }
                r
            }
            Source::Generate => {
                let g = self.pool.generate().ok()?;
                self.claim(g, w.key.clone(), w.spec.pkey, false);
                g
            }
        };
        if self.ledger.get(guid).is_some_and(|c| !c.configured && c.pkey != w.spec.pkey) {
            // The NAD's pkey changed while the pod waited: the GUID moves with it.
            self.set_claim_pkey(guid, w.spec.pkey);
        }
        self.dirty_guids.insert(guid);
        Some(guid)
    }

    fn patch(&mut self, view: &PodView, mut annotation: NetworksAnnotation, edits: Vec<Edit>) {
        let mut guids = Vec::with_capacity(edits.len());
        for e in edits {
            if e.generated {
                annotation.set_guid(e.index, e.guid, e.spec.runtime_config_guid);
            }
            annotation.mark_configured(e.index, &e.spec.pkey_text);
            guids.push(e.guid);
        }
        self.patches.insert(view.uid.clone(), view.resource_version.clone());
        self.out.patches.push(PodPatch {
            pod: view.pod_ref(),
            resource_version: view.resource_version.clone(),
            annotation: annotation.to_json(),
            guids,
        });
    }

    /// Whether the stored record of `g` is the one its claim needs (owner and partition).
    pub(crate) fn record_matches(&self, g: Guid) -> bool {
        match (self.ledger.get(g), self.records.get(g)) {
            (Some(c), Some(s)) => s.pkey == c.pkey && s.pod == c.owner.pod && s.owner_hash == owner_hash(&c.owner),
            _ => false,
        }
    }

    /// The next change for one GUID: leave the partition its record names once nobody wants it there,
    /// join the one its owner needs once that is recorded, and report memberships nobody recorded.
    fn plan_guid(&mut self, g: Guid) -> Option<(SmOp, PKey)> {
        self.records.mark(g);
        if !self.range.contains(g)
            || self.sm_ops.contains_key(&g)
            || self.sm_failed.contains_key(&g)
            || self.uncertain.contains_key(&g)
        {
            self.sync_pool(g);
            return None;
        }
        let wanted = self.ledger.get(g).and_then(|c| c.pkey);
        let recorded = self.records.get(g).and_then(|s| s.pkey);
        let next = if let Some(old) = recorded.filter(|p| Some(*p) != wanted && self.sm.has(g, *p)) {
            Some((SmOp::Remove, old))
        } else if let Some(pk) = wanted.filter(|p| !self.sm.has(g, *p)) {
            // Not before its record is stored: a crash after the add must leave a record behind.
            self.record_matches(g).then_some((SmOp::Add, pk))
        } else {
            let unexplained: Vec<PKey> =
                self.sm.managed(g).filter(|p| Some(*p) != recorded && Some(*p) != wanted).collect();
            match unexplained.first() {
                None => {
                    self.unrecorded.remove(&g);
                    None
                }
                Some(p) => {
                    if self.unrecorded.insert(g) {
                        self.out.unrecorded.push(g);
                    }
                    let remove = self.policy.remove_unrecorded && !self.drift_held;
                    if remove {
                        self.out.drift.push(g);
                    }
                    remove.then_some((SmOp::Remove, *p))
                }
            }
        };
        if let Some(op) = next {
            self.sm_ops.insert(g, op);
        }
        self.sync_pool(g);
        next
    }

    /// Record writes for every GUID whose stored record differs from what is wanted, one merge patch per
    /// block; a GUID already in a write in flight, or a block with as many writes in flight as it may
    /// have, waits for one to end.
    ///
    /// A change that [can wait](RecordChange::can_wait) goes only with a write the block gets anyway,
    /// or when the caller flushes.
    fn plan_records(&mut self) {
        let flush = self.records.take_flush();
        let mut writes: BTreeMap<BlockId, BTreeMap<Guid, RecordChange>> = BTreeMap::new();
        let mut deferred = Vec::new();
        let mut can_wait = Vec::new();
        for g in self.records.take_dirty() {
            self.records.stop_waiting(g);
            let block = BlockId::of(g);
            if self.records.is_in_flight(g) || self.records.is_full(block) {
                deferred.push(g);
                continue;
            }
            match self.record_change(g) {
                Some(change) if change.can_wait() && !flush => can_wait.push((g, change)),
                Some(change) => {
                    writes.entry(block).or_default().insert(g, change);
                }
                None => {}
            }
        }
        for g in deferred {
            self.records.mark(g);
        }
        for (g, change) in can_wait {
            match writes.get_mut(&BlockId::of(g)) {
                Some(changes) => {
                    changes.insert(g, change);
                }
                None => self.records.wait(g),
            }
        }
        // Changes that waited in an earlier plan go with this plan's write to their block.
        for (block, changes) in &mut writes {
            for g in self.records.take_waiting_in(*block) {
                if self.records.is_in_flight(g) {
                    self.records.mark(g);
                } else if let Some(change) = self.record_change(g) {
                    changes.insert(g, change);
                }
            }
        }
        for (block, changes) in writes {
            let write = RecordWrite { block, changes };
            self.records.sent(&write);
            self.out.records.push(write);
        }
    }

    /// What the stored record of `g` must become, if anything.
    fn record_change(&self, g: Guid) -> Option<RecordChange> {
        if !self.range.contains(g) {
            return None;
        }
        let stored = self.records.get(g);
        let in_flight = self.sm_ops.contains_key(&g) || self.uncertain.contains_key(&g);
        let Some(claim) = self.ledger.get(g) else {
            let s = stored?;
            let member = s.pkey.is_some_and(|p| self.sm.has(g, p));
            let state = if self.uncertain.contains_key(&g) { RecordState::Unknown } else { RecordState::Releasing };
            return match (member || in_flight, s.state == state) {
                (false, _) => Some(RecordChange::Delete),
                (true, true) => None,
                (true, false) => Some(RecordChange::State(state)),
            };
        };
        let state = if self.uncertain.contains_key(&g) {
            RecordState::Unknown
        } else {
            match claim.pkey {
                Some(p) if !self.sm.has(g, p) => RecordState::Reserved,
                _ => RecordState::Member,
            }
        };
        if let Some(s) = stored
            && s.pkey != claim.pkey
            && s.pkey.is_some_and(|p| self.sm.has(g, p) || in_flight)
        {
            // The membership the stored record names goes first; until then the record keeps naming it.
            return None;
        }
        if self.record_matches(g) {
            return (stored.map(|s| s.state) != Some(state)).then_some(RecordChange::State(state));
        }
        let pod = self.pods.get(&claim.owner.pod)?;
        Some(RecordChange::Set(Record {
            owner: claim.owner.clone(),
            pod_namespace: pod.namespace.clone(),
            pod_name: pod.name.clone(),
            pkey: claim.pkey,
            state,
        }))
    }

    /// A pod that is gone, finished or host-networked: it owns nothing and waits for nothing.
    fn forget_pod(&mut self, uid: &PodUid) {
        for g in self.ledger.guids_of_pod(uid) {
            self.unclaim(g);
        }
        self.register_nads(uid, Vec::new());
        self.blocked_on_release.remove(uid);
        self.patch_failed.remove(uid);
        if !self.told_kept.is_empty() {
            self.told_kept.retain(|(p, _)| p != uid);
        }
        self.clear_pending(uid);
    }

    /// In-progress claims of interfaces the pod no longer asks for (annotation edited, NAD no longer IB,
    /// pod terminating) are dropped; configured ones stay.
    fn drop_unconfigured_claims(&mut self, uid: &PodUid, keep: &HashSet<InterfaceKey>) {
        if self.patches.contains_key(uid) {
            return;
        }
        for g in self.ledger.guids_of_pod(uid) {
            if self.ledger.get(g).is_some_and(|c| !c.configured && !keep.contains(&c.owner)) {
                self.unclaim(g);
            }
        }
    }

    fn register_nads(&mut self, uid: &PodUid, mut nads: Vec<NetworkRef>) {
        nads.sort();
        nads.dedup();
        for old in self.pod_nads.remove(uid).unwrap_or_default() {
            if let Some(users) = self.nad_users.get_mut(&old) {
                users.remove(uid);
                if users.is_empty() {
                    self.nad_users.remove(&old);
                }
            }
        }
        if nads.is_empty() {
            return;
        }
        for n in &nads {
            self.nad_users.entry(n.clone()).or_default().insert(uid.clone());
        }
        self.pod_nads.insert(uid.clone(), nads);
    }

    /// The owning pod's name, for a pod of `namespace`: named only within the same namespace.
    fn describe_owner(&self, owner: &PodUid, namespace: &str) -> Option<String> {
        self.pods.get(owner).filter(|v| v.namespace == namespace).map(|v| format!("{}/{}", v.namespace, v.name))
    }
}

#[cfg(test)]
mod tests;
