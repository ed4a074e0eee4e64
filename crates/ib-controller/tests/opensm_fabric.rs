//! The `opensm` backend against a real OpenSM on a simulated InfiniBand fabric: ibsim simulates the
//! switch and the host ports (their port GUIDs are the controller's pool), OpenSM runs on it through
//! `libumad2sim.so`, the controller runs against the Kubernetes emulator with the `opensm` backend, and
//! every check reads the ports' P_Key tables with `smpquery pkeys`, the way an administrator would:
//! nothing here trusts the partitions file alone.
//!
//! Needs the Debian packages `ibsim-utils`, `opensm` and `infiniband-diags` (`.ci/run` installs them);
//! without them the test prints `SKIP: <reason>` and does nothing else. The fabric is the `ib-fabric`
//! harness, which kills every process it starts when the test ends, however it ends.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cluster, Replica};
use ib_fabric::{Fabric, FabricSpec, Host, missing_tools};
use ib_sm::OpenSm;
use ib_sm::opensm::{OpenSmConfig, Reload, partitions};
use kube_emulator::{Fault, FaultRule, Resource};

/// OpenSM reprograms ports seconds after a reload; a loaded two-core machine can take much longer.
const FABRIC_DEADLINE: Duration = Duration::from_secs(180);
/// Pool ports of the fabric, one GUID each: GUID_POOL_RANGE_START .. +POOL.
const POOL: u64 = 32;
const POOL_FIRST: u64 = 0x0200_0000_0000_0100;
/// The site's own host: not in the pool.
const SITE_HOST: u64 = 0x0400_0000_0000_0002;
/// A pool-range port the site itself made a limited member of its partition 0x0a01.
const SITE_POOL_PORT: u64 = POOL_FIRST + 0x1f;

/// The site's partitions: odd whitespace, comments, a definition of a P_Key the NADs also use (0x0005,
/// even under the name we would give it), one of its own with a pool-range port. Every byte must stay.
const SITE: &str = "# Site partitions: ib-kubernetes keeps these lines byte for byte\n\
Default=0x7fff, ipoib : ALL=full ;\n\
site-storage = 0x0a01 ,ipoib:\n\
\t0x0400000000000002=full,   # the site's own host\n\
\t0x020000000000011f=limited ;\n\
ib-kubernetes-0x0005=0x0005 : 0x0400000000000002=full ; # the site's definition of a key pods use too\n";

/// The shared fabric harness, with the pool's ports and the site's host, failing the test on any error.
struct Osm {
    fabric: Fabric,
}

impl Osm {
    async fn start() -> Osm {
        let mut hosts: Vec<Host> = (0..POOL).map(|i| Host::port(POOL_FIRST + i)).collect();
        hosts.push(Host { name: "H-site".into(), port_guid: SITE_HOST });
        let fabric = Fabric::start(FabricSpec { hosts, partitions: SITE.into(), deadline: FABRIC_DEADLINE })
            .await
            .expect("the simulated fabric starts");
        assert_eq!(fabric.lids().keys().next(), Some(&POOL_FIRST), "ports carry the GUIDs of the topology");
        let osm = Osm { fabric };
        // Partitions are programmed once the site's own shows on its host.
        wait("OpenSM to program the site's partitions", || {
            osm.pkeys(SITE_HOST).contains(&(0x0a01, true)).then_some(())
        })
        .await;
        osm
    }

    fn partitions_file(&self) -> PathBuf {
        self.fabric.partitions_file()
    }

    fn pid_file(&self) -> PathBuf {
        self.fabric.pid_file()
    }

    fn log(&self) -> String {
        self.fabric.log()
    }

    fn pkeys(&self, guid: u64) -> BTreeSet<(u16, bool)> {
        self.fabric.pkeys(guid).expect("smpquery pkeys")
    }

    /// (P_Key, GUID, full) of every pool port, except the default partition and the site's 0x0a01.
    fn pool_memberships(&self) -> BTreeSet<(u16, u64, bool)> {
        self.fabric.memberships(POOL_FIRST..POOL_FIRST + POOL, &[0x7fff, 0x0a01]).expect("smpquery pkeys")
    }
}

async fn wait<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    common::wait_within(FABRIC_DEADLINE, Duration::from_millis(100), what, check).await
}

