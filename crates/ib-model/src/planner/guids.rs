//! Planning one GUID (the membership change it needs) and the record writes.

use super::*;

impl Planner<'_> {
    /// Whether the stored record of `g` is the one its claim needs (owner and partition).
    pub(crate) fn record_matches(&self, g: Guid) -> bool {
        match (self.owners.ledger().get(g), self.records.get(g)) {
            (Some(c), Some(s)) => s.pkey == c.pkey && s.pod == c.owner.pod && s.owner_hash == owner_hash(&c.owner),
            _ => false,
        }
    }

    /// The partitions `g` is to be in, and how it joins each: its claim's partition, then the cluster's
    /// shared limited one. Empty for a GUID nobody claims.
    pub(crate) fn wanted(&self, g: Guid) -> [Option<(PKey, PartitionOptions)>; 2] {
        let Some(claim) = self.owners.ledger().get(g) else { return [None, None] };
        let partitions = &self.policy.partitions;
        let primary = claim.pkey.map(|pk| {
            let options = match self.known.nad(&claim.owner.network) {
                Some(Ok(NadKind::InfiniBand(spec))) => spec.partition_options(&partitions.primary),
                // The NAD changed or went while the pod runs: it keeps its partition, with the defaults.
                _ => partitions.primary,
            };
            (pk, options)
        });
        let shared = partitions
            .default_limited
            .filter(|s| claim.pkey != Some(*s))
            .map(|s| (s, partitions.default_limited_options()));
        [primary, shared]
    }

    /// Whether `g` is in every partition it is to be in, with no change of it in flight.
    pub(crate) fn joined(&self, g: Guid, pkey: Option<PKey>) -> bool {
        let needs = [pkey, self.policy.partitions.default_limited];
        if needs.iter().all(Option::is_none) {
            return true;
        }
        !self.owners.op_in_flight(g) && needs.iter().flatten().all(|p| self.owners.sm().has(g, *p))
    }

    /// The next change for one GUID: leave the partition its record names once nobody wants it there,
    /// join the ones its owner needs once that is recorded, leave the shared limited partition once its
    /// owner is gone, and report memberships nobody recorded.
    ///
    /// A stored record stands for the shared limited partition too: a GUID joins it only after its
    /// record is stored, and the record goes only once the GUID has left it.
    pub(super) fn plan_guid(&mut self, g: Guid) -> Option<(SmOp, PKey, PartitionOptions)> {
        self.records.mark(g);
        if !self.owners.range().contains(g)
            || self.owners.op_in_flight(g)
            || self.owners.failure(g).is_some()
            || self.owners.is_uncertain(g)
        {
            return None;
        }
        let wanted = self.wanted(g);
        let is_wanted = |p: PKey| wanted.iter().flatten().any(|(w, _)| *w == p);
        let stored = self.records.get(g);
        let recorded = stored.and_then(|s| s.pkey);
        let shared = self.policy.partitions.default_limited.filter(|_| stored.is_some());
        let sm = self.owners.sm();
        let leave = |p: &PKey| !is_wanted(*p) && sm.has(g, *p);
        let next = if let Some(old) = recorded.filter(leave) {
            Some((SmOp::Remove, old, PartitionOptions::default()))
        } else if let Some(s) = shared.filter(leave) {
            Some((SmOp::Remove, s, PartitionOptions::default()))
        } else if let Some((pk, options)) = wanted.iter().flatten().find(|(p, _)| !sm.has(g, *p)).copied() {
            // Not before its record is stored: a crash after the add must leave a record behind.
            self.record_matches(g).then(|| (SmOp::Add, pk, self.with_qos_if_new(pk, options)))
        } else {
            let unexplained: Vec<PKey> =
                sm.managed(g).filter(|p| Some(*p) != recorded && Some(*p) != shared && !is_wanted(*p)).collect();
            match unexplained.first() {
                None => {
                    self.owners.explained(g);
                    None
                }
                Some(p) => {
                    if self.owners.report_unrecorded(g) {
                        self.out.unrecorded.push(g);
                    }
                    let remove = self.policy.remove_unrecorded && !self.drift_held;
                    if remove {
                        self.out.drift.push(g);
                    }
                    remove.then_some((SmOp::Remove, *p, PartitionOptions::default()))
                }
            }
        };
        if let Some((op, pkey, _)) = next {
            self.owners.start_op(g, (op, pkey));
        }
        next
    }

    /// The partition's QoS is set only when no GUID of the pool is known to be in it: it is new, or the
    /// subnet manager deleted it, QoS and all, when its last member left. Setting it on every join would
    /// make some subnet managers resweep the fabric each time.
    fn with_qos_if_new(&self, pkey: PKey, mut options: PartitionOptions) -> PartitionOptions {
        if self.owners.sm().has_members(pkey) {
            options.qos = None;
        }
        options
    }

    /// Record writes for every GUID whose stored record differs from what is wanted, one merge patch per
    /// block; a GUID already in a write in flight, or a block with as many writes in flight as it may
    /// have, waits for one to end.
    ///
    /// A change that [can wait](RecordChange::can_wait) goes only with a write the block gets anyway,
    /// or when the caller flushes.
    pub(super) fn plan_records(&mut self) {
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
        if !self.owners.range().contains(g) {
            return None;
        }
        let stored = self.records.get(g);
        let in_flight = self.owners.op_in_flight(g) || self.owners.is_uncertain(g);
        let Some(claim) = self.owners.ledger().get(g) else {
            let s = stored?;
            let shared = self.policy.partitions.default_limited;
            let member = [s.pkey, shared].iter().flatten().any(|p| self.owners.sm().has(g, *p));
            let state = if self.owners.is_uncertain(g) { RecordState::Unknown } else { RecordState::Releasing };
            return match (member || in_flight, s.state == state) {
                (false, _) => Some(RecordChange::Delete),
                (true, true) => None,
                (true, false) => Some(RecordChange::State(state)),
            };
        };
        let state = if self.owners.is_uncertain(g) {
            RecordState::Unknown
        } else {
            match claim.pkey {
                Some(p) if !self.owners.sm().has(g, p) => RecordState::Reserved,
                _ => RecordState::Member,
            }
        };
        if let Some(s) = stored
            && s.pkey != claim.pkey
            && s.pkey.is_some_and(|p| self.owners.sm().has(g, p) || in_flight)
        {
            // The membership the stored record names goes first; until then the record keeps naming it.
            return None;
        }
        if self.record_matches(g) {
            return (stored.map(|s| s.state) != Some(state)).then_some(RecordChange::State(state));
        }
        let pod = self.known.pod(&claim.owner.pod)?;
        Some(RecordChange::Set(Record {
            owner: claim.owner.clone(),
            pod_namespace: pod.namespace.to_string(),
            pod_name: pod.name.clone(),
            pkey: claim.pkey,
            state,
        }))
    }
}
