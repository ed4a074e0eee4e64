//! Where the state's bytes go at a leader start in a GPU cluster (the `ib-bench gpu-start` scenario:
//! every pod configured, a quarter of them with 8 rails, 4 tenant partitions, records and subnet
//! manager memberships for every GUID). A measurement, not a check; run it with
//!
//! ```text
//! cargo run --release -p ib-model --example state_memory
//! ```
//!
//! with `_RJEM_MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0` in the environment, so that freed
//! pages go back at once (`STATE_MEMORY_PODS=10000` for another size). It prints how much resident
//! memory and how many allocated bytes each step of the start adds, under the product's allocator,
//! and how high each went during the step (sampled every 0.2 ms).

use std::sync::atomic::{AtomicI64, Ordering};

use ib_model::annotation::{CONFIGURED_KEY, CONFIGURED_VALUE};
use ib_model::{Guid, GuidRange, InterfaceKey, NetworkRef, PodPhase, PodUid, PodView, Record, RecordState, State};

// The product's allocator, so that size classes and their rounding are the product's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Resident bytes of this process.
fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Bytes allocated and not yet freed, as the allocator counts them.
fn allocated() -> i64 {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    tikv_jemalloc_ctl::stats::allocated::read().map_or(0, |b| b as i64)
}

/// The highest resident and allocated figures a sampler thread saw since the step began: a step's
/// transient peak, which the figures after the step no longer show once the step has freed it.
static HIGH_RSS: AtomicI64 = AtomicI64::new(0);
static HIGH_ALLOCATED: AtomicI64 = AtomicI64::new(0);

