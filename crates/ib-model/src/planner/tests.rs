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
        for guid in &req.guids {
            match req.op {
                SmOp::Add => {
                    self.sm.entry(*guid).or_default().insert(name.clone());
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

#[test]
fn nothing_happens_before_pods_nads_and_the_sm_are_read() {
    let mut w = World::default_range();
    w.nad("default", "ib-sriov-network", IB5);
    w.pod("default", "p", r#"[{"name":"ib-sriov-network"}]"#);
    assert_eq!(w.state.plan(), Plan::default());
    w.state.pods_synced();
    w.state.nads_synced();
    let plan = w.state.plan();
    assert!(plan.list_sm && plan.sm.is_empty() && plan.patches.is_empty(), "{plan:?}");
    // Until the listing and the records arrive, nothing else is decided, and the listing is asked for once.
    assert!(w.state.plan().is_idle());
    w.state.sm_listed(std::iter::empty());
    assert!(w.state.plan().is_idle());
    w.read_records();
    // The record first, then the add.
    let plan = w.state.plan();
    assert_eq!((plan.records.len(), plan.sm.len()), (1, 0), "{plan:?}");
    w.write_records(plan.records[0].clone());
    let plan = w.state.plan();
    assert_eq!(plan.sm.len(), 1);
}

/// As in the Go daemon, a plain pod: generated GUID (the range start), one UFM add, then the patch.
#[test]
fn generated_guid_joins_the_pkey_before_the_pod_is_configured() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib-sriov-network", IB5);
    let p = w.pod("default", "p", r#"[{"name": "ib-sriov-network"}]"#);
    w.settle();
    let guid = g("02:00:00:00:00:00:00:00");
    assert_eq!(
        w.log,
        vec![
            Logged::Recorded(guid),
            Logged::Sm(SmOp::Add, pk("0x5"), vec![guid]),
            Logged::Configured("p".into(), vec![guid])
        ]
    );
    assert_eq!(w.records[&guid].state, crate::records::RecordState::Member);
    assert_eq!(
        w.annotation(&p),
        serde_json::json!([{"name":"ib-sriov-network","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":"0x5"}}])
    );
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert!(w.state.ledger().get(guid).unwrap().configured);
    assert_eq!(w.state.pool().allocated_count(), 1);
}

/// Consecutive pods get GUIDs of one block. Each pod's record write goes out at once instead of after
/// the previous pod's (a pod never waits for another pod's write), up to a few per block; a GUID is never
/// in two writes at once (checked by `World::enqueue` in every test).
#[test]
fn record_writes_of_one_block_overlap_up_to_a_limit() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    w.settle();
    let mut sent = Vec::new();
    for i in 0..=WRITES_PER_BLOCK {
        w.pod("default", &format!("p{i}"), r#"[{"name": "ib"}]"#);
        let plan = w.state.plan();
        sent.push(plan.records.iter().flat_map(|r| r.changes.keys().copied()).collect::<Vec<_>>());
        // Nothing completes: every write stays in flight.
        w.enqueue(plan);
    }
    let guid = |i: u64| Guid::from_u64(g("02:00:00:00:00:00:00:00").as_u64() + i);
    for (i, guids) in sent.iter().enumerate().take(WRITES_PER_BLOCK) {
        assert_eq!(guids, &vec![guid(i as u64)], "pod {i}'s record is written at once");
    }
    assert!(sent[WRITES_PER_BLOCK].is_empty(), "the block has {WRITES_PER_BLOCK} writes in flight: the next waits");
    let first = w.queue.iter().position(|x| matches!(x, Work::Records(_))).unwrap();
    w.complete(first);
    let plan = w.state.plan();
    let next: Vec<Guid> = plan.records.iter().flat_map(|r| r.changes.keys().copied()).collect();
    assert!(next.contains(&guid(WRITES_PER_BLOCK as u64)), "{next:?}");
    w.enqueue(plan);
    w.settle();
    for i in 0..=WRITES_PER_BLOCK {
        assert_eq!(w.records[&guid(i as u64)].state, crate::records::RecordState::Member);
    }
    assert_eq!(w.members("0x5").len(), WRITES_PER_BLOCK + 1);
}

/// A pod's life costs two record writes: the reservation before its add and the delete after its remove.
/// `Member` and `Releasing` go with the block's next write, or when the caller flushes.
#[test]
fn state_only_record_changes_wait_for_the_blocks_next_write_or_a_flush() {
    use crate::records::RecordState;
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    w.settle();
    // Plans and executes until idle without flushing; the record writes on the way.
    fn run(w: &mut World) -> Vec<RecordWrite> {
        let mut writes = Vec::new();
        loop {
            let plan = w.state.plan();
            if plan.is_idle() {
                return writes;
            }
            writes.extend(plan.records.iter().cloned());
            w.execute(plan);
        }
    }
    let (g0, g1) = (g("02:00:00:00:00:00:00:00"), g("02:00:00:00:00:00:00:01"));
    let p = w.pod("default", "p", "ib");
    let writes = run(&mut w);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(matches!(writes[0].changes.get(&g0), Some(RecordChange::Set(_))));
    assert_eq!(w.annotation(&p)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:00");
    assert_eq!(w.records[&g0].state, RecordState::Reserved);
    assert!(w.state.records_waiting() && !w.state.is_settled());

    // The next pod's reservation in the same block carries p's Member.
    w.pod("default", "q", "ib");
    let writes = run(&mut w);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].changes.get(&g0), Some(&RecordChange::State(RecordState::Member)));
    assert!(matches!(writes[0].changes.get(&g1), Some(RecordChange::Set(_))));
    assert_eq!(w.records[&g0].state, RecordState::Member);

    // A flush writes what is left.
    w.state.flush_records();
    let writes = run(&mut w);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].changes, BTreeMap::from([(g1, RecordChange::State(RecordState::Member))]));
    assert!(w.state.is_settled());

    // Deleting p: the remove goes out without waiting for a Releasing write; then one write deletes.
    w.delete(&p);
    let writes = run(&mut w);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].changes, BTreeMap::from([(g0, RecordChange::Delete)]));
    assert!(!w.records.contains_key(&g0));
    assert_eq!(w.members("0x5"), BTreeSet::from([g1]));
    assert!(w.state.is_settled());
}

