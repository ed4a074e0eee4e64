//! Planner tests: a tiny in-memory world executes the plans (a fake subnet manager and a fake API server
//! with resourceVersions) and the tests assert on requests, patches and the final state.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::Value;

use crate::annotation::NetworkRef;
use crate::guid::Guid;
use crate::pending::PendingReason;
use crate::pkey::PKey;
use crate::pod::{PodPhase, PodUid, PodView};
use crate::pool::GuidRange;
use crate::records::{BlockId, Record, RecordChange, RecordWrite, WRITES_PER_BLOCK};
use crate::state::{PatchOutcome, Plan, Policy, SmFailure, SmOp, SmRequest, State};

const IB5: &str =
    r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"sriov-network","pkey":"0x5","link_state":"enable"}"#;
const IB_CAP: &str = r#"{"cniVersion":"0.3.1","name":"ib-net","plugins":[{"type":"ib-sriov","pkey":"0x00FF","capabilities":{"infinibandGUID":true}},{"type":"tuning"}]}"#;
const GUID_ONLY: &str = r#"{"type":"ib-sriov"}"#;
const MACVLAN: &str = r#"{"type":"macvlan"}"#;

fn g(s: &str) -> Guid {
    Guid::parse(s).unwrap()
}

fn pk(s: &str) -> PKey {
    PKey::parse(s).unwrap()
}

/// Something that happened, in order, to check "SM add before configured".
#[derive(Debug, Clone, PartialEq)]
enum Logged {
    Sm(SmOp, PKey, Vec<Guid>),
    Configured(String, Vec<Guid>),
    /// A record naming this GUID's owner was stored.
    Recorded(Guid),
}

struct World {
    state: State,
    /// The fake subnet manager: GUID → partition names as UFM writes them (`0x5`).
    sm: BTreeMap<Guid, BTreeSet<String>>,
    pods: BTreeMap<String, PodView>,
    rv: u64,
    log: Vec<Logged>,
    /// Requests of these partitions fail.
    failing: BTreeSet<PKey>,
    pending_seen: Vec<(String, PendingReason)>,
    /// Interfaces marked configured while their GUID was not yet a member of their pkey.
    violations: Vec<String>,
    /// Work handed out by plans and not yet done, so that tests can complete it in any order.
    queue: Vec<Work>,
    /// Every GUID a plan reported as drift.
    drift: Vec<Guid>,
    /// The fake API server's ownership records, and which blocks exist.
    records: BTreeMap<Guid, Record>,
    blocks: BTreeSet<BlockId>,
    /// Every GUID a plan reported as in a partition no record explains.
    unrecorded: Vec<Guid>,
    notices: Vec<(String, &'static str, String)>,
    /// Memberships put into the fake subnet manager by the test, not by the planner.
    seeded: BTreeSet<(String, Guid)>,
    policy: Policy,
    /// Every NAD created, for a new leader.
    nads: BTreeMap<NetworkRef, String>,
    /// Subnet-manager requests are applied but their answer is lost (a timeout).
    answers_lost: bool,
    /// Record writes fail (the API server answers 500).
    records_failing: bool,
    /// GUIDs in a record write handed out and not yet done: never two at once for one GUID.
    records_in_flight: BTreeSet<Guid>,
    /// How each membership was joined, as the last join request said.
    joined_with: BTreeMap<(String, Guid), crate::partition::PartitionOptions>,
    /// Each partition's QoS; lost with the partition when its last member leaves.
    qos: BTreeMap<String, crate::partition::Qos>,
    /// Partitions that exist without members (made by an operator).
    empty_partitions: BTreeSet<String>,
    /// The names joins asked partitions to be given.
    partition_names: BTreeMap<String, String>,
}

enum Work {
    List,
    Sm(SmRequest),
    Patch(crate::state::PodPatch),
    Records(RecordWrite),
}

impl World {
    fn new(start: &str, end: &str) -> Self {
        let range = GuidRange::new(g(start), g(end)).unwrap();
        World {
            state: State::new(range),
            sm: BTreeMap::new(),
            pods: BTreeMap::new(),
            rv: 0,
            log: Vec::new(),
            failing: BTreeSet::new(),
            pending_seen: Vec::new(),
            violations: Vec::new(),
            queue: Vec::new(),
            drift: Vec::new(),
            records: BTreeMap::new(),
            // A cluster that already has ownership records (see `first_start` for one that has none).
            blocks: BTreeSet::from([BlockId::of(Guid::from_u64(0))]),
            unrecorded: Vec::new(),
            notices: Vec::new(),
            seeded: BTreeSet::new(),
            policy: Policy::default(),
            nads: BTreeMap::new(),
            answers_lost: false,
            records_failing: false,
            records_in_flight: BTreeSet::new(),
            joined_with: BTreeMap::new(),
            qos: BTreeMap::new(),
            empty_partitions: BTreeSet::new(),
            partition_names: BTreeMap::new(),
        }
    }

