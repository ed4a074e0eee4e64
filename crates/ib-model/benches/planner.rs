//! Planner benchmarks: `cargo bench -p ib-model --bench planner`.
//!
//! The state is driven the way the controller's state task drives it: inputs applied, `plan()`, the
//! plan's work done by a subnet manager and an API server that always succeed at once, and their
//! outcomes fed back. Only the fake executors are simplified; every state call is the controller's.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ib_model::{
    Guid, GuidRange, InterfaceKey, NetworkRef, NetworksAnnotation, PKey, PatchOutcome, Plan, PodPhase, PodUid, PodView,
    Record, RecordState, SmOp, State,
};

const NAMESPACE: &str = "default";
/// Four InfiniBand networks, each on its own partition; pods are spread over them round-robin.
const NETWORKS: [(&str, &str); 4] = [("ib-a", "0x1"), ("ib-b", "0x2"), ("ib-c", "0x3"), ("ib-d", "0x4")];
/// Keeps the per-node pkey bookkeeping realistic: thousands of nodes with a few IB pods each, not one
/// node holding everything.
const PODS_PER_NODE: u64 = 8;

fn range() -> GuidRange {
    GuidRange::new(Guid::parse("02:00:00:00:00:00:00:00").unwrap(), Guid::parse("02:ff:ff:ff:ff:ff:ff:ff").unwrap())
        .unwrap()
}

