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
//! memory each step of the start adds, under the product's allocator.

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

fn report(step: &str, before: i64, pods: u64, guids: usize) {
    let bytes = rss() - before;
    println!(
        "{step:<44} {:>8.1} MiB {:>7.0} B/pod {:>6.0} B/GUID",
        bytes as f64 / (1024.0 * 1024.0),
        bytes as f64 / pods as f64,
        bytes as f64 / guids as f64,
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
    let start = rss();

    let mark = rss();
    state.reset_pods(c.pods.clone());
    state.pods_synced();
    report("pods applied (the watch's list)", mark, pods, guids);

    let mark = rss();
    state.begin_leading();
    state.records_listed(true, c.records.clone());
    report("records read (ledger and stored records)", mark, pods, guids);

    let mark = rss();
    state.refresh_pods(c.pods.clone(), None);
    report("pods read afresh", mark, pods, guids);

    let mark = rss();
    state.sm_listed(c.listing.iter().map(|(p, g)| (p.as_str(), *g)));
    report("subnet manager listed", mark, pods, guids);

    let mark = rss();
    let plan = state.plan();
    drop(plan);
    state.allow_drift_repair();
    let plan = state.plan();
    drop(plan);
    report("planned", mark, pods, guids);

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
