//! Planning one pod: what it wants, whether it can have it, the GUIDs it takes and its patch.

use super::*;

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

impl Planner<'_> {
    pub(super) fn plan_pod(&mut self, uid: &PodUid) {
        let view = match self.known.pod(uid) {
            Some(v) if !v.is_finished() && !v.host_network => v.clone(),
            // Gone, finished, or never ours: everything it owned goes back.
            _ => return self.forget_pod(uid),
        };
        // The annotation is read through the shared borrow of what is known, not through `self`,
        // which the rest of this plan changes.
        let known = self.known;
        let networks = known.networks(uid);
        let Some(raw) = networks.as_deref().filter(|r| !r.trim().is_empty()) else {
            // No networks (or a pod not scheduled): nothing to configure; recorded GUIDs stay owned
            // while the pod lives.
            self.waits.set_nads(uid, Vec::new());
            self.drop_unconfigured_claims(uid, &HashSet::new());
            return self.waits.clear(uid);
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
            let key =
                InterfaceKey { pod: uid.clone(), network: s.network.clone(), interface: s.interface.as_str().into() };
            keep.insert(key.clone());
            // A configured element whose GUID does not parse or lies outside the range is not ours to
            // manage.
            let Some(guid) = s.guid.as_ref().and_then(|(t, _)| Guid::parse(t).ok()) else { continue };
            if !self.owners.range().contains(guid) {
                continue;
            }
            match self.owners.ledger().get(guid).map(|c| c.owner.clone()) {
                Some(owner) if owner == key => {
                    owned += 1;
                    self.owners.mark_configured(guid);
                    self.tell_if_partition_kept(&view, guid, &key.network);
                }
                Some(owner) => {
                    reason.get_or_insert(PendingReason::DuplicateGuid {
                        network: key.network,
                        interface: key.interface.to_string(),
                        guid,
                        owner: self.known.describe_owner(&owner.pod, &view.namespace),
                    });
                }
                // The interface owns another GUID by record: that one stands, the text is ignored.
                None if self.owners.ledger().guid_of(&key).is_some() => owned += 1,
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
                let key = InterfaceKey {
                    pod: uid.clone(),
                    network: s.network.clone(),
                    interface: s.interface.as_str().into(),
                };
                if self.stripped_but_configured(&view, s, &key) {
                    owned += 1;
                    keep.insert(key);
                    continue;
                }
                used_nads.push(s.network.clone());
                if self.policy.namespace_isolation
                    && s.network.namespace != view.namespace
                    && !self.policy.global_namespaces.contains(&*s.network.namespace)
                {
                    reason.get_or_insert(PendingReason::NamespaceNotAllowed { network: s.network.clone() });
                    continue;
                }
                let spec = match self.known.nad(&s.network) {
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
                    Some(Ok(NadKind::InfiniBand(spec))) => match self.resolve_partition(&s.network, spec.clone()) {
                        Ok(spec) => spec,
                        Err(r) => {
                            reason.get_or_insert(r);
                            continue;
                        }
                    },
                };
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
            if reason.is_none() && from_pool > self.owners.pool().free_count() {
                // The subnet manager may have freed GUIDs since it was last read; read it once per
                // exhaustion, not once per attempt.
                if self.owners.note_exhaustion() {
                    self.flight.want_listing();
                }
                reason = Some(PendingReason::PoolExhausted {
                    range: self.owners.range(),
                    capacity: self.owners.pool().capacity(),
                });
            }
        }
        self.waits.set_nads(uid, used_nads);
        if let Some(r) = reason {
            return self.wait(uid, r, keep);
        }
        self.drop_unconfigured_claims(uid, &keep);

        let mut edits = Vec::new();
        let mut ready = true;
        let mut failure = None;
        for w in wanted {
            let Some(guid) = self.take_guid(&w) else {
                let r = PendingReason::PoolExhausted {
                    range: self.owners.range(),
                    capacity: self.owners.pool().capacity(),
                };
                return self.wait(uid, r, HashSet::new());
            };
            if !self.joined(guid, w.spec.pkey) || !self.record_matches(guid) {
                ready = false;
                if let Some(kind) = self.owners.failure(guid) {
                    failure.get_or_insert_with(|| self.failure_reason(guid, w.spec.pkey, kind));
                }
            }
            edits.push(Edit { index: w.index, guid, generated: w.generated, marked: w.marked, spec: w.spec });
        }
        if let Some(r) = failure {
            return self.set_pending(uid, r);
        }
        if self.flight.patch_failed(uid) {
            return;
        }
        // A failure being retried stays the pod's reason until it is configured, so that the same
        // failure coming back raises no second Event.
        let retrying = matches!(
            self.waits.reason(uid),
            Some(
                PendingReason::SubnetManagerFailed { .. }
                    | PendingReason::PatchFailed { .. }
                    | PendingReason::PartitionNotFound { .. }
            )
        );
        if ready || !retrying {
            self.waits.clear(uid);
        }
        if !ready || edits.is_empty() || self.flight.patching(uid) {
            return;
        }
        if edits.iter().all(|e| e.marked && !e.generated) {
            // The annotation already says so: nothing to write.
            for e in &edits {
                self.owners.mark_configured(e.guid);
            }
            return;
        }
        self.patch(&view, annotation, edits);
    }

    /// A running pod's element that says nothing (no GUID, no marker) while its interface holds a
    /// configured GUID by record: KubeVirt's virt-handler removes `cni-args` from a virt-launcher pod
    /// while its VM runs. The interface is configured and stays so; writing the marker back would only
    /// start a tug of war with virt-handler, and the CNI does not run again for a running pod.
    fn stripped_but_configured(&self, view: &PodView, s: &crate::annotation::Selection, key: &InterfaceKey) -> bool {
        view.phase == crate::pod::PodPhase::Running
            && !s.configured
            && s.guid.is_none()
            && self.owners.ledger().guid_of(key).is_some_and(|g| self.owners.is_configured(g))
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
            self.owners.block(uid);
        }
        let configured_only: HashSet<InterfaceKey> = keep
            .into_iter()
            .filter(|k| self.owners.ledger().guid_of(k).is_some_and(|g| self.owners.is_configured(g)))
            .collect();
        self.drop_unconfigured_claims(uid, &configured_only);
        self.set_pending(uid, reason);
    }

    /// A running pod whose NAD now names another partition (or is gone) keeps the one it was recorded
    /// with; it is told once.
    fn tell_if_partition_kept(&mut self, view: &PodView, guid: Guid, network: &NetworkRef) {
        let Some(kept) = self.owners.ledger().get(guid).map(|c| c.pkey) else { return };
        let now = match self.known.nad(network) {
            Some(Ok(NadKind::InfiniBand(_))) => Some(self.known.nad_pkey(network)),
            Some(_) => None,
            None => None,
        };
        if now == Some(kept) || !self.waits.tell_kept(&view.uid, network) {
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

    /// The partition a network's GUIDs join: the one allocated to it when it asked for one (whatever
    /// its config says), else the one it names, which may not be one of the allocated range.
    fn resolve_partition(&self, network: &NetworkRef, mut spec: IbSriovSpec) -> Result<IbSriovSpec, PendingReason> {
        let range = self.policy.partitions.allocation_range;
        if spec.options.allocate_pkey {
            let Some(pkey) = self.known.allocated_pkey(network) else {
                return Err(PendingReason::PartitionNotAllocated {
                    network: network.clone(),
                    enabled: range.is_some(),
                });
            };
            spec.pkey = Some(pkey);
            spec.pkey_text = pkey.to_string();
            return Ok(spec);
        }
        match (range, spec.pkey) {
            (Some(range), Some(pkey)) if range.contains(pkey) => {
                Err(PendingReason::PartitionReserved { network: network.clone(), pkey, range })
            }
            _ => Ok(spec),
        }
    }

    /// Why a pod waits on a failed subnet-manager change of `guid`: a partition that may not be created
    /// is named (the first of the GUID's partitions it is not in yet); any other failure only by kind.
    fn failure_reason(&self, guid: Guid, pkey: Option<PKey>, kind: &'static str) -> PendingReason {
        if kind == SmFailure::PARTITION_NOT_FOUND {
            let missing = [pkey, self.policy.partitions.default_limited]
                .into_iter()
                .flatten()
                .find(|p| !self.owners.sm().has(guid, *p));
            if let Some(pkey) = missing {
                return PendingReason::PartitionNotFound { pkey };
            }
        }
        PendingReason::SubnetManagerFailed { kind }
    }

    /// The kernel's pkey table holds 128 entries per port: a pod whose new partitions would push its
    /// node past that waits with a clear reason instead of failing later inside the CNI. The shared
    /// limited partition takes one entry on every node with a pod of ours.
    fn check_node_pkeys(&self, node: &str, wanted: &[Wanted]) -> Option<PendingReason> {
        let used = self.owners.node_pkeys(node);
        let shared = self.policy.partitions.default_limited.filter(|_| !wanted.is_empty());
        let new: std::collections::BTreeSet<PKey> = wanted
            .iter()
            .filter_map(|w| w.spec.pkey)
            .chain(shared)
            .filter(|pk| used.is_none_or(|m| !m.contains_key(pk)))
            .collect();
        let total = used.map_or(0, |m| m.len()) + new.len();
        (!new.is_empty() && total > MAX_PKEYS_PER_NODE)
            .then(|| PendingReason::TooManyPKeys { node: node.to_owned(), limit: MAX_PKEYS_PER_NODE })
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
        let existing = self.owners.ledger().guid_of(key);
        let requested = match requested.map(Guid::parse) {
            None => None,
            Some(Ok(g)) => Some(g),
            Some(Err(error)) => {
                return Err(PendingReason::GuidInvalid {
                    network: key.network.clone(),
                    interface: key.interface.to_string(),
                    error,
                });
            }
        };
        match (existing, requested) {
            (Some(g), None) => Ok(Source::Held(g)),
            (Some(g), Some(r)) if g == r => Ok(Source::Held(g)),
            (Some(g), Some(_)) if self.owners.is_configured(g) => Ok(Source::Held(g)),
            (_, Some(r)) => {
                let in_use = |owner: Option<String>| PendingReason::GuidInUse {
                    network: key.network.clone(),
                    interface: key.interface.to_string(),
                    guid: r,
                    owner,
                };
                if !self.owners.range().contains(r) {
                    return Err(PendingReason::GuidOutOfRange {
                        network: key.network.clone(),
                        interface: key.interface.to_string(),
                        guid: r,
                        range: self.owners.range(),
                    });
                }
                if let Some(claim) = self.owners.ledger().get(r).filter(|c| &c.owner != key) {
                    return Err(in_use(self.known.describe_owner(&claim.owner.pod, namespace)));
                }
                // Held without an owner: in a partition no record of ours explains (another cluster's
                // or a person's), leaving one, or with an outcome not known yet.
                if !self.owners.ledger().contains(r) && self.owners.pool().is_allocated(r) {
                    return Err(in_use(None));
                }
                if !requested_here.insert(r) {
                    return Err(in_use(self.known.describe_owner(&key.pod, namespace)));
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
                if let Some(old) = self.owners.ledger().guid_of(&w.key).filter(|g| *g != r) {
                    // The user changed the request before configuration finished.
                    self.unclaim(old);
                }
                if !self.owners.ledger().contains(r) {
                    if self.owners.pool().is_allocated(r) {
                        return None;
                    }
                    self.claim(r, w.key.clone(), w.spec.pkey, false);
                }
                r
            }
            Source::Generate => {
                let node = self.node_of(&w.key.pod);
                let owner = self.names.key(w.key.clone());
                let g = self.owners.generate(owner, w.spec.pkey, node)?;
                self.out.allocated.push((g, w.key.clone()));
                self.dirty.guids.insert(g);
                g
            }
        };
        if self.owners.ledger().get(guid).is_some_and(|c| !c.configured && c.pkey != w.spec.pkey) {
            // The NAD's pkey changed while the pod waited: the GUID moves with it.
            self.owners.set_claim_pkey(guid, w.spec.pkey);
        }
        self.dirty.guids.insert(guid);
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
        self.flight.patch_sent(&view.uid, &view.resource_version);
        self.out.patches.push(PodPatch {
            pod: view.pod_ref(),
            resource_version: view.resource_version.clone(),
            annotation: annotation.to_json(),
            guids,
        });
    }
}