fn nad_config(pkey: &str) -> String {
    format!(r#"{{"cniVersion":"0.3.1","name":"ib","type":"ib-sriov","pkey":"{pkey}","link_state":"enable"}}"#)
}

fn pending_annotation(k: u64) -> String {
    let network = NETWORKS[(k % 4) as usize].0;
    format!(r#"[{{"name":"{network}","namespace":"default","interface":"net1"}}]"#)
}

/// Pod `k` of the benchmark; uid, name and node all derive from `k` so that pods never collide.
fn pod_view(k: u64, resource_version: u64, phase: PodPhase, networks: String) -> PodView {
    PodView {
        created: 0,
        uid: PodUid::from(format!("pod-{k}")),
        namespace: NAMESPACE.into(),
        name: format!("worker-{k}"),
        resource_version: resource_version.to_string(),
        node_name: Some(format!("node-{}", k / PODS_PER_NODE).into()),
        host_network: false,
        phase,
        deleting: false,
        networks: Some(networks),
        network_status: Vec::new(),
    }
}

/// What the API server and the subnet manager hold once `n` pods are configured.
struct Fleet {
    pods: Vec<PodView>,
    /// (partition name as the subnet manager writes it, GUID).
    listing: Vec<(String, Guid)>,
    /// The ownership records the controller wrote for them.
    records: Vec<(Guid, Record)>,
}

fn fleet(n: u64) -> Fleet {
    let start = range().start().as_u64();
    let mut pods = Vec::with_capacity(n as usize);
    let mut listing = Vec::with_capacity(n as usize);
    let mut records = Vec::with_capacity(n as usize);
    for k in 0..n {
        let pkey = NETWORKS[(k % 4) as usize].1;
        let guid = Guid::from_u64(start + k);
        // Written with the planner's own edit, so the rebuild reads exactly what a controller wrote.
        let mut annotation = NetworksAnnotation::parse(&pending_annotation(k), NAMESPACE).unwrap();
        annotation.set_guid(0, guid, false);
        annotation.mark_configured(0, pkey);
        pods.push(pod_view(k, k + 1, PodPhase::Running, annotation.to_json()));
        listing.push((pkey.to_owned(), guid));
        let view = pods.last().expect("just pushed");
        let network = NetworkRef::new(NAMESPACE, NETWORKS[(k % 4) as usize].0);
        let owner = InterfaceKey { pod: view.uid.clone(), network, interface: "net1".into() };
        let record = Record {
            owner,
            pod_namespace: view.namespace.to_string(),
            pod_name: view.name.clone(),
            pkey: Some(PKey::parse(pkey).unwrap()),
            state: RecordState::Member,
        };
        records.push((guid, record));
    }
    Fleet { pods, listing, records }
}

fn with_nads() -> State {
    let mut state = State::new(range());
    let configs: Vec<(NetworkRef, String)> =
        NETWORKS.iter().map(|(name, pkey)| (NetworkRef::new(NAMESPACE, *name), nad_config(pkey))).collect();
    state.reset_nads(configs.iter().map(|(n, c)| (n.clone(), Some(c.as_str()))));
    state.nads_synced();
    state
}

/// A replica that has read the cluster but does not lead yet: what exists when a leadership begins.
fn follower(fleet: &Fleet) -> State {
    let mut state = with_nads();
    state.reset_pods(fleet.pods.clone());
    state.pods_synced();
    state
}

/// The state task's inputs from `begin_leading` up to the reconciling plan, in the controller's order:
/// leadership, every pod and record read afresh, a plan (which asks for the listing), the listing, a plan.
fn lead(state: &mut State, fresh_pods: Vec<PodView>, fleet: &Fleet) -> Plan {
    let listing = &fleet.listing;
    state.begin_leading();
    state.records_listed(true, fleet.records.iter().cloned());
    state.reset_pods(fresh_pods);
    state.pods_synced();
    black_box(state.plan());
    state.sm_listed(listing.iter().map(|(p, g)| (p.as_str(), *g)));
    state.plan()
}

/// A leading controller whose executors never fail or wait, so that only the state's own work is left.
struct Cluster {
    state: State,
    sm: BTreeSet<(Guid, PKey)>,
    /// Patched pods must come back with a newer resourceVersion, or the state ignores them as stale.
    resource_version: u64,
    /// Pods ever created, so that a new pod never reuses an earlier uid.
    created: u64,
}

impl Cluster {
    /// The leader after the rebuild and the drift grace, with nothing left to do.
    fn steady(fleet: &Fleet) -> Self {
        let mut state = follower(fleet);
        let n = fleet.pods.len() as u64;
        let first = lead(&mut state, fleet.pods.clone(), fleet);
        let sm = fleet.listing.iter().map(|(p, g)| (*g, PKey::parse(p).unwrap())).collect();
        let mut cluster = Cluster { state, sm, resource_version: n, created: n };
        cluster.execute(first);
        cluster.state.allow_drift_repair();
        cluster.settle();
        assert_eq!(cluster.state.ledger().len() as u64, n);
        assert_eq!(cluster.state.pool().allocated_count(), n);
        assert!(cluster.state.pending_by_reason().is_empty());
        cluster
    }

    /// The executors as the state sees them: each request succeeds at once and its outcome comes back.
    fn execute(&mut self, plan: Plan) {
        for write in &plan.records {
            self.state.records_written(write, true);
        }
        if plan.list_sm {
            let listing: Vec<(String, Guid)> = self.sm.iter().map(|(g, p)| (format!("0x{:x}", p.get()), *g)).collect();
            self.state.sm_listed(listing.iter().map(|(p, g)| (p.as_str(), *g)));
        }
        for request in &plan.sm {
            for &g in &request.guids {
                match request.op {
                    SmOp::Add => self.sm.insert((g, request.pkey)),
                    SmOp::Remove => self.sm.remove(&(g, request.pkey)),
                };
            }
            self.state.sm_done(request, Ok(()));
        }
        for patch in plan.patches {
            let mut view = self.state.pod(&patch.pod.uid).expect("only known pods are patched").clone();
            view.networks = Some(patch.annotation);
            self.resource_version += 1;
            view.resource_version = self.resource_version.to_string();
            self.state.patch_done(&patch.pod.uid, PatchOutcome::Applied(view));
        }
    }

    /// The state task's rounds until nothing is left: from there on, a new pod costs the steady-state cost.
    fn settle(&mut self) {
        for _ in 0..16 {
            let plan = self.state.plan();
            let idle = plan.is_idle();
            self.execute(plan);
            if idle && self.state.is_settled() {
                return;
            }
        }
        panic!("the planner did not settle");
    }

    /// Already scheduled: before scheduling a pod's event only parses its annotation, so the event that
    /// does the work is the one measured.
    fn new_pod(&mut self) -> PodView {
        let k = self.created;
        self.created += 1;
        self.resource_version += 1;
        pod_view(k, self.resource_version, PodPhase::Pending, pending_annotation(k))
    }

    /// Puts the state back to where it was before `uid` was created: the GUID leaves its partition and
    /// returns to the pool.
    fn remove(&mut self, uid: &PodUid) {
        self.state.delete_pod(uid);
        self.settle();
    }
}

/// Runs one new pod through to configured and away again, checking each step does what the timed
/// loops assume, so the numbers cannot silently come from a short-cut path.
fn check_one_pod_cycle(cluster: &mut Cluster) {
    let before = cluster.state.ledger().len();
    let pod = cluster.new_pod();
    let uid = pod.uid.clone();
    cluster.state.apply_pod(pod);
    // The record first, then the add, then the patch.
    let plan = cluster.state.plan();
    assert!(plan.patches.is_empty() && plan.sm.is_empty() && plan.records.len() == 1, "{plan:?}");
    cluster.execute(plan);
    let plan = cluster.state.plan();
    assert!(plan.patches.is_empty() && plan.sm.len() == 1 && plan.sm[0].guids.len() == 1, "{plan:?}");
    cluster.execute(plan);
    let plan = cluster.state.plan();
    assert_eq!(plan.patches.len(), 1, "{plan:?}");
    cluster.execute(plan);
    cluster.settle();
    let guid = cluster.state.ledger().iter().find(|(_, c)| c.owner.pod == uid).map(|(g, _)| g).unwrap();
    assert!(cluster.state.ledger().get(guid).unwrap().configured);
    cluster.remove(&uid);
    assert_eq!(cluster.state.ledger().len(), before);
    assert!(!cluster.state.pool().is_allocated(guid));
}

fn one_new_pod(c: &mut Criterion) {
    let mut group = c.benchmark_group("one new pod");
    for (n, label) in [(0u64, "0"), (10_000, "10,000"), (100_000, "100,000")] {
        let fleet = fleet(n);
        let mut cluster = Cluster::steady(&fleet);
        drop(fleet);
        check_one_pod_cycle(&mut cluster);

        // The state cannot be cloned, so each iteration undoes itself untimed (configure, delete, GUID
        // removed and released) instead of rebuilding 100,000 pods per sample.
        group.bench_function(format!("first plan, {label} configured"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let pod = cluster.new_pod();
                    let uid = pod.uid.clone();
                    cluster.state.apply_pod(pod);
                    let started = Instant::now();
                    let plan = cluster.state.plan();
                    timed += started.elapsed();
                    cluster.execute(plan);
                    cluster.settle();
                    cluster.remove(&uid);
                }
                timed
            })
        });
        // Every round the state task runs for the pod: its watch event, the SM outcome, the patch
        // outcome, each followed by a plan.
        group.bench_function(format!("all rounds until configured, {label} configured"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let pod = cluster.new_pod();
                    let uid = pod.uid.clone();
                    let started = Instant::now();
                    cluster.state.apply_pod(pod);
                    cluster.settle();
                    timed += started.elapsed();
                    cluster.remove(&uid);
                }
                timed
            })
        });
    }
    group.finish();
}

