//! The planner: from what pods want and what is applied, the next subnet-manager requests and pod
//! patches.
//!
//! Rules (DESIGN §3, and the Go bugs of behaviour §10 they fix):
//! - A GUID joins its partition before its pod is marked `configured`; a pod is patched once, when every
//!   one of its IB interfaces is ready (B9).
//! - A GUID owned by a live pod is never given to another pod, even on request (B7); the newcomer waits
//!   with a reason and is woken when a GUID is released.
//! - Ownership comes from `configured` annotations and lasts until the pod is gone or finished (B5, B18);
//!   a duplicate among running pods is reported, never fatal (B8).
//! - A GUID of the range that the subnet manager holds and nobody owns, with nothing in flight, is
//!   removed from its partitions (B18); removal uses the partitions the GUID is known to be in, not the
//!   NAD's current pkey (B11).
//! - Nothing is decided before the pods, the NADs and the subnet manager have been read once, so the
//!   pool is the union of what pods own and what the subnet manager holds (B2, B3).

use std::collections::{BTreeMap, HashSet};

use crate::annotation::{NetworkRef, NetworksAnnotation};
use crate::guid::Guid;
use crate::nad::{IbSriovSpec, NadKind};
use crate::pending::PendingReason;
use crate::pkey::PKey;
use crate::pod::{InterfaceKey, PodUid, PodView};
use crate::state::{Plan, PodPatch, SmOp, SmRequest, State};

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
}

/// An unconfigured IB interface that the pod patch will mark configured.
struct Edit {
    index: usize,
    guid: Guid,
    generated: bool,
    spec: IbSriovSpec,
}