/// As in the Go daemon, a NAD without pkey is GUID-only: no subnet-manager call, still configured.
#[test]
fn guid_only_network_needs_no_subnet_manager() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", GUID_ONLY);
    let p = w.pod("default", "p", "ib");
    w.settle();
    assert!(w.sm_requests().is_empty());
    let a = w.annotation(&p);
    assert_eq!(a[0]["cni-args"]["pkey"], "");
    assert_eq!(a[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    assert_eq!(a[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:00");
}

/// As in the Go daemon, capability `infinibandGUID` writes `infiniband-guid`; the NAD's pkey text is kept.
#[test]
fn runtime_config_capability_writes_infiniband_guid() {
    let mut w = World::default_range().synced();
    w.nad("ml", "ib-net", IB_CAP);
    let p = w.pod("ml", "p", "ib-net@ib0");
    w.settle();
    let a = w.annotation(&p);
    assert_eq!(a[0]["infiniband-guid"], "02:00:00:00:00:00:00:00");
    assert_eq!(a[0]["interface"], "ib0");
    assert_eq!(a[0]["cni-args"]["pkey"], "0x00FF");
    assert!(a[0]["cni-args"].get("guid").is_none());
    assert_eq!(w.members("0xff").len(), 1);
}

/// As in the Go daemon, two interfaces on one network and a non-IB network: one SM request with both
/// GUIDs, one patch (the Go daemon patched such a pod N² times: its bug B9, docs/architecture.md).
#[test]
fn several_interfaces_one_request_one_patch() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib-sriov-network", IB5);
    w.nad("other", "macvlan", MACVLAN);
    let p = w.pod(
        "default",
        "p",
        r#"[{"name":"ib-sriov-network","interface":"ib0"},{"name":"ib-sriov-network"},{"name":"macvlan","namespace":"other"}]"#,
    );
    w.settle();
    let (g0, g1) = (g("02:00:00:00:00:00:00:00"), g("02:00:00:00:00:00:00:01"));
    assert_eq!(
        w.actions(),
        vec![Logged::Sm(SmOp::Add, pk("0x5"), vec![g0, g1]), Logged::Configured("p".into(), vec![g0, g1])]
    );
    let a = w.annotation(&p);
    assert_eq!(a[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:00");
    assert_eq!(a[1]["cni-args"]["guid"], "02:00:00:00:00:00:00:01");
    assert_eq!(a[2], serde_json::json!({"name":"macvlan","namespace":"other"}));
}

/// As in the Go daemon, a user GUID is used as written (case kept) and joins the pkey.
#[test]
fn requested_guid_is_kept_verbatim() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib-sriov-network", IB5);
    let p = w.pod("default", "p", r#"[{"name":"ib-sriov-network","cni-args":{"guid":"02:00:00:00:00:00:AB:CD"}}]"#);
    w.settle();
    assert_eq!(w.annotation(&p)[0]["cni-args"]["guid"], "02:00:00:00:00:00:AB:CD");
    assert_eq!(w.members("0x5"), BTreeSet::from([g("02:00:00:00:00:00:ab:cd")]));
    // `infiniband-guid` wins over cni-args.guid.
    let q = w.pod(
        "default",
        "q",
        r#"[{"name":"ib-sriov-network","infiniband-guid":"02-00-00-00-00-00-00-77","cni-args":{"guid":"02:00:00:00:00:00:00:78"}}]"#,
    );
    w.settle();
    assert_eq!(w.annotation(&q)[0]["infiniband-guid"], "02-00-00-00-00-00-00-77");
    assert!(w.members("0x5").contains(&g("02:00:00:00:00:00:00:77")));
    assert!(!w.members("0x5").contains(&g("02:00:00:00:00:00:00:78")));
}

#[test]
fn bad_requested_guids_wait_with_a_reason() {
    let mut w = World::new("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:ff").synced();
    w.nad("default", "ib", IB5);
    let out = w.pod("default", "out", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:01:00"}}]"#);
    let bad = w.pod("default", "bad", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00"}}]"#);
    let ok = w.pod("default", "ok", "ib");
    w.settle();
    assert_eq!(w.reason(&out), Some("GUIDOutOfRange"));
    assert_eq!(w.reason(&bad), Some("InvalidGUID"));
    assert_eq!(w.reason(&ok), None);
    assert_eq!(w.annotation(&ok)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    assert!(w.annotation(&out)[0]["cni-args"].get("mellanox.infiniband.app").is_none());
    let msg = w.state.pending_reason(&out).unwrap().to_string();
    assert!(msg.contains("02:00:00:00:00:00:01:00") && msg.contains("outside the GUID pool range"), "{msg}");
    let msg = w.state.pending_reason(&bad).unwrap().to_string();
    assert!(msg.contains("6-byte"), "{msg}");
}

/// A second live pod asking for a GUID in use waits; the first keeps its membership (the Go daemon gave the
/// GUID to the newcomer: its bug B7, docs/architecture.md).
#[test]
fn no_stealing_and_the_waiter_gets_it_when_released() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let guid = g("02:00:00:00:00:00:00:42");
    let first = w.pod("default", "first", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:42"}}]"#);
    w.settle();
    let second = w.pod("default", "second", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:42"}}]"#);
    w.settle();
    assert_eq!(w.reason(&second), Some("GUIDInUse"));
    assert!(w.state.pending_reason(&second).unwrap().to_string().contains("default/first"));
    assert!(w.pending_seen.iter().any(|(n, r)| n == "second" && r.label() == "GUIDInUse"));
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert_eq!(w.state.ledger().get(guid).unwrap().owner.pod, first);
    let log_len = w.log.len();

    w.delete(&first);
    w.settle();
    // Removed for the first, then added for the second, then the second is configured.
    assert_eq!(
        w.actions()[log_len - 1..],
        [
            Logged::Sm(SmOp::Remove, pk("0x5"), vec![guid]),
            Logged::Sm(SmOp::Add, pk("0x5"), vec![guid]),
            Logged::Configured("second".into(), vec![guid]),
        ]
    );
    assert_eq!(w.state.ledger().get(guid).unwrap().owner.pod, second);
    assert_eq!(w.reason(&second), None);
}

#[test]
fn deleted_and_finished_pods_release_their_guids() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", "ib");
    let b = w.pod("default", "b", "ib, ib");
    w.settle();
    assert_eq!(w.members("0x5").len(), 3);
    w.delete(&a);
    w.edit(&b, |v| v.phase = PodPhase::Succeeded);
    w.settle();
    assert!(w.sm.is_empty(), "{:?}", w.sm);
    assert!(w.drift.is_empty(), "ordinary releases are not drift: {:?}", w.drift);
    assert_eq!(w.state.pool().allocated_count(), 0);
    assert!(w.state.ledger().is_empty());
}

/// Removal uses the pkey recorded at add time even when the NAD changed or is gone (the Go daemon used the
/// NAD's pkey of the moment: its bug B11, docs/architecture.md).
#[test]
fn removal_survives_a_deleted_or_changed_nad() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", "ib");
    w.settle();
    w.state.delete_nad(&NetworkRef::new("default", "ib"));
    w.delete(&a);
    w.settle();
    assert!(w.sm.is_empty());

    w.nad("default", "ib", IB5);
    let b = w.pod("default", "b", "ib");
    w.settle();
    w.nad("default", "ib", r#"{"type":"ib-sriov","pkey":"0x6"}"#);
    w.delete(&b);
    w.settle();
    assert!(w.sm.is_empty(), "{:?}", w.sm);
}

#[test]
fn a_pod_waiting_for_its_nad_is_woken_when_it_appears() {
    let mut w = World::default_range().synced();
    let p = w.pod("default", "p", "ib");
    w.settle();
    assert_eq!(w.reason(&p), Some("NetworkNotFound"));
    w.nad("default", "ib", IB5);
    w.settle();
    assert_eq!(w.reason(&p), None);
    assert_eq!(w.annotation(&p)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

#[test]
fn invalid_nads_and_annotations_are_reported_and_harm_nobody_else() {
    let mut w = World::default_range().synced();
    w.nad("default", "zero", r#"{"type":"ib-sriov","pkey":"0x0"}"#);
    w.nad("default", "mgmt", r#"{"type":"ib-sriov","pkey":"0x7fff"}"#);
    w.nad("default", "big", r#"{"type":"ib-sriov","pkey":"0x8000"}"#);
    w.nad("default", "dec", r#"{"type":"ib-sriov","pkey":"1234"}"#);
    w.nad("default", "broken", "{not json");
    w.nad("default", "ib", IB5);
    let mut bad = Vec::new();
    for n in ["zero", "mgmt", "big", "dec", "broken"] {
        bad.push((n, w.pod("default", &format!("p-{n}"), n)));
    }
    let not_json = w.pod("default", "not-json", "[{");
    let object = w.pod("default", "object", r#"{"name":"ib"}"#);
    let number = w.pod("default", "number", r#"[{"name":"ib","cni-args":{"guid":5}}]"#);
    let good = w.pod("default", "good", "ib");
    w.settle();
    for (n, uid) in &bad {
        assert_eq!(w.reason(uid), Some("InvalidNetwork"), "{n}");
    }
    let msg = w.state.pending_reason(&bad[1].1).unwrap().to_string();
    assert!(msg.contains("default/mgmt") && msg.contains("\"0x7fff\"") && msg.contains("management"), "{msg}");
    for uid in [&not_json, &object, &number] {
        assert_eq!(w.reason(uid), Some("InvalidNetworkAnnotation"));
    }
    assert_eq!(w.reason(&good), None);
    assert_eq!(w.members("0x5").len(), 1);
    assert_eq!(w.state.pending_by_reason().get("InvalidNetwork"), Some(&5));
    // Fixing the NAD wakes its pod.
    w.nad("default", "zero", IB5);
    w.settle();
    assert_eq!(w.reason(&bad[0].1), None);
}

/// The leader-start rebuild keeps configured pods' GUIDs (even with no SM record), reports duplicates
/// instead of crash-looping, and never hands out an owned GUID (the Go daemon's bugs B2, B3 and B8,
/// docs/architecture.md).
#[test]
fn leader_start_rebuild_is_the_union_of_pods_and_sm() {
    let mut w = World::new("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:03").first_start();
    w.nad("default", "ib", GUID_ONLY);
    let configured = r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":""}}]"#;
    let owner = w.pod("default", "owner", configured);
    let dup = w.pod("default", "dup", configured);
    // The SM holds another GUID of the range in a partition no record explains: reported, kept.
    w.sm_seed("0x9", "02:00:00:00:00:00:00:01");
    // The default partition is never touched, but its GUIDs are not handed out.
    w.sm_seed("0x7fff", "02:00:00:00:00:00:00:02");
    // Outside the range: not ours.
    w.sm_seed("0x9", "03:00:00:00:00:00:00:01");
    let fresh = w.pod("default", "fresh", "ib");
    w.state.pods_synced();
    w.state.nads_synced();
    w.read_records();
    w.settle();
    // The older pod keeps it, the other is reported; neither crashes anything.
    assert_eq!(w.state.ledger().get(g("02:00:00:00:00:00:00:00")).unwrap().owner.pod, owner);
    assert_eq!(w.reason(&dup), Some("DuplicateGUID"));
    assert_eq!(w.reason(&owner), None);
    assert_eq!(w.recorded_owner(g_("00")).as_deref(), Some("owner"));
    // The fresh pod got the one GUID nobody holds.
    assert_eq!(w.annotation(&fresh)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:03");
    assert!(w.members("0x9").contains(&g_("01")));
    assert!(w.members("0x9").contains(&g("03:00:00:00:00:00:00:01")));
    assert!(w.members("0x7fff").contains(&g("02:00:00:00:00:00:00:02")));
    assert!(w.drift.is_empty());
    assert_eq!(w.unrecorded, vec![g_("01")]);
    // The anchor block exists now: the next start imports nothing, whatever annotations say.
    assert!(!w.blocks.is_empty());
}

/// Found by the chaos soak: at leader start, an unconfigured pod planned before a configured one must
/// not be given the configured pod's GUID (here on a GUID-only network, which the SM knows nothing of).
#[test]
fn configured_guids_are_owned_before_any_guid_is_generated() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib", GUID_ONLY);
    // Pod uids are "uid-default-<name>-<n>": "a-new" sorts before "z-old", so it is planned first.
    let old = w.pod(
        "default",
        "z-old",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":""}}]"#,
    );
    let new = w.pod("default", "a-new", "ib");
    assert!(new < old);
    w.state.pods_synced();
    w.state.nads_synced();
    w.read_records();
    w.settle();
    assert_eq!(w.reason(&old), None);
    assert_eq!(w.annotation(&new)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:01");
}

/// Memberships of pool GUIDs that no record explains (another cluster sharing the subnet manager, a
/// person) are reported and left alone; only an operator's opt-in removes them, and never during the
/// hold at leader start, when a previous leader's last record may still be landing.
#[test]
fn unrecorded_memberships_are_reported_and_removed_only_by_opt_in() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", "ib");
    w.sm_seed("0x5", "02:00:00:00:00:00:00:00");
    w.sm_seed("0x5", "02:00:00:00:00:00:00:09");
    w.settle();
    assert_eq!(w.members("0x5").len(), 3);
    assert!(w.drift.is_empty());
    assert_eq!(w.unrecorded, vec![g_("00"), g_("09")]);
    // Neither is handed out, nor may a pod ask for one.
    assert_eq!(w.annotation(&p)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:01");
    let q = w.pod("default", "q", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:09"}}]"#);
    w.settle();
    assert_eq!(w.reason(&q), Some("GUIDInUse"));
    // Reported once, not at every look.
    w.state.resync();
    w.settle();
    assert_eq!(w.unrecorded.len(), 2);

    // With the opt-in, a new leader holds off until the hold ends, then removes them.
    let range = w.state.pool().range();
    w.state = State::with_policy(range, Policy { remove_unrecorded: true, ..Policy::default() });
    w.nad("default", "ib", IB5);
    for view in w.pods.values() {
        w.state.apply_pod(view.clone());
    }
    w.state.nads_synced();
    w.state.begin_leading();
    w.state.pods_synced();
    w.read_records();
    w.settle();
    assert_eq!(w.members("0x5").len(), 3);
    assert!(w.drift.is_empty());
    w.state.allow_drift_repair();
    w.settle();
    assert_eq!(w.drift, vec![g_("00"), g_("09")]);
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("01"), g_("09")]));
    assert_eq!(w.recorded_owner(g_("09")).as_deref(), Some("q"));
    // The waiting pod gets the GUID it asked for once it is free.
    assert_eq!(w.reason(&q), None);
    assert_eq!(w.annotation(&q)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// A pod author can write a `configured` annotation with any pkey; even at the first start, that must not
/// make the controller add the GUID to a partition the pod's NAD does not give. Without evidence in the
/// subnet manager the marker is not imported: it is a request on the pod's own NAD.
#[test]
fn a_self_written_configured_annotation_gains_no_membership() {
    let mut w = World::default_range().first_start().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod(
        "default",
        "sneaky",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:33","mellanox.infiniband.app":"configured","pkey":"0x9"}}]"#,
    );
    let honest = w.pod(
        "default",
        "restarted",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:34","mellanox.infiniband.app":"configured","pkey":"0x5"}}]"#,
    );
    w.settle();
    assert!(w.members("0x9").is_empty(), "{:?}", w.sm);
    assert_eq!(w.state.ledger().get(g("02:00:00:00:00:00:00:33")).unwrap().owner.pod, p);
    // Both get their own NAD's partition, the one a pod configured by a previous leader was in.
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("33"), g_("34")]));
    assert_eq!(w.state.ledger().get(g("02:00:00:00:00:00:00:34")).unwrap().owner.pod, honest);
    // A membership no record explains is left alone (and reported), and nothing is added for it.
    w.sm_seed("0x9", "02:00:00:00:00:00:00:33");
    w.state.resync();
    w.settle();
    assert_eq!(w.members("0x9"), BTreeSet::from([g_("33")]));
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("33"), g_("34")]));
    assert_eq!(w.unrecorded, vec![g_("33")]);
}

/// A pod refused a GUID that another live pod holds as configured gets it as soon as that pod is gone,
/// without waiting for a resync (resyncs do not plan pods again).
#[test]
fn a_duplicate_guid_is_taken_over_when_its_owner_goes() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let configured = r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:50","mellanox.infiniband.app":"configured","pkey":"0x5"}}]"#;
    let owner = w.pod("default", "owner", configured);
    w.settle();
    let dup = w.pod("default", "dup", configured);
    w.settle();
    assert_eq!(w.reason(&dup), Some("DuplicateGUID"));
    w.delete(&owner);
    w.settle();
    assert_eq!(w.reason(&dup), None);
    assert_eq!(w.state.ledger().get(g_("50")).unwrap().owner.pod, dup);
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("50")]));
}

/// A new leader's fresh list runs beside the watch: a pod the watch delivered after the list's snapshot
/// is not dropped because the list misses it (found by the benchmarks: such a pod was never configured);
/// a pod the list misses whose known version is older than the list is gone.
#[test]
fn a_fresh_list_keeps_pods_newer_than_itself() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let deleted_before = w.pod("default", "deleted-before", "ib");
    let listed = w.pod("default", "listed", "ib");
    let list_rv = w.rv.to_string();
    let created_after = w.pod("default", "created-after", "ib");
    let listed_view = w.pods[&*listed.0].clone();
    w.state.refresh_pods(vec![listed_view], Some(&list_rv));
    assert!(w.state.pod(&deleted_before).is_none());
    assert!(w.state.pod(&listed).is_some());
    assert!(w.state.pod(&created_after).is_some(), "a pod newer than the list was dropped");
    w.delete(&deleted_before);
    w.settle();
    assert_eq!(w.reason(&created_after), None);
    assert_eq!(w.annotation(&created_after)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// Pods with no networks annotation are not kept (most pods of a cluster); a kept pod whose annotation
/// is removed stays, so that its GUID is still released by planning it.
#[test]
fn pods_without_networks_are_not_kept_unless_already_known() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let ib = w.pod("default", "ib-pod", "ib");
    let plain = PodView { uid: PodUid::from("plain"), name: "plain".into(), networks: None, ..w.pods[&*ib.0].clone() };
    w.state.apply_pod(plain.clone());
    assert!(w.state.pod(&plain.uid).is_none());
    w.settle();
    let guid = Guid::parse(w.annotation(&ib)[0]["cni-args"]["guid"].as_str().unwrap()).unwrap();
    w.edit(&ib, |v| v.networks = None);
    assert!(w.state.pod(&ib).is_some());
    w.settle();
    // Configured claims last while the pod lives, whatever happens to its annotation (the VF has it).
    assert_eq!(w.state.ledger().get(guid).unwrap().owner.pod, ib);
    w.delete(&ib);
    w.settle();
    assert!(w.state.ledger().get(guid).is_none());
    assert!(w.members("0x5").is_empty());
    w.state.reset_pods(vec![plain]);
    assert!(w.state.known().pod_count() == 0, "a re-list keeps no plain pod");
}

/// Pods configured by a release that wrote only the marker (no `pkey` in cni-args) are in their NAD's
/// partition: a new leader keeps them there, and puts them back if UFM lost them, never removes them.
#[test]
fn a_configured_annotation_without_a_pkey_means_the_nads_partition() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib", IB5);
    w.sm_seed("0x5", "02:00:00:00:00:00:00:41");
    let kept = w.pod(
        "default",
        "kept",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:41","mellanox.infiniband.app":"configured"}}]"#,
    );
    let lost = w.pod(
        "default",
        "lost",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:42","mellanox.infiniband.app":"configured"}}]"#,
    );
    w.state.pods_synced();
    w.state.nads_synced();
    w.read_records();
    w.settle();
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("41"), g_("42")]));
    assert!(!w.sm_requests().iter().any(|r| matches!(r, Logged::Sm(SmOp::Remove, ..))), "{:?}", w.sm_requests());
    assert_eq!(w.state.ledger().get(g_("41")).unwrap().owner.pod, kept);
    assert_eq!(w.state.ledger().get(g_("42")).unwrap().owner.pod, lost);
    assert_eq!((w.reason(&kept), w.reason(&lost)), (None, None));
}

fn g_(last: &str) -> Guid {
    g(&format!("02:00:00:00:00:00:00:{last}"))
}

/// An exhausted pool asks the SM again and the waiting pod gets the first released GUID (the Go daemon
/// used GUID 0 after such a listing: its bug B1, docs/architecture.md).
#[test]
fn exhaustion_resyncs_and_retries() {
    let mut w = World::new("02:00:00:00:00:00:00:01", "02:00:00:00:00:00:00:02").synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", "ib");
    let _b = w.pod("default", "b", "ib");
    w.settle();
    let c = w.pod("default", "c", "ib");
    let plan = w.state.plan();
    assert!(plan.list_sm, "exhaustion must re-read the SM");
    assert_eq!(plan.pending.len(), 1);
    assert_eq!(plan.pending[0].reason.label(), "GUIDPoolExhausted");
    w.execute(plan);
    w.settle();
    assert_eq!(w.reason(&c), Some("GUIDPoolExhausted"));
    w.delete(&a);
    w.settle();
    assert_eq!(w.reason(&c), None);
    assert_eq!(w.annotation(&c)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:01");
}

#[test]
fn sm_failures_wait_for_a_retry_and_never_configure() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    w.failing.insert(pk("0x5"));
    let p = w.pod("default", "p", "ib");
    w.settle();
    assert_eq!(w.reason(&p), Some("SubnetManagerFailed"));
    // The tenant's Event says what kind of failure, never the subnet manager's answer.
    let text = w.state.pending_reason(&p).unwrap().to_string();
    assert!(text.contains("(status)") && !text.contains("500"), "{text}");
    // The same failure again raises no second Event.
    let events = w.pending_seen.len();
    w.state.retry_guids(&[g("02:00:00:00:00:00:00:00")]);
    w.settle();
    assert_eq!(w.pending_seen.len(), events);
    assert!(!w.log.iter().any(|l| matches!(l, Logged::Configured(..))));
    // Nothing is retried until the caller's backoff says so.
    assert!(w.state.plan().is_idle());
    w.failing.clear();
    w.state.retry_guids(&[g("02:00:00:00:00:00:00:00")]);
    w.settle();
    assert_eq!(w.reason(&p), None);
    assert_eq!(w.annotation(&p)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// A concurrent edit wins the race: the patch conflicts and is planned again on the new version,
/// keeping the user's change (the Go daemon patched without a precondition and clobbered it: its bug B16,
/// docs/architecture.md).
#[test]
fn conflicting_patch_is_replanned_on_the_newer_pod() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", r#"[{"name":"ib"}]"#);
    let plan = w.plan_until_patch();
    // The user edits the element before our patch lands.
    w.edit(&p, |v| v.networks = Some(r#"[{"name":"ib","mac":"c2:b0:57:49:47:f1"}]"#.into()));
    w.execute(plan);
    w.settle();
    let a = w.annotation(&p);
    assert_eq!(a[0]["mac"], "c2:b0:57:49:47:f1");
    assert_eq!(a[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    assert_eq!(w.members("0x5").len(), 1);
}

#[test]
fn patch_not_found_releases_the_guid() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", "ib");
    let plan = w.plan_until_patch();
    w.pods.remove(&*p.0);
    w.execute(plan);
    w.settle();
    assert!(w.sm.is_empty());
    assert_eq!(w.state.pool().allocated_count(), 0);
}

/// Crash between the SM add and the patch: the record was stored before the add, so the next leader
/// finds the pod's GUID in the records and configures the pod with it; nothing is added twice or leaks.
#[test]
fn restart_after_a_crash_between_add_and_patch_converges() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let p = w.pod("default", "p", "ib5");
    // Run until the add is done, then lose the patch with the leader.
    let plan = w.plan_until_patch();
    drop(plan);
    let guid = g_("00");
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert_eq!(w.recorded_owner(guid).as_deref(), Some("p"));
    let adds = w.sm_requests().len();
    w.restart();
    w.settle();
    assert_eq!(w.annotation(&p)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:00");
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert_eq!(w.sm_requests().len(), adds, "no second add: {:?}", w.sm_requests());
    assert_eq!(w.state.pool().allocated_count(), 1);
    // Deleted while no leader runs: the next leader removes it because the record says it is ours.
    w.delete(&p);
    w.restart();
    w.settle();
    assert!(w.members("0x5").is_empty());
    assert!(w.records.is_empty());
}

#[test]
fn terminating_pods_keep_their_guids_until_gone_and_get_no_configuration() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", "ib");
    w.settle();
    w.edit(&a, |v| v.deleting = true);
    let b = w.pod("default", "b", "ib");
    w.edit(&b, |v| v.deleting = true);
    w.settle();
    assert_eq!(w.members("0x5").len(), 1);
    assert!(w.annotation(&b)[0].get("cni-args").is_none());
    w.delete(&a);
    w.settle();
    assert!(w.sm.is_empty());
}

#[test]
fn running_unconfigured_pods_are_configured_and_unscheduled_ones_wait() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let running = w.pod("default", "running", "ib");
    w.edit(&running, |v| v.phase = PodPhase::Running);
    let unscheduled = w.pod("default", "unscheduled", "ib");
    w.edit(&unscheduled, |v| v.node_name = None);
    let host = w.pod("default", "host", "ib");
    w.edit(&host, |v| v.host_network = true);
    w.settle();
    assert_eq!(w.annotation(&running)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    assert!(w.annotation(&unscheduled)[0].get("cni-args").is_none());
    assert!(w.annotation(&host)[0].get("cni-args").is_none());
    w.edit(&unscheduled, |v| v.node_name = Some("node-2".into()));
    w.settle();
    assert_eq!(w.annotation(&unscheduled)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// The same network name in two namespaces is two networks (the Go daemon matched elements by name alone:
/// its bug B10, docs/architecture.md).
#[test]
fn namespaces_are_part_of_the_network_identity() {
    let mut w = World::default_range().synced();
    w.nad("ns1", "ib", IB5);
    w.nad("ns2", "ib", r#"{"type":"ib-sriov","pkey":"0x6"}"#);
    let p = w.pod("ns1", "p", "ns1/ib, ns2/ib");
    w.settle();
    assert_eq!(w.members("0x5").len(), 1);
    assert_eq!(w.members("0x6").len(), 1);
    let a = w.annotation(&p);
    assert_ne!(a[0]["cni-args"]["guid"], a[1]["cni-args"]["guid"]);
}

/// The kernel's 128-pkeys-per-port limit: the pod that would need a 129th partition on its node waits
/// with a reason; pods using a partition the node already has, or on another node, are configured.
#[test]
fn a_node_holds_at_most_128_partitions() {
    let mut w = World::default_range().synced();
    for p in 1..=130u32 {
        w.nad("default", &format!("net{p}"), &format!(r#"{{"type":"ib-sriov","pkey":"0x{p:x}"}}"#));
    }
    let mut uids = Vec::new();
    for p in 1..=128u32 {
        uids.push(w.pod("default", &format!("p{p}"), &format!("net{p}")));
    }
    w.settle();
    let over = w.pod("default", "over", "net129");
    let shared = w.pod("default", "shared", "net1");
    let elsewhere = w.pod("default", "elsewhere", "net130");
    w.edit(&elsewhere, |v| v.node_name = Some("node-2".into()));
    w.settle();
    assert_eq!(w.reason(&over), Some("TooManyPKeys"));
    assert!(w.state.pending_reason(&over).unwrap().to_string().contains("node-1"));
    assert_eq!(w.reason(&shared), None);
    assert_eq!(w.reason(&elsewhere), None);
    assert!(w.members("0x81").is_empty(), "a waiting pod holds no membership");
    // A partition leaves the node: the waiting pod fits now.
    w.delete(&uids[5]);
    w.settle();
    assert_eq!(w.reason(&over), None);
    assert_eq!(w.members("0x81").len(), 1);
}

#[test]
fn an_older_pod_version_from_a_lagging_watch_is_ignored() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", "ib");
    w.settle();
    let configured = w.pods[&*p.0].clone();
    let mut stale = configured.clone();
    stale.resource_version = "1".into();
    stale.networks = Some("ib".into());
    w.state.apply_pod(stale);
    assert_eq!(w.state.pod(&p), Some(&configured));
    w.settle();
    assert_eq!(w.members("0x5").len(), 1);
}

#[test]
fn pending_labels_are_listed() {
    let reasons = [
        PendingReason::NadMissing { network: NetworkRef::new("a", "b") },
        PendingReason::PoolExhausted { range: GuidRange::new(g_("01"), g_("02")).unwrap(), capacity: 2 },
        PendingReason::SubnetManagerFailed { kind: "status" },
        PendingReason::PatchFailed { message: "x".into() },
        PendingReason::TooManyPKeys { node: "n".into(), limit: 128 },
        PendingReason::NamespaceNotAllowed { network: NetworkRef::new("a", "b") },
        PendingReason::TooManyInterfaces { count: 40, limit: 32 },
    ];
    for r in reasons {
        assert!(PendingReason::LABELS.contains(&r.label()), "{}", r.label());
    }
}

// === property test: random worlds converge to the invariants ===

#[derive(Debug, Clone)]
enum Step {
    NewPod {
        nets: Vec<usize>,
        requested: Option<u8>,
    },
    DeletePod(usize),
    FinishPod(usize),
    FailPkey(usize),
    HealAll,
    RunOnce,
    Resync,
    /// Plan and queue the work without doing it.
    PlanOnly,
    /// Finish one queued piece of work, chosen by index (so work completes out of order).
    Complete(usize),
    /// Someone else edits the pod (a label, say): patches planned before conflict.
    Touch(usize),
    /// The leader dies with its queued work undone; a new one starts from the cluster and the SM.
    Restart,
}

const NADS: [(&str, &str); 4] = [
    ("ib5", r#"{"type":"ib-sriov","pkey":"0x5"}"#),
    ("ib6", r#"{"type":"ib-sriov","pkey":"0x6","capabilities":{"infinibandGUID":true}}"#),
    ("gonly", r#"{"type":"ib-sriov"}"#),
    ("mac", r#"{"type":"macvlan"}"#),
];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (prop::collection::vec(0usize..5, 1..5), prop::option::of(0u8..10))
            .prop_map(|(nets, requested)| Step::NewPod { nets, requested }),
        2 => (0usize..64).prop_map(Step::DeletePod),
        1 => (0usize..64).prop_map(Step::FinishPod),
        1 => (0usize..2).prop_map(Step::FailPkey),
        1 => Just(Step::HealAll),
        3 => Just(Step::RunOnce),
        1 => Just(Step::Resync),
        3 => Just(Step::PlanOnly),
        4 => (0usize..16).prop_map(Step::Complete),
        1 => (0usize..64).prop_map(Step::Touch),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For random pods, NADs, SM contents and failures, after the faults stop and the plans run:
    /// every live IB interface that nothing blocks has a unique GUID that is a member of its PKey, and
    /// nothing else in the pool range is a member; the pool counts exactly what is owned or held.
    #[test]
    fn plans_converge_to_the_invariants(
        seed_sm in prop::collection::vec((0u8..10, 0usize..3), 0..4),
        steps in prop::collection::vec(step(), 1..40),
        remove_unrecorded in any::<bool>(),
        first_start in any::<bool>(),
    ) {
        // A tiny range, so that exhaustion, requested GUIDs next to generated ones, and reuse happen.
        let mut w = World::new("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:07");
        w.policy = Policy { remove_unrecorded, ..Policy::default() };
        w.state = State::with_policy(w.state.pool().range(), w.policy.clone());
        if first_start {
            w = w.first_start();
        }
        for (i, (name, config)) in NADS.iter().enumerate() {
            if i < 4 { w.nad("default", name, config); }
        }
        for (low, p) in seed_sm {
            let pkey = ["0x5", "0x6", "0x7fff"][p];
            w.sm_seed(pkey, &format!("02:00:00:00:00:00:00:{low:02x}"));
        }
        w.state.pods_synced();
        w.state.nads_synced();
        w.read_records();
        let mut uids: Vec<PodUid> = Vec::new();
        for (n, s) in steps.into_iter().enumerate() {
            match s {
                Step::NewPod { nets, requested } => {
                    let mut elements = Vec::new();
                    for (k, net) in nets.iter().enumerate() {
                        // Index 4 names a NAD that does not exist.
                        let name = NADS.get(*net).map_or("missing", |(n, _)| *n);
                        let mut e = serde_json::json!({"name": name, "interface": format!("if{k}")});
                        if k == 0 && let Some(low) = requested {
                            e["cni-args"] = serde_json::json!({"guid": format!("02:00:00:00:00:00:00:{low:02X}")});
                        }
                        elements.push(e);
                    }
                    uids.push(w.pod("default", &format!("p{n}"), &Value::Array(elements).to_string()));
                }
                Step::DeletePod(i) => if !uids.is_empty() {
                    let uid = uids[i % uids.len()].clone();
                    if w.pods.contains_key(&*uid.0) { w.delete(&uid); }
                }
                Step::FinishPod(i) => if !uids.is_empty() {
                    let uid = uids[i % uids.len()].clone();
                    if w.pods.contains_key(&*uid.0) { w.edit(&uid, |v| v.phase = PodPhase::Failed); }
                }
                Step::FailPkey(i) => { w.failing.insert(pk(["0x5", "0x6"][i])); }
                Step::HealAll => w.failing.clear(),
                Step::RunOnce => { let plan = w.state.plan(); w.execute(plan); }
                Step::Resync => w.state.resync(),
                Step::PlanOnly => { let plan = w.state.plan(); w.enqueue(plan); }
                Step::Complete(i) => if !w.queue.is_empty() { let n = w.queue.len(); w.complete(i % n); }
                Step::Restart => w.restart(),
                Step::Touch(i) => if !uids.is_empty() {
                    let uid = uids[i % uids.len()].clone();
                    if w.pods.contains_key(&*uid.0) { w.edit(&uid, |_| {}); }
                }
            }
        }
        // Faults stop; queued work finishes; every failed GUID is retried, as the controller's backoff would.
        w.failing.clear();
        while !w.queue.is_empty() { w.complete(0); }
        for _ in 0..3 {
            let failed: Vec<Guid> = w.state.owners().failed_guids().collect();
            w.state.retry_guids(&failed);
            w.settle();
        }
        w.state.allow_drift_repair();
        w.settle();
        prop_assert!(w.state.owners().failed_guids().next().is_none());
        check_invariants(&w)?;
    }
}

fn check_invariants(w: &World) -> Result<(), TestCaseError> {
    let range = w.state.pool().range();
    let mut expected: BTreeSet<(String, Guid)> = BTreeSet::new();
    let mut owners: BTreeMap<Guid, String> = BTreeMap::new();
    for view in w.pods.values() {
        if view.is_finished() {
            continue;
        }
        let raw = view.networks.as_deref().unwrap();
        let a = crate::annotation::NetworksAnnotation::parse(raw, &view.namespace).unwrap();
        let blocked = w.state.pending_reason(&view.uid);
        for s in a.selections() {
            let nad = NADS.iter().find(|(n, _)| *n == s.network.name);
            let Some((_, config)) = nad else {
                prop_assert!(blocked.is_some(), "{} uses a missing NAD and is not blocked", view.name);
                continue;
            };
            if config.contains("macvlan") {
                continue;
            }
            if !s.configured {
                // Only a reason may keep an IB interface unconfigured.
                prop_assert!(blocked.is_some(), "{} {} not configured and not blocked", view.name, s.interface);
                continue;
            }
            let guid = Guid::parse(&s.guid.as_ref().unwrap().0).unwrap();
            prop_assert!(range.contains(guid));
            if let Some(other) = owners.insert(guid, view.name.clone()) {
                prop_assert!(false, "{guid} configured for {other} and {}", view.name);
            }
            let pkey = s.pkey.clone().unwrap();
            if !pkey.is_empty() {
                let name = format!("0x{:x}", PKey::parse(&pkey).unwrap().get());
                expected.insert((name, guid));
            }
        }
    }
    let actual: BTreeSet<(String, Guid)> =
        w.sm.iter()
            .filter(|(g, _)| range.contains(**g))
            .flat_map(|(g, ps)| ps.iter().filter(|p| *p != "0x7fff").map(move |p| (p.clone(), *g)))
            .collect();
    // Memberships nobody recorded stay unless the policy removes them; pods never get their GUIDs.
    let expected: BTreeSet<(String, Guid)> = if w.policy.remove_unrecorded {
        expected
    } else {
        let unrecorded =
            w.seeded.iter().filter(|(p, g)| p != "0x7fff" && range.contains(*g) && !owners.contains_key(g)).cloned();
        expected.into_iter().chain(unrecorded).collect()
    };
    prop_assert_eq!(&actual, &expected);
    // Every membership of the range belongs to a live owner by record, or was never ours.
    for (pkey, guid) in &actual {
        let owner = w.records.get(guid);
        prop_assert!(owner.is_some() || w.seeded.contains(&(pkey.clone(), *guid)), "{guid} in {pkey} without a record");
    }
    // The pool holds exactly what pods own or the SM holds.
    let held: BTreeSet<Guid> =
        owners.keys().copied().chain(w.sm.keys().copied().filter(|g| range.contains(*g))).collect();
    prop_assert_eq!(w.state.pool().allocated_count(), held.len() as u64);
    // No interface was marked configured before its GUID was a member of its pkey.
    prop_assert!(w.violations.is_empty(), "{:?}", w.violations);
    Ok(())
}

// === a hostile tenant gets nothing ===

fn configured_with(guid: &str, pkey: &str) -> String {
    format!(
        r#"[{{"name":"ib5","cni-args":{{"guid":"{guid}","mellanox.infiniband.app":"configured","pkey":"{pkey}"}}}}]"#
    )
}

/// A pod in another namespace, unscheduled or scheduled, on a missing NAD or a real one, that writes
/// a `configured` marker with a live pod's GUID takes nothing from it, at once or after a new leader.
#[test]
fn forged_claims_never_displace_a_recorded_owner() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    w.nad("evil", "ib5", IB5);
    let victim = w.pod("default", "victim", "ib5");
    w.settle();
    let guid = g_("00");
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    let forged_missing = r#"[{"name":"no-such-nad","cni-args":{"mellanox.infiniband.app":"configured","guid":"02:00:00:00:00:00:00:00"}}]"#;
    let unscheduled = w.pod("evil", "unscheduled", forged_missing);
    w.edit(&unscheduled, |v| v.node_name = None);
    let scheduled = w.pod("evil", "scheduled", &configured_with("02:00:00:00:00:00:00:00", "0x5"));
    let other_pkey = w.pod("evil", "other-pkey", &configured_with("02:00:00:00:00:00:00:00", "0x9"));
    let requested = w.pod("evil", "requested", r#"[{"name":"ib5","cni-args":{"guid":"02:00:00:00:00:00:00:00"}}]"#);
    w.settle();
    for _ in 0..2 {
        w.restart();
        w.settle();
    }
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert!(w.members("0x9").is_empty());
    assert!(!w.sm_requests().iter().any(|r| matches!(r, Logged::Sm(SmOp::Remove, ..))), "{:?}", w.sm_requests());
    assert_eq!(w.recorded_owner(guid).as_deref(), Some("victim"));
    assert_eq!(w.reason(&victim), None);
    assert_eq!(w.reason(&scheduled), Some("DuplicateGUID"));
    assert_eq!(w.reason(&other_pkey), Some("DuplicateGUID"));
    assert_eq!(w.reason(&requested), Some("GUIDInUse"));
    // Their Events say nothing about the other tenant.
    for (pod, reason) in &w.pending_seen {
        if pod != "victim" {
            assert!(!reason.to_string().contains("default/victim"), "{pod}: {reason}");
        }
    }
    // Within one namespace the owner is named, which helps its user.
    let same = w.pod("default", "same-ns", r#"[{"name":"ib5","cni-args":{"guid":"02:00:00:00:00:00:00:00"}}]"#);
    w.settle();
    assert!(w.state.pending_reason(&same).unwrap().to_string().contains("default/victim"));
}

/// A `configured` marker on a free GUID that no record backs is a request: it may get that GUID on its
/// own NAD's partition, never the partition its marker names.
#[test]
fn an_unbacked_configured_marker_is_only_a_request() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let p = w.pod("default", "p", &configured_with("02:00:00:00:00:00:00:33", "0x9"));
    w.settle();
    assert_eq!(w.reason(&p), None);
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("33")]));
    assert!(w.members("0x9").is_empty());
    assert_eq!(w.recorded_owner(g_("33")).as_deref(), Some("p"));
    // The annotation already said configured: nothing to patch.
    assert!(!w.log.iter().any(|l| matches!(l, Logged::Configured(..))));
}

/// A pod asking for one free GUID by name plus three generated ones, on a pool of 4 with 1 in use:
/// it waits for the pool, and decisions go on for everyone else.
#[test]
fn a_requested_guid_counts_against_the_pool_like_a_generated_one() {
    let mut w = World::new("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:03").synced();
    w.nad("default", "ib5", IB5);
    let first = w.pod("default", "first", "ib5");
    w.settle();
    assert_eq!(w.reason(&first), None);
    let greedy = w.pod(
        "default",
        "greedy",
        r#"[{"name":"ib5","interface":"a","cni-args":{"guid":"02:00:00:00:00:00:00:02"}},{"name":"ib5","interface":"b"},{"name":"ib5","interface":"c"},{"name":"ib5","interface":"d"}]"#,
    );
    w.settle();
    assert_eq!(w.reason(&greedy), Some("GUIDPoolExhausted"));
    // It holds nothing while it waits, so a modest pod still fits.
    assert_eq!(w.state.pool().allocated_count(), 1);
    let modest = w.pod("default", "modest", "ib5");
    w.settle();
    assert_eq!(w.reason(&modest), None);
}

/// A NAD's pkey edit or deletion moves no running pod: it keeps its recorded partition and is told
/// once; new pods use the NAD as it is now.
#[test]
fn a_nad_edit_keeps_running_pods_in_their_partition() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let running = w.pod("default", "running", "ib5");
    w.settle();
    let old = g_("00");
    // A configured element written before the partition was recorded (no cni-args pkey) is no different.
    let legacy = w.pod("default", "legacy", r#"[{"name":"ib5"}]"#);
    w.settle();
    let legacy_guid = g_("01");
    w.nad("default", "ib5", r#"{"type":"ib-sriov","pkey":"0x6"}"#);
    w.settle();
    let fresh = w.pod("default", "fresh", "ib5");
    w.settle();
    assert_eq!(w.members("0x5"), BTreeSet::from([old, legacy_guid]));
    assert_eq!(w.members("0x6"), BTreeSet::from([g_("02")]));
    assert_eq!(w.reason(&fresh), None);
    let told: BTreeSet<&str> = w.notices.iter().map(|(pod, _, _)| pod.as_str()).collect();
    assert_eq!(told, BTreeSet::from(["legacy", "running"]));
    assert_eq!(w.notices.len(), 2);
    assert!(
        w.notices.iter().all(|n| n.1 == "PartitionKept" && n.2.contains("keeps partition 0x0005")),
        "{:?}",
        w.notices
    );
    // Deleting the NAD removes nothing either, and the pods are not told twice (by one leader).
    w.state.delete_nad(&NetworkRef::new("default", "ib5"));
    w.settle();
    // Only the pod configured since then, on 0x6, is told now.
    assert_eq!(w.notices.len(), 3);
    assert!(w.notices[2].0 == "fresh" && w.notices[2].2.contains("is gone"), "{:?}", w.notices);
    w.restart();
    w.state.delete_nad(&NetworkRef::new("default", "ib5"));
    w.settle();
    assert!(w.members("0x5").contains(&old));
    assert!(!w.sm_requests().iter().any(|r| matches!(r, Logged::Sm(SmOp::Remove, ..))));
    assert_eq!((w.reason(&running), w.reason(&legacy)), (None, None));
}

/// An add whose outcome is unknown (a timeout) keeps its GUID held even when the owner leaves, until a
/// listing says where it is; then the membership is removed and the GUID returns.
#[test]
fn an_unknown_outcome_holds_the_guid_until_a_listing_settles_it() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    w.settle();
    // The subnet manager applies the add, but the answer never comes.
    w.answers_lost = true;
    let p = w.pod("default", "p", "ib5");
    for _ in 0..3 {
        let plan = w.state.plan();
        assert!(!plan.list_sm || w.state.uncertain_count() > 0, "{plan:?}");
        w.enqueue(plan);
        while w.queue.iter().any(|q| !matches!(q, Work::List)) {
            let i = w.queue.iter().position(|q| !matches!(q, Work::List)).unwrap();
            w.complete(i);
        }
    }
    let guid = g_("00");
    assert_eq!(w.state.uncertain_count(), 1);
    assert_eq!(w.records[&guid].state, crate::records::RecordState::Unknown);
    assert_eq!(w.reason(&p), Some("SubnetManagerFailed"));
    assert!(!w.log.iter().any(|l| matches!(l, Logged::Configured(..))));
    // The owner leaves: the GUID stays held, nothing is decided for it until the listing.
    w.delete(&p);
    let plan = w.state.plan();
    w.enqueue(plan);
    assert!(w.state.pool().is_allocated(guid));
    w.answers_lost = false;
    while !w.queue.is_empty() {
        w.complete(0);
    }
    w.settle();
    // The listing settled where it is; the removal waits for the backoff like any retry.
    assert_eq!(w.state.uncertain_count(), 0);
    assert!(w.members("0x5").contains(&guid));
    w.state.retry_guids(&[guid]);
    w.settle();
    assert!(w.members("0x5").is_empty());
    assert!(!w.state.pool().is_allocated(guid));
    assert!(w.records.is_empty());
}

#[test]
fn namespace_isolation_refuses_other_namespaces_but_global_ones() {
    let mut w = World::default_range();
    w.policy = Policy {
        namespace_isolation: true,
        global_namespaces: BTreeSet::from(["shared".to_owned()]),
        ..Policy::default()
    };
    w.state = State::with_policy(w.state.pool().range(), w.policy.clone());
    let mut w = w.synced();
    for ns in ["tenant-a", "tenant-b", "shared"] {
        w.nad(ns, "ib5", IB5);
    }
    let own = w.pod("tenant-a", "own", "ib5");
    let global = w.pod("tenant-a", "global", "shared/ib5");
    let crossing = w.pod("tenant-a", "crossing", "tenant-b/ib5");
    w.settle();
    assert_eq!((w.reason(&own), w.reason(&global)), (None, None));
    assert_eq!(w.reason(&crossing), Some("NamespaceNotAllowed"));
    assert!(w.state.pending_reason(&crossing).unwrap().to_string().contains("tenant-b/ib5"));
    assert_eq!(w.members("0x5").len(), 2);
}

#[test]
fn a_pod_may_have_at_most_32_infiniband_interfaces() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let many: Vec<Value> = (0..33).map(|k| serde_json::json!({"name": "ib5", "interface": format!("ib{k}")})).collect();
    let p = w.pod("default", "many", &Value::Array(many).to_string());
    let rails: Vec<Value> = (0..8).map(|k| serde_json::json!({"name": "ib5", "interface": format!("ib{k}")})).collect();
    let ok = w.pod("default", "rails", &Value::Array(rails).to_string());
    w.settle();
    assert_eq!(w.reason(&p), Some("TooManyInterfaces"));
    assert_eq!(w.reason(&ok), None);
    assert_eq!(w.state.pool().allocated_count(), 8);
}

/// The first start without records imports configured annotations once, oldest pod first: the
/// loser of a duplicate gets an Event and nothing is removed from the winner. Markers written after
/// that are requests only.
#[test]
fn the_first_start_imports_annotations_once() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib5", IB5);
    w.sm_seed("0x5", "02:00:00:00:00:00:00:10");
    // Uids sort opposite to age: the import goes by age, not by uid.
    let old = w.pod("default", "z-old", &configured_with("02:00:00:00:00:00:00:10", "0x5"));
    let young = w.pod("default", "a-young", &configured_with("02:00:00:00:00:00:00:10", "0x5"));
    let w = &mut w.synced();
    w.settle();
    assert_eq!(w.recorded_owner(g_("10")).as_deref(), Some("z-old"));
    assert_eq!(w.reason(&young), Some("DuplicateGUID"));
    assert_eq!(w.reason(&old), None);
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("10")]));
    assert!(w.unrecorded.is_empty());
    // After the import, a forged marker is a request like any other.
    w.delete(&old);
    let forger = w.pod("default", "forger", &configured_with("02:00:00:00:00:00:00:11", "0x5"));
    w.restart();
    w.settle();
    assert_eq!(w.recorded_owner(g_("11")).as_deref(), Some("forger"));
    // The young pod is not handed the GUID by its stale marker on restart: it asks for it, and gets it
    // once the old owner is gone.
    assert!(w.records.contains_key(&g_("10")));
    assert_eq!(w.reason(&forger), None);
}

/// What a pod that cannot be configured now keeps of its annotation: nothing but its presence.
#[test]
fn unscheduled_pods_keep_no_annotation_text() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let huge = format!("[{}]", vec![r#"{"name":"ib5"}"#; 2000].join(","));
    let p = w.pod("default", "p", &huge);
    w.edit(&p, |v| v.node_name = None);
    assert_eq!(w.state.pod(&p).unwrap().networks.as_deref(), Some(""));
    w.settle();
    assert_eq!(w.state.pool().allocated_count(), 0);
}

/// A configured pod whose annotation is removed keeps its GUID and partition until it ends, across a new
/// leader too: its VF carries the GUID, and handing it to another pod would put it on the fabric twice.
#[test]
fn a_configured_pod_keeps_its_guid_when_its_annotation_is_removed() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let p = w.pod("default", "p", "ib5");
    w.settle();
    w.edit(&p, |v| v.networks = None);
    w.settle();
    w.restart();
    w.settle();
    let q = w.pod("default", "q", r#"[{"name":"ib5","cni-args":{"guid":"02:00:00:00:00:00:00:00"}}]"#);
    w.settle();
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("00")]));
    assert_eq!(w.recorded_owner(g_("00")).as_deref(), Some("p"));
    assert_eq!(w.reason(&q), Some("GUIDInUse"));
    w.delete(&p);
    w.settle();
    assert_eq!(w.recorded_owner(g_("00")).as_deref(), Some("q"));
}

/// The import becomes final only once a block exists: until the anchor block is stored, nothing is
/// decided (no add, no patch), and a failed anchor write is retried after the backoff, even when the
/// import found nothing. Once it is stored, a marker forged later is never imported by a new leader.
#[test]
fn nothing_is_decided_before_the_import_is_made_final() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib5", IB5);
    w.nad("evil", "ib5", IB5);
    let mut w = w.synced();
    w.records_failing = true;
    // The listing, then the import and its anchor write, which fails.
    for _ in 0..2 {
        let plan = w.state.plan();
        w.execute(plan);
    }
    let fresh = w.pod("default", "fresh", "ib5");
    for _ in 0..3 {
        let plan = w.state.plan();
        assert!(plan.sm.is_empty() && plan.patches.is_empty() && plan.records.is_empty(), "{plan:?}");
        w.execute(plan);
    }
    assert!(w.blocks.is_empty());
    // After the backoff the anchor is written again, and then everything proceeds.
    w.records_failing = false;
    w.state.retry_records();
    w.settle();
    assert!(!w.blocks.is_empty());
    assert_eq!(w.reason(&fresh), None);
    assert_eq!(w.annotation(&fresh)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    // A tenant forges a marker for a GUID the fabric holds; a new leader does not import it.
    w.sm_seed("0x5", "02:00:00:00:00:00:00:10");
    let forger = w.pod("evil", "forger", &configured_with("02:00:00:00:00:00:00:10", "0x5"));
    w.restart();
    w.settle();
    assert_eq!(w.recorded_owner(g_("10")), None);
    assert_eq!(w.reason(&forger), Some("GUIDInUse"));
}

/// At the first start, markers without evidence (a missing NAD, a GUID in no partition) are not
/// imported: a tenant who forged them before the import got nothing by it.
#[test]
fn the_import_takes_only_markers_with_evidence() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib5", IB5);
    w.nad("evil", "t-ib", r#"{"type":"ib-sriov","pkey":"0x20"}"#);
    w.sm_seed("0x5", "02:00:00:00:00:00:00:12");
    let missing = w.pod(
        "evil",
        "missing-nad",
        r#"[{"name":"no-such-nad","cni-args":{"guid":"02:00:00:00:00:00:00:10","mellanox.infiniband.app":"configured"}}]"#,
    );
    let honest = w.pod("default", "honest", &configured_with("02:00:00:00:00:00:00:12", "0x5"));
    let mut w = w.synced();
    w.settle();
    assert_eq!(w.recorded_owner(g_("10")), None);
    assert_eq!(w.reason(&missing), Some("NetworkNotFound"));
    assert_eq!(w.recorded_owner(g_("12")).as_deref(), Some("honest"));
    assert_eq!(w.reason(&honest), None);
    assert!(w.sm_requests().is_empty(), "{:?}", w.sm_requests());
}