fn sample_forever() {
    std::thread::spawn(|| {
        loop {
            HIGH_RSS.fetch_max(rss(), Ordering::Relaxed);
            HIGH_ALLOCATED.fetch_max(allocated(), Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    });
}

/// A record as the controller reads it: its pod's uid a string of its own, decoded from its block.
fn as_read((guid, record): &(Guid, Record)) -> (Guid, Record) {
    let mut record = record.clone();
    record.owner.pod = PodUid::from(record.owner.pod.0.to_string());
    (*guid, record)
}

/// Pods or records per page, as the controller reads them.
const PAGE: usize = 500;
const NAMESPACE: &str = "bench";
const TENANTS: u64 = 4;
const RAILS: u64 = 8;
const NODES: u64 = 64;
const FIRST_PKEY: u64 = 0x10;
const SEEDED_GUID_BASE: u64 = 0x0200_0000_1000_0000;

fn network(tenant: u64) -> String {
    format!("ib-{tenant}")
}

fn uid(i: u64) -> String {
    // The shape of a real uid (a UUID), unique per pod.
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", i * 2654435761 % (1 << 32), i % 65536, i % 4096, i % 4096, i)
}

/// The annotation as ib-kubernetes writes it once every rail is configured.
fn configured_networks(tenant: u64, guids: &[Guid]) -> String {
    let elements: Vec<serde_json::Value> = guids
        .iter()
        .enumerate()
        .map(|(r, guid)| {
            serde_json::json!({"name": network(tenant), "interface": format!("net{}", r + 1), "cni-args": {
                "guid": guid.to_string(), CONFIGURED_KEY: CONFIGURED_VALUE, "pkey": format!("0x{:x}", FIRST_PKEY + tenant)}})
        })
        .collect();
    serde_json::Value::Array(elements).to_string()
}

struct Cluster {
    pods: Vec<PodView>,
    records: Vec<(Guid, Record)>,
    listing: Vec<(String, Guid)>,
}

fn cluster(pods: u64) -> Cluster {
    let multi = pods / 4;
    let single = pods - multi;
    let mut next = SEEDED_GUID_BASE;
    let mut out = Cluster { pods: Vec::new(), records: Vec::new(), listing: Vec::new() };
    for i in 0..pods {
        let width = if i < single { 1 } else { RAILS };
        let tenant = i % TENANTS;
        let guids: Vec<Guid> = (0..width).map(|k| Guid::from_u64(next + k)).collect();
        next += width;
        let view = PodView {
            uid: PodUid::from(uid(i)),
            namespace: NAMESPACE.into(),
            name: format!("gpu-{i}"),
            resource_version: (1000 + i).to_string(),
            node_name: Some(format!("node-{}", i % NODES).into()),
            host_network: false,
            phase: PodPhase::Pending,
            deleting: false,
            networks: Some(configured_networks(tenant, &guids)),
            created: 1_700_000_000 + i as i64,
            network_status: Vec::new(),
        };
        for (r, guid) in guids.iter().enumerate() {
            out.records.push((
                *guid,
                Record {
                    owner: InterfaceKey {
                        pod: PodUid::from(uid(i)),
                        network: NetworkRef::new(NAMESPACE, network(tenant)),
                        interface: format!("net{}", r + 1).into(),
                    },
                    pod_namespace: NAMESPACE.into(),
                    pod_name: view.name.clone(),
                    pkey: ib_model::PKey::new((FIRST_PKEY + tenant) as u32).ok(),
                    state: RecordState::Member,
                },
            ));
            out.listing.push((format!("0x{:x}", FIRST_PKEY + tenant), *guid));
        }
        out.pods.push(view);
    }
    out
}

/// Where a step began: resident and allocated bytes.
#[derive(Clone, Copy)]
struct Mark {
    rss: i64,
    allocated: i64,
}

/// The figures now; the highest points are counted from here.
fn begin_step() -> Mark {
    let mark = Mark { rss: rss(), allocated: allocated() };
    HIGH_RSS.store(mark.rss, Ordering::Relaxed);
    HIGH_ALLOCATED.store(mark.allocated, Ordering::Relaxed);
    mark
}

fn report(step: &str, before: Mark, pods: u64, guids: usize) {
    let bytes = rss() - before.rss;
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    let now = allocated();
    println!(
        "{step:<42} {:>6.1} MiB {:>5.0} B/pod {:>4.0} B/GUID, at most {:>+6.1} | allocated {:>+6.1}, at most {:>+6.1}",
        mib(bytes),
        bytes as f64 / pods as f64,
        bytes as f64 / guids as f64,
        mib(HIGH_RSS.load(Ordering::Relaxed).max(rss()) - before.rss),
        mib(now - before.allocated),
        mib(HIGH_ALLOCATED.load(Ordering::Relaxed).max(now) - before.allocated),
    );
}

fn main() -> Result<(), String> {
    let pods: u64 = std::env::var("STATE_MEMORY_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let range = GuidRange::new(Guid::from_u64(0x0200_0000_0000_0000), Guid::from_u64(0x02ff_ffff_ffff_ffff))
        .map_err(|e| format!("the pool range: {e}"))?;
    let mut state = State::new(range);
    let nads: Vec<(NetworkRef, String)> = (0..TENANTS)
        .map(|t| {
            let config = format!(
                r#"{{"cniVersion":"0.3.1","name":"ib","type":"ib-sriov","pkey":"0x{:x}","link_state":"enable"}}"#,
                FIRST_PKEY + t
            );
            (NetworkRef::new(NAMESPACE, network(t)), config)
        })
        .collect();
    state.reset_nads(nads.iter().map(|(n, c)| (n.clone(), Some(c.as_str()))));
    state.nads_synced();

    let c = cluster(pods);
    let guids = c.records.len();
    println!("{pods} pods, {guids} GUIDs");
    let start = begin_step();
    sample_forever();

    // In the order of a leader's start and in its pages, planned after each as the state task does:
    // the lease is held before the watch's list is in, which then counts as the pods read; the
    // ownership records; the fresh list, which the first plan overtakes (it ends after it); the
    // subnet manager's listing.
    state.begin_leading();
    let mark = begin_step();
    for (i, page) in c.pods.chunks(PAGE).enumerate() {
        state.relist_pods_page(i == 0, page.to_vec());
        drop(state.plan());
    }
    state.relist_pods_end();
    report("pods applied (the watch's list)", mark, pods, guids);

    let mark = begin_step();
    for page in c.records.chunks(PAGE) {
        state.records_page(page.iter().map(as_read));
        drop(state.plan());
    }
    state.records_end(true);
    drop(state.plan());
    report("records read (ledger and stored records)", mark, pods, guids);

    let (early, late) = c.pods.split_at(c.pods.len() / 2);
    let mark = begin_step();
    for page in early.chunks(PAGE) {
        state.fresh_pods_page(page.to_vec());
        drop(state.plan());
    }
    report("half the pods read afresh", mark, pods, guids);

    let mark = begin_step();
    state.sm_listed(c.listing.iter().map(|(p, g)| (p.as_str(), *g)));
    report("subnet manager listed", mark, pods, guids);

    let mark = begin_step();
    let plan = state.plan();
    drop(plan);
    state.allow_drift_repair();
    let plan = state.plan();
    drop(plan);
    report("planned", mark, pods, guids);

    let mark = begin_step();
    for page in late.chunks(PAGE) {
        state.fresh_pods_page(page.to_vec());
        drop(state.plan());
    }
    state.fresh_pods_end(None);
    let plan = state.plan();
    drop(plan);
    report("the rest read afresh", mark, pods, guids);

    report("the state, all told", start, pods, guids);
    drop(c);
    if state.ledger().len() != guids {
        return Err(format!(
            "{} of {guids} recorded GUIDs owned: the start was not the one measured",
            state.ledger().len()
        ));
    }
    Ok(())
}