impl State {
    /// Decides what to do next. Deterministic: the same inputs give the same plan.
    pub fn plan(&mut self) -> Plan {
        if self.pods_synced && self.nads_synced {
            if self.sm_known {
                self.plan_dirty();
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
                self.record_configured(uid);
            }
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
    }

    fn plan_pod(&mut self, uid: &PodUid) {
        let view = match self.pods.get(uid) {
            Some(v) if !v.is_finished() && !v.host_network => v.clone(),
            // Gone, finished, or never ours: everything it owned goes back.
            _ => return self.forget_pod(uid),
        };
        let Some(raw) = view.networks.as_deref().filter(|r| !r.trim().is_empty()) else {
            // No networks: nothing to configure; configured GUIDs stay owned while the pod lives.
            self.register_nads(uid, Vec::new());
            self.drop_unconfigured_claims(uid, &HashSet::new());
            return self.clear_pending(uid);
        };
        let annotation = match NetworksAnnotation::parse(raw, &view.namespace) {
            Ok(a) => a,
            Err(e) => return self.set_pending(uid, PendingReason::AnnotationInvalid(e)),
        };

        let (mut reason, mut keep) = self.claim_configured_elements(uid, &annotation);

        let mut used_nads = Vec::new();
        let mut wanted = Vec::new();
        if view.wants_configuration() {
            // First decide, without changing anything, whether the pod can be configured at all: a pod
            // that cannot holds nothing new, so a waiting pod never keeps GUIDs or memberships.
            let mut requested_here = HashSet::new();
            for (index, s) in annotation.selections().iter().enumerate().filter(|(_, s)| !s.configured) {
                used_nads.push(s.network.clone());
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
                match self.source_for(&key, requested, &mut requested_here) {
                    Ok(source) => {
                        keep.insert(key.clone());
                        wanted.push(Wanted { index, key, spec, source, generated: requested.is_none() });
                    }
                    Err(r) => {
                        reason.get_or_insert(r);
                    }
                }
            }
            if reason.is_none()
                && let Some(node) = view.node_name.as_deref()
            {
                reason = self.check_node_pkeys(node, &wanted);
            }
            let to_generate = wanted.iter().filter(|w| w.source == Source::Generate).count() as u64;
            if reason.is_none() && to_generate > self.pool.free_count() {
                // The subnet manager may have freed GUIDs since it was last read (Go bug B1); read it once
                // per exhaustion, not once per attempt.
                if !self.exhaustion_listed {
                    self.exhaustion_listed = true;
                    self.list_wanted = true;
                }
                reason = Some(PendingReason::PoolExhausted { range: self.range, capacity: self.pool.capacity() });
            }
        }
        self.register_nads(uid, used_nads);
        if let Some(r) = reason {
            if matches!(
                r,
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
            return self.set_pending(uid, r);
        }
        self.drop_unconfigured_claims(uid, &keep);

        let mut edits = Vec::new();
        let mut ready = true;
        let mut failure = None;
        for w in wanted {
            let guid = self.take_guid(&w);
            let member = match w.spec.pkey {
                None => true,
                Some(pk) => self.sm.has(guid, pk) && !self.sm_ops.contains_key(&guid),
            };
            if !member {
                ready = false;
                if let Some(message) = self.sm_failed.get(&guid) {
                    failure.get_or_insert(PendingReason::SubnetManagerFailed { message: message.clone() });
                }
            }
            edits.push(Edit { index: w.index, guid, generated: w.generated, spec: w.spec });
        }
        if let Some(r) = failure {
            return self.set_pending(uid, r);
        }
        if self.patch_failed.contains(uid) {
            return;
        }
        self.clear_pending(uid);
        if ready && !edits.is_empty() && !self.patches.contains_key(uid) {
            self.patch(&view, annotation, edits);
        }
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

    /// Records what the pod's `configured` elements own; returns a reason when another live pod owns one
    /// of them, and the identities of those elements.
    fn claim_configured_elements(
        &mut self,
        uid: &PodUid,
        annotation: &NetworksAnnotation,
    ) -> (Option<PendingReason>, HashSet<InterfaceKey>) {
        let mut reason = None;
        let mut keep = HashSet::new();
        for s in annotation.selections().iter().filter(|s| s.configured) {
            let key = InterfaceKey { pod: uid.clone(), network: s.network.clone(), interface: s.interface.clone() };
            keep.insert(key.clone());
            // A configured element whose GUID does not parse or lies outside the range is not ours to
            // manage (the Go daemon skips it too).
            let Some(guid) = s.guid.as_ref().and_then(|(t, _)| Guid::parse(t).ok()) else {
                continue;
            };
            if !self.range.contains(guid) {
                continue;
            }
            let pkey = match s.pkey.as_deref() {
                Some(p) => PKey::parse(p).ok(),
                // Releases of ib-kubernetes before the partition was recorded in cni-args wrote only the
                // marker; their pods are in their NAD's partition (the Go daemon also uses the NAD's).
                None => self.nad_pkey(&key.network),
            };
            if let Some(r) = self.claim_configured(guid, key, pkey) {
                reason.get_or_insert(r);
            }
        }
        (reason, keep)
    }

    /// The partition of an InfiniBand NAD, when it is known and has one.
    fn nad_pkey(&self, network: &NetworkRef) -> Option<PKey> {
        match self.nads.get(network) {
            Some(Ok(NadKind::InfiniBand(spec))) => spec.pkey,
            _ => None,
        }
    }

    /// The first half of planning a pod, done for every dirty pod before any GUID is handed out: what
    /// the cluster says is configured is owned, so it can never be generated for someone else.
    fn record_configured(&mut self, uid: &PodUid) {
        let Some(view) = self.pods.get(uid).filter(|v| !v.is_finished() && !v.host_network) else { return };
        let Some(Ok(annotation)) = view.networks.as_deref().map(|raw| NetworksAnnotation::parse(raw, &view.namespace))
        else {
            return;
        };
        self.claim_configured_elements(uid, &annotation);
    }

    /// Records ownership read from a `configured` element. Returns a reason when another live pod
    /// already owns the GUID.
    fn claim_configured(&mut self, guid: Guid, key: InterfaceKey, pkey: Option<PKey>) -> Option<PendingReason> {
        let entitled = matches!(
            self.nads.get(&key.network),
            Some(Ok(NadKind::InfiniBand(spec))) if spec.pkey == pkey
        );
        if let Some(old) = self.ledger.guid_of(&key).filter(|g| *g != guid) {
            if self.is_configured(old) {
                // Configured claims are never moved: the VF may still carry the old GUID.
                return None;
            }
            self.unclaim(old);
        }
        let current = self.ledger.get(guid).map(|c| (c.owner.clone(), c.configured, c.pkey));
        match current {
            Some((owner, configured, old_pkey)) if owner == key => {
                if let Some(c) = self.ledger.get_mut(guid) {
                    c.entitled = entitled;
                }
                if !configured || old_pkey != pkey {
                    if let Some(c) = self.ledger.get_mut(guid) {
                        c.configured = true;
                    }
                    self.set_claim_pkey(guid, pkey);
                    self.dirty_guids.insert(guid);
                }
                None
            }
            Some((owner, configured, _)) if configured || self.patches.contains_key(&owner.pod) => {
                Some(PendingReason::DuplicateGuid {
                    network: key.network,
                    interface: key.interface,
                    guid,
                    owner: self.describe_owner(&owner.pod),
                })
            }
            Some((owner, _, _)) => {
                // The cluster says this pod is configured with it; the other claim was only in progress.
                self.unclaim(guid);
                self.dirty_pods.insert(owner.pod);
                self.claim(guid, key, pkey, true, entitled);
                None
            }
            None => {
                self.claim(guid, key, pkey, true, entitled);
                None
            }
        }
    }

    /// Where an unconfigured interface's GUID comes from: what it already holds, what the user asked
    /// for, or a fresh one. Changes nothing.
    fn source_for(
        &self,
        key: &InterfaceKey,
        requested: Option<&str>,
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
                let in_use = |owner: String| PendingReason::GuidInUse {
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
                    return Err(in_use(self.describe_owner(&claim.owner.pod)));
                }
                if !requested_here.insert(r) {
                    return Err(in_use(self.describe_owner(&key.pod)));
                }
                Ok(Source::Requested(r))
            }
            (None, None) => Ok(Source::Generate),
        }
    }

    /// Claims the GUID decided by [`source_for`](Self::source_for).
    fn take_guid(&mut self, w: &Wanted) -> Guid {
        let guid = match w.source {
            Source::Held(g) => g,
            Source::Requested(r) => {
                if let Some(old) = self.ledger.guid_of(&w.key).filter(|g| *g != r) {
                    // The user changed the request before configuration finished.
                    self.unclaim(old);
                }
                if !self.ledger.contains(r) {
                    self.claim(r, w.key.clone(), w.spec.pkey, false, true);
                }
                r
            }
            Source::Generate => {
                // The free count was checked before anything was claimed, so this cannot fail.
                let Ok(g) = self.pool.generate() else { unreachable!("free GUIDs were counted") };
                self.claim(g, w.key.clone(), w.spec.pkey, false, true);
                g
            }
        };
        if self.ledger.get(guid).is_some_and(|c| !c.configured && c.pkey != w.spec.pkey) {
            // The NAD's pkey changed while the pod waited: the GUID moves with it.
            self.set_claim_pkey(guid, w.spec.pkey);
        }
        self.dirty_guids.insert(guid);
        guid
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

    /// The next change for one GUID: join the partition its owner needs, or leave one nobody needs.
    fn plan_guid(&mut self, g: Guid) -> Option<(SmOp, PKey)> {
        if !self.range.contains(g) || self.sm_ops.contains_key(&g) || self.sm_failed.contains_key(&g) {
            return None;
        }
        let wanted = self.ledger.get(g).and_then(|c| c.pkey);
        let entitled = self.ledger.get(g).is_some_and(|c| c.entitled);
        let unowned = !self.ledger.contains(g) && !self.dropped.contains(&g);
        let next = match wanted {
            Some(pk) if !self.sm.has(g, pk) && entitled => Some((SmOp::Add, pk)),
            Some(pk) if !self.sm.has(g, pk) => None,
            _ if unowned && self.drift_held => None,
            _ => self.sm.managed(g).find(|pk| Some(*pk) != wanted).map(|pk| (SmOp::Remove, pk)),
        };
        match next {
            Some(op) => {
                if op.0 == SmOp::Remove && unowned {
                    self.out.drift.push(g);
                }
                self.sm_ops.insert(g, op);
                self.sync_pool(g);
            }
            None => self.sync_pool(g),
        }
        next
    }

    /// A pod that is gone, finished or host-networked: it owns nothing and waits for nothing.
    fn forget_pod(&mut self, uid: &PodUid) {
        for g in self.ledger.guids_of_pod(uid) {
            self.unclaim(g);
        }
        self.register_nads(uid, Vec::new());
        self.blocked_on_release.remove(uid);
        self.patch_failed.remove(uid);
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

    fn describe_owner(&self, uid: &PodUid) -> String {
        self.pods.get(uid).map_or_else(|| format!("uid {uid}"), |v| format!("{}/{}", v.namespace, v.name))
    }
}

#[cfg(test)]
mod tests;