    fn default_range() -> Self {
        Self::new("02:00:00:00:00:00:00:00", "02:ff:ff:ff:ff:ff:ff:ff")
    }

    fn synced(mut self) -> Self {
        self.state.pods_synced();
        self.state.nads_synced();
        self.read_records();
        self
    }

    /// A cluster without any ownership records: the first start imports configured annotations.
    fn first_start(mut self) -> Self {
        self.blocks.clear();
        self
    }

    /// What a leader does at start: read every ownership record.
    fn read_records(&mut self) {
        let any = !self.blocks.is_empty();
        self.state.records_listed(any, self.records.iter().map(|(g, r)| (*g, r.clone())));
    }

    fn nad(&mut self, ns: &str, name: &str, config: &str) {
        self.nads.insert(NetworkRef::new(ns, name), config.to_owned());
        self.state.apply_nad(NetworkRef::new(ns, name), Some(config));
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn pod(&mut self, ns: &str, name: &str, networks: &str) -> PodUid {
        let uid = PodUid::from(format!("uid-{ns}-{name}-{}", self.rv));
        let view = PodView {
            uid: uid.clone(),
            namespace: ns.into(),
            name: name.into(),
            resource_version: self.next_rv(),
            node_name: Some("node-1".into()),
            host_network: false,
            phase: PodPhase::Pending,
            deleting: false,
            networks: Some(networks.into()),
            created: self.rv as i64,
            network_status: Vec::new(),
        };
        self.pods.insert(uid.0.to_string(), view.clone());
        self.state.apply_pod(view);
        uid
    }

    fn edit(&mut self, uid: &PodUid, f: impl FnOnce(&mut PodView)) {
        let rv = self.next_rv();
        let view = self.pods.get_mut(&*uid.0).unwrap();
        f(view);
        view.resource_version = rv;
        let view = view.clone();
        self.state.apply_pod(view);
    }

    fn delete(&mut self, uid: &PodUid) {
        self.pods.remove(&*uid.0);
        self.state.delete_pod(uid);
    }

    fn sm_seed(&mut self, pkey: &str, guid: &str) {
        self.sm.entry(g(guid)).or_default().insert(pkey.into());
        self.seeded.insert((pkey.into(), g(guid)));
    }

    fn listing(&self) -> Vec<(String, Guid)> {
        self.sm.iter().flat_map(|(g, ps)| ps.iter().map(move |p| (p.clone(), *g))).collect()
    }

    fn execute(&mut self, plan: Plan) {
        self.enqueue(plan);
        while !self.queue.is_empty() {
            self.complete(0);
        }
    }

    fn enqueue(&mut self, plan: Plan) {
        self.drift.extend(&plan.drift);
        self.unrecorded.extend(&plan.unrecorded);
        for n in &plan.notices {
            self.notices.push((n.pod.name.clone(), n.reason, n.message.clone()));
        }
        for p in &plan.pending {
            self.pending_seen.push((p.pod.name.clone(), p.reason.clone()));
        }
        if plan.list_sm {
            self.queue.push(Work::List);
        }
        self.queue.extend(plan.sm.into_iter().map(Work::Sm));
        self.queue.extend(plan.patches.into_iter().map(Work::Patch));
        for write in &plan.records {
            for guid in write.changes.keys() {
                assert!(self.records_in_flight.insert(*guid), "{guid} is in two record writes at once");
            }
            let to_block =
                self.queue.iter().filter(|w| matches!(w, Work::Records(r) if r.block == write.block)).count();
            assert!(to_block < WRITES_PER_BLOCK, "more than {WRITES_PER_BLOCK} writes to block {}", write.block);
            self.queue.push(Work::Records(write.clone()));
        }
    }

    /// Does one queued piece of work.
    fn complete(&mut self, index: usize) {
        match self.queue.remove(index) {
            Work::List => {
                let listing = self.listing();
                self.state.sm_listed(listing.iter().map(|(p, g)| (p.as_str(), *g)));
            }
            Work::Sm(req) => self.sm_request(&req),
            Work::Patch(patch) => self.apply_patch(patch),
            Work::Records(write) => self.write_records(write),
        }
    }

    fn write_records(&mut self, write: RecordWrite) {
        for guid in write.changes.keys() {
            self.records_in_flight.remove(guid);
        }
        if self.records_failing {
            self.state.records_written(&write, false);
            return;
        }
        self.blocks.insert(write.block);
        for (guid, change) in &write.changes {
            assert_eq!(BlockId::of(*guid), write.block, "{guid} written to block {}", write.block);
            match change {
                RecordChange::Set(r) => {
                    self.records.insert(*guid, r.clone());
                    self.log.push(Logged::Recorded(*guid));
                }
                RecordChange::State(state) => {
                    self.records.get_mut(guid).expect("state change of a stored record").state = *state;
                }
                RecordChange::Delete => {
                    self.records.remove(guid);
                }
            }
        }
        self.state.records_written(&write, true);
    }

    /// The owner (pod name) the fake API server's records give a GUID.
    fn recorded_owner(&self, guid: Guid) -> Option<String> {
        self.records.get(&guid).map(|r| r.pod_name.clone())
    }

    fn apply_patch(&mut self, patch: crate::state::PodPatch) {
        let outcome = match self.pods.get_mut(&*patch.pod.uid.0) {
            None => PatchOutcome::NotFound,
            Some(view) if view.resource_version != patch.resource_version => PatchOutcome::Conflict,
            Some(view) => {
                let a = crate::annotation::NetworksAnnotation::parse(&patch.annotation, &view.namespace).unwrap();
                for sel in a.selections().iter().filter(|s| s.configured) {
                    let guid = Guid::parse(&sel.guid.as_ref().unwrap().0).unwrap();
                    let pkey = sel.pkey.clone().unwrap_or_default();
                    if patch.guids.contains(&guid) && !pkey.is_empty() {
                        let name = format!("0x{:x}", PKey::parse(&pkey).unwrap().get());
                        if !self.sm.get(&guid).is_some_and(|ps| ps.contains(&name)) {
                            self.violations.push(format!("{guid} configured before joining {name}"));
                        }
                    }
                }
                view.networks = Some(patch.annotation.clone());
                self.rv += 1;
                view.resource_version = self.rv.to_string();
                self.log.push(Logged::Configured(view.name.clone(), patch.guids.clone()));
                PatchOutcome::Applied(view.clone())
            }
        };
        let conflict = outcome == PatchOutcome::Conflict;
        self.state.patch_done(&patch.pod.uid, outcome);
        if conflict {
            // What the controller does: re-read the pod (the harness's view is current), then retry.
            self.state.retry_pod(&patch.pod.uid);
        }
    }

    /// A new leader: fresh state from the pods (in reverse order, so that planning order differs from
    /// creation order) and the NADs; the old leader's queued work is lost.
    fn restart(&mut self) {
        let range = self.state.pool().range();
        self.queue.clear();
        // The old leader's writes are lost with it (or landed already).
        self.records_in_flight.clear();
        self.state = State::with_policy(range, self.policy.clone());
        for (network, config) in &self.nads {
            self.state.apply_nad(network.clone(), Some(config));
        }
        self.state.nads_synced();
        // As the controller does: the records first, then every pod.
        self.read_records();
        for view in self.pods.values().rev() {
            self.state.apply_pod(view.clone());
        }
        self.state.pods_synced();
    }

    fn sm_request(&mut self, req: &SmRequest) {
        if self.failing.contains(&req.pkey) {
            self.state.sm_done(req, Err(SmFailure { kind: "status", unknown: false }));
            return;
        }
        let name = format!("0x{:x}", req.pkey.get());
        if req.must_exist && !self.partition_exists(&name) {
            let failure = SmFailure { kind: SmFailure::PARTITION_NOT_FOUND, unknown: false };
            self.state.sm_done(req, Err(failure));
            return;
        }
        assert!(req.op == SmOp::Add || req.options == Default::default(), "a removal carries no options");
        if let Some(qos) = req.options.qos {
            self.qos.insert(name.clone(), qos);
        }
        if let Some(given) = &req.partition_name {
            self.partition_names.insert(name.clone(), given.clone());
        }
        for guid in &req.guids {
            match req.op {
                SmOp::Add => {
                    self.sm.entry(*guid).or_default().insert(name.clone());
                    self.joined_with.insert((name.clone(), *guid), req.options);
                }
                SmOp::Remove => {
                    if let Some(ps) = self.sm.get_mut(guid) {
                        ps.remove(&name);
                        if ps.is_empty() {
                            self.sm.remove(guid);
                        }
                    }
                }
            }
        }
        if !self.partition_exists(&name) {
            // The last member left: the subnet manager deleted the partition, and its QoS with it.
            self.qos.remove(&name);
        }
        self.log.push(Logged::Sm(req.op, req.pkey, req.guids.clone()));
        if self.answers_lost {
            self.state.sm_done(req, Err(SmFailure { kind: "timeout", unknown: true }));
        } else {
            self.state.sm_done(req, Ok(()));
        }
    }

    /// Plans and executes until nothing is left to do.
    fn settle(&mut self) {
        for _ in 0..100 {
            let plan = self.state.plan();
            let idle = plan.is_idle();
            self.execute(plan);
            if idle && self.state.records_waiting() {
                // As the controller's timer does a moment later.
                self.state.flush_records();
                continue;
            }
            if idle && self.state.is_settled() {
                assert!(self.violations.is_empty(), "{:?}", self.violations);
                return;
            }
        }
        panic!("did not settle: {:?}", self.state);
    }

    /// The pod's elements as JSON (short forms as Multus expands them).
    fn annotation(&self, uid: &PodUid) -> Value {
        let view = &self.pods[&*uid.0];
        let a =
            crate::annotation::NetworksAnnotation::parse(view.networks.as_deref().unwrap(), &view.namespace).unwrap();
        serde_json::from_str(&a.to_json()).unwrap()
    }

    /// Plans and executes until a plan carries a patch, which is returned unexecuted.
    fn plan_until_patch(&mut self) -> Plan {
        for _ in 0..10 {
            let plan = self.state.plan();
            if !plan.patches.is_empty() {
                return plan;
            }
            self.execute(plan);
        }
        panic!("no patch planned");
    }

    fn partition_exists(&self, name: &str) -> bool {
        self.empty_partitions.contains(name) || self.sm.values().any(|ps| ps.contains(name))
    }

    fn members(&self, pkey: &str) -> BTreeSet<Guid> {
        self.sm.iter().filter(|(_, ps)| ps.contains(pkey)).map(|(g, _)| *g).collect()
    }

    fn reason(&self, uid: &PodUid) -> Option<&'static str> {
        self.state.pending_reason(uid).map(PendingReason::label)
    }

    fn sm_requests(&self) -> Vec<&Logged> {
        self.log.iter().filter(|l| matches!(l, Logged::Sm(..))).collect()
    }

    /// The log without record writes, for tests about subnet-manager calls and patches.
    fn actions(&self) -> Vec<Logged> {
        self.log.iter().filter(|l| !matches!(l, Logged::Recorded(_))).cloned().collect()
    }
}

fn g_(last: &str) -> Guid {
    g(&format!("02:00:00:00:00:00:00:{last}"))
}

mod configure;
mod fresh;
mod hostile;
mod kubevirt;
mod lifecycle;
mod partitions;
mod property;
