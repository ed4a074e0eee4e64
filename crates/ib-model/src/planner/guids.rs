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

    /// The next change for one GUID: leave the partition its record names once nobody wants it there,
    /// join the one its owner needs once that is recorded, and report memberships nobody recorded.
    pub(super) fn plan_guid(&mut self, g: Guid) -> Option<(SmOp, PKey)> {
        self.records.mark(g);
        if !self.owners.range().contains(g)
            || self.owners.op_in_flight(g)
            || self.owners.failure(g).is_some()
            || self.owners.is_uncertain(g)
        {
            return None;
        }
        let wanted = self.owners.ledger().get(g).and_then(|c| c.pkey);
        let recorded = self.records.get(g).and_then(|s| s.pkey);
        let next = if let Some(old) = recorded.filter(|p| Some(*p) != wanted && self.owners.sm().has(g, *p)) {
            Some((SmOp::Remove, old))
        } else if let Some(pk) = wanted.filter(|p| !self.owners.sm().has(g, *p)) {
            // Not before its record is stored: a crash after the add must leave a record behind.
            self.record_matches(g).then_some((SmOp::Add, pk))
        } else {
            let unexplained: Vec<PKey> =
                self.owners.sm().managed(g).filter(|p| Some(*p) != recorded && Some(*p) != wanted).collect();
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
                    remove.then_some((SmOp::Remove, *p))
                }
            }
        };
        if let Some(op) = next {
            self.owners.start_op(g, op);
        }
        next
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
            let member = s.pkey.is_some_and(|p| self.owners.sm().has(g, p));
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
            pod_namespace: pod.namespace.clone(),
            pod_name: pod.name.clone(),
            pkey: claim.pkey,
            state,
        }))
    }
}