/// A replica with the opensm backend, once it leads.
async fn spawn(cluster: &Cluster, name: &str, env: &[(&str, &str)], sm: Arc<OpenSm>) -> Replica {
    let replica = cluster.spawn_replica_with(name, env, sm);
    replica.wait_leading_within(FABRIC_DEADLINE).await;
    replica
}

/// (P_Key, GUID) of every configured interface of every live pod.
fn configured(cluster: &Cluster) -> BTreeSet<(u16, u64)> {
    cluster.configured_pairs().into_iter().map(|(p, g)| (p, u64::from_str_radix(&g, 16).expect("UFM form"))).collect()
}

/// The GUIDs of a pod's configured interfaces, in order.
fn guids_of(cluster: &Cluster, ns: &str, pod: &str) -> Vec<u64> {
    cluster
        .networks(ns, pod)
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["cni-args"]["guid"].as_str())
        .map(|g| ib_model::Guid::parse(g).expect("guid").as_u64())
        .collect()
}

fn outside_block(bytes: &[u8]) -> Vec<u8> {
    let layout = partitions::layout(bytes).expect("markers");
    match layout.block {
        Some(b) => [&bytes[..b.start], &bytes[b.end..]].concat(),
        None => bytes.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_reach_the_ports_of_a_real_opensm() {
    if let Some(reason) = missing_tools() {
        println!("SKIP: {reason} (apt-get install ibsim-utils opensm infiniband-diags)");
        return;
    }
    if std::env::var("DAEMON_SM_PLUGIN").is_ok_and(|p| p == "ufm") {
        println!("SKIP: this run selects the ufm exec plugin; the real-OpenSM test runs in the plain run");
        return;
    }
    let fabric = Osm::start().await;
    let site_host_before = fabric.pkeys(SITE_HOST);
    assert_eq!(
        site_host_before,
        BTreeSet::from([(0x7fff, true), (0x0a01, true), (0x0005, true)]),
        "the site's partitions as OpenSM programmed them"
    );
    assert!(fabric.pkeys(SITE_POOL_PORT).contains(&(0x0a01, false)), "the site's limited member");
    assert!(fabric.pool_memberships().is_empty());

    let cluster = Cluster::start().await;
    cluster.nad("default", "ib-a", common::IB5);
    cluster.nad(
        "default",
        "ib-b",
        r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"ib-b","pkey":"0x6","link_state":"enable","ipam":{}}"#,
    );
    let file = fabric.partitions_file().display().to_string();
    let pid = fabric.pid_file().display().to_string();
    let env = [
        ("DAEMON_SM_PLUGIN", "opensm"),
        ("OPENSM_PARTITIONS_FILE", file.as_str()),
        ("OPENSM_PID_FILE", pid.as_str()),
        ("GUID_POOL_RANGE_START", "02:00:00:00:00:00:01:00"),
        ("GUID_POOL_RANGE_END", "02:00:00:00:00:00:01:1f"),
    ];
    let sm_config = || OpenSmConfig::new(fabric.partitions_file(), Reload::PidFile(fabric.pid_file()));
    let sm = Arc::new(OpenSm::new(sm_config()));
    let first = spawn(&cluster, "a", &env, Arc::clone(&sm)).await;

    // One pod at a time: from creation to the P_Key in the port's table.
    let mut latencies = Vec::new();
    for (name, networks) in [("p1", "ib-a"), ("p2", "ib-a, ib-b"), ("p3", "ib-b"), ("p4", "ib-a")] {
        let created = Instant::now();
        cluster.pod("default", name, networks);
        let elements = networks.split(',').count();
        cluster.wait_configured("default", name, elements).await;
        let guids = guids_of(&cluster, "default", name);
        let wanted: Vec<(u64, u16)> = guids
            .iter()
            .zip(networks.split(',').map(|n| if n.trim() == "ib-a" { 0x5 } else { 0x6 }))
            .map(|(g, p)| (*g, p))
            .collect();
        wait(&format!("{name}'s P_Keys on its ports"), || {
            wanted.iter().all(|(g, p)| fabric.pkeys(*g).contains(&(*p, true))).then_some(())
        })
        .await;
        latencies.push(created.elapsed());
    }
    let expected: BTreeSet<(u16, u64, bool)> = configured(&cluster).into_iter().map(|(p, g)| (p, g, true)).collect();
    assert_eq!(expected.len(), 5);
    assert_eq!(fabric.pool_memberships(), expected, "exactly the configured interfaces, as full members");

    // Finished and deleted pods: their partitions leave their ports; the others stay.
    let p2 = guids_of(&cluster, "default", "p2");
    let p3 = guids_of(&cluster, "default", "p3");
    cluster
        .api()
        .mutate(Resource::Pods, "default", "p2", |p| p["status"]["phase"] = "Succeeded".into())
        .expect("finish");
    cluster.api().delete_with_grace(Resource::Pods, "default", "p3", Some(0)).expect("delete");
    wait("finished and deleted pods' P_Keys to leave their ports", || {
        let now = fabric.pool_memberships();
        (p2.iter().chain(&p3).all(|g| now.iter().all(|(_, m, _)| m != g)) && now.len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        fabric.pool_memberships(),
        configured(&cluster).into_iter().map(|(p, g)| (p, g, true)).collect::<BTreeSet<_>>()
    );

    // A burst: one rewrite and one reload per batch, not per pod.
    let before = sm.stats();
    let burst_started = Instant::now();
    let burst: Vec<String> = (0..12).map(|i| format!("burst-{i}")).collect();
    for (i, name) in burst.iter().enumerate() {
        cluster.pod("default", name, if i % 2 == 0 { "ib-a" } else { "ib-b" });
    }
    for name in &burst {
        cluster.wait_configured("default", name, 1).await;
    }
    let want: BTreeSet<(u16, u64, bool)> = configured(&cluster).into_iter().map(|(p, g)| (p, g, true)).collect();
    wait("the burst's P_Keys on its ports", || (fabric.pool_memberships() == want).then_some(())).await;
    let burst_elapsed = burst_started.elapsed();
    let after = sm.stats();
    let (rewrites, reloads) = (after.rewrites - before.rewrites, after.reloads - before.reloads);
    // How many batches a burst takes depends on timing (the deterministic check of group commit is in
    // ib-sm's unit tests); what holds always: one reload per rewrite at most.
    assert!(rewrites <= 12 && reloads <= rewrites, "{rewrites} rewrites, {reloads} reloads");
    for name in &burst {
        cluster.api().delete_with_grace(Resource::Pods, "default", name, Some(0)).expect("delete");
    }
    let want: BTreeSet<(u16, u64, bool)> = configured(&cluster).into_iter().map(|(p, g)| (p, g, true)).collect();
    wait("the burst's P_Keys to leave", || (fabric.pool_memberships() == want).then_some(())).await;

    // Killed between the file write and the pod patch: the patch hangs, the file and the port already
    // hold the new membership, the controller dies; a new one converges.
    cluster.api().inject_fault(
        FaultRule::new(Fault::Hang { max: Duration::from_secs(600) })
            .method("PATCH")
            .path("/api/v1/namespaces/*/pods/p5")
            .times(usize::MAX),
    );
    cluster.pod("default", "p5", "ib-a");
    let annotated: BTreeSet<u64> = configured(&cluster).into_iter().map(|(_, g)| g).collect();
    let written = wait("p5's GUID in the file and on its port", || {
        let bytes = std::fs::read(fabric.partitions_file()).ok()?;
        let (_, ours) = partitions::read_block(&bytes).ok()?;
        let new: Vec<u64> = ours
            .get(&ib_model::PKey::new(5).expect("pkey"))?
            .iter()
            .map(|g| g.as_u64())
            .filter(|g| !annotated.contains(g))
            .collect();
        let [guid] = new[..] else { return None };
        fabric.pkeys(guid).contains(&(0x5, true)).then_some(guid)
    })
    .await;
    assert!(cluster.api().hung_requests() >= 1, "p5's patch is held");
    assert!(guids_of(&cluster, "default", "p5").is_empty(), "p5 is not configured yet");
    first.kill();
    cluster.api().clear_faults();
    cluster.api().release_hung();
    let sm2 = Arc::new(OpenSm::new(sm_config()));
    let second = spawn(&cluster, "b", &env, Arc::clone(&sm2)).await;
    cluster.wait_configured("default", "p5", 1).await;
    let p5 = guids_of(&cluster, "default", "p5");
    wait("the ports to match the configured pods after the restart", || {
        let want: BTreeSet<(u16, u64, bool)> = configured(&cluster).into_iter().map(|(p, g)| (p, g, true)).collect();
        (fabric.pool_memberships() == want).then_some(())
    })
    .await;
    println!("killed after writing {written:#018x} for p5; after the restart p5 has {:#018x}", p5[0]);

    // Everything deleted: no pool port keeps one of our partitions; the site's are as they were.
    for name in ["p1", "p2", "p4", "p5"] {
        cluster.api().delete_with_grace(Resource::Pods, "default", name, Some(0)).expect("delete");
    }
    wait("every pod partition to leave the ports", || fabric.pool_memberships().is_empty().then_some(())).await;
    assert_eq!(fabric.pkeys(SITE_HOST), site_host_before, "the site's host keeps its partitions, 0x0005 included");
    assert!(fabric.pkeys(SITE_POOL_PORT).contains(&(0x0a01, false)), "the site's limited member is untouched");
    let bytes = std::fs::read(fabric.partitions_file()).expect("read");
    assert_eq!(
        String::from_utf8_lossy(&outside_block(&bytes)),
        format!("{SITE}{}\n{}\n", partitions::BEGIN_MARKER, partitions::END_MARKER),
        "the site's lines, byte for byte, and our (empty) block after them"
    );
    assert!(!fabric.log().contains("PARSE ERROR"), "OpenSM never refused the file");
    second.stop();

    // 200 calls at once on 4 P_Keys, straight to the backend (the controller would send fewer: one call
    // per P_Key at a time): four of the GUIDs are fabric ports, the others are not on this fabric.
    let direct = Arc::new(OpenSm::new(sm_config()));
    let burst_started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let sm = Arc::clone(&direct);
        let guid = if i < 4 { POOL_FIRST + i } else { 0x0500_0000_0000_0000 + i };
        let pkey = ib_model::PKey::new(0x21 + (i % 4) as u32).expect("pkey");
        calls.spawn(async move {
            ib_sm::SubnetManager::add_guids(sm.as_ref(), pkey, &[ib_model::Guid::from_u64(guid)]).await
        });
    }
    while let Some(done) = calls.join_next().await {
        done.expect("task").expect("add");
    }
    let written = burst_started.elapsed();
    let want: BTreeSet<(u16, u64, bool)> = (0..4).map(|i| (0x21 + i as u16, POOL_FIRST + i, true)).collect();
    wait("the direct burst on the ports", || (fabric.pool_memberships() == want).then_some(())).await;
    let visible = burst_started.elapsed();
    let burst200 = direct.stats();
    assert!(burst200.rewrites <= burst200.batches && burst200.reloads <= burst200.batches, "{burst200:?}");
    let everything: Vec<(ib_model::PKey, ib_model::Guid)> = (0..200u64)
        .map(|i| {
            let guid = if i < 4 { POOL_FIRST + i } else { 0x0500_0000_0000_0000 + i };
            (ib_model::PKey::new(0x21 + (i % 4) as u32).expect("pkey"), ib_model::Guid::from_u64(guid))
        })
        .collect();
    for (pkey, guid) in &everything {
        ib_sm::SubnetManager::remove_guids(direct.as_ref(), *pkey, &[*guid]).await.expect("remove");
    }
    wait("the direct burst to leave the ports", || fabric.pool_memberships().is_empty().then_some(())).await;
    assert_eq!(fabric.pkeys(SITE_HOST), site_host_before);

    let ms = |d: &Duration| d.as_millis();
    println!(
        "opensm fabric: pod created -> P_Key on its port: {:?} ms (one at a time); burst of 12 pods on 2 P_Keys: \
         all visible after {} ms, {rewrites} rewrites and {reloads} reloads; restart: {:?} rewrites, {:?} reloads",
        latencies.iter().map(ms).collect::<Vec<_>>(),
        burst_elapsed.as_millis(),
        sm2.stats().rewrites,
        sm2.stats().reloads,
    );
    println!(
        "opensm fabric: 200 calls at once on 4 P_Keys: {} batches, {} rewrites, {} reloads; all written after {} ms, \
         on the ports after {} ms",
        burst200.batches,
        burst200.rewrites,
        burst200.reloads,
        written.as_millis(),
        visible.as_millis()
    );
}