fn burst(c: &mut Criterion) {
    const PODS: usize = 1_000;
    let fleet = fleet(10_000);
    let setup = || {
        let mut cluster = Cluster::steady(&fleet);
        let pods: Vec<PodView> = (0..PODS).map(|_| cluster.new_pod()).collect();
        (cluster, pods)
    };

    let (mut cluster, pods) = setup();
    pods.into_iter().for_each(|p| cluster.state.apply_pod(p));
    // The records of the whole burst first, a few blocks of consecutive GUIDs, one write each.
    let plan = cluster.state.plan();
    assert!(plan.sm.is_empty() && plan.records.len() <= PODS / 256 + 2, "{} record writes", plan.records.len());
    cluster.execute(plan);
    let plan = cluster.state.plan();
    // One request per partition for the whole burst, and no pod marked before its GUID joined.
    assert_eq!(plan.sm.len(), NETWORKS.len(), "{plan:?}");
    assert_eq!(plan.sm.iter().map(|r| r.guids.len()).sum::<usize>(), PODS);
    assert!(plan.patches.is_empty());
    cluster.execute(plan);
    cluster.settle();
    assert_eq!(cluster.state.ledger().iter().filter(|(_, c)| c.configured).count(), 10_000 + PODS);
    drop(cluster);

    let mut group = c.benchmark_group("burst");
    group.sample_size(10);
    group.bench_function("1,000 new pods on 4 pkeys, first plan, 10,000 configured", |b| {
        b.iter_batched(
            || {
                let (mut cluster, pods) = setup();
                pods.into_iter().for_each(|p| cluster.state.apply_pod(p));
                cluster
            },
            |mut cluster| {
                let plan = cluster.state.plan();
                (cluster, plan)
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("1,000 new pods on 4 pkeys, all rounds until configured, 10,000 configured", |b| {
        b.iter_batched(
            setup,
            |(mut cluster, pods)| {
                pods.into_iter().for_each(|p| cluster.state.apply_pod(p));
                cluster.settle();
                cluster
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn leader_start(c: &mut Criterion) {
    const PODS: u64 = 100_000;
    let fleet = fleet(PODS);

    let mut state = follower(&fleet);
    let plan = lead(&mut state, fleet.pods.clone(), &fleet);
    // Everything is configured, recorded and joined already: the rebuild must only re-learn it.
    assert!(
        plan.sm.is_empty() && plan.patches.is_empty() && plan.pending.is_empty() && plan.records.is_empty(),
        "{:?} {:?}",
        plan.sm,
        plan.records.len()
    );
    assert_eq!(state.ledger().len() as u64, PODS);
    assert_eq!(state.pool().allocated_count(), PODS);
    drop(state);

    let mut group = c.benchmark_group("leader start");
    group.sample_size(10);
    group.bench_function("initial pod list of 100,000 configured pods", |b| {
        b.iter_batched(
            || (with_nads(), fleet.pods.clone()),
            |(mut state, pods)| {
                state.reset_pods(pods);
                state.pods_synced();
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("begin_leading to reconciled, 100,000 configured", |b| {
        b.iter_batched(
            || (follower(&fleet), fleet.pods.clone()),
            |(mut state, pods)| {
                let plan = lead(&mut state, pods, &fleet);
                (state, plan)
            },
            BatchSize::LargeInput,
        )
    });
    // The part of the rebuild that is planning: every pod and every GUID of the range looked at once.
    group.bench_function("first plan after the SM listing, 100,000 configured", |b| {
        b.iter_batched(
            || {
                let mut state = follower(&fleet);
                state.begin_leading();
                state.records_listed(true, fleet.records.iter().cloned());
                state.reset_pods(fleet.pods.clone());
                state.pods_synced();
                assert!(state.plan().list_sm);
                state.sm_listed(fleet.listing.iter().map(|(p, g)| (p.as_str(), *g)));
                state
            },
            |mut state| {
                let plan = state.plan();
                (state, plan)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, one_new_pod, burst, leader_start);
criterion_main!(benches);
