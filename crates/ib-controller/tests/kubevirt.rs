//! KubeVirt virt-launcher pods against the real controller over HTTP: virt-handler removes `cni-args`
//! from the pod's elements while the VM runs, so the GUID and the `configured` marker vanish from the
//! annotation. Ownership is by record: the pod keeps its GUID and membership across leaders, is given
//! no other GUID, and gives everything back when it is deleted. Coming from the Go daemon, the first
//! start reads a stripped element's GUID from the network-status annotation.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, IB5, wait_for};
use kube_emulator::Resource;
use serde_json::{Value, json};
use ufm_emulator::{Endpoint, Member};

/// What virt-handler leaves of the element.
const STRIPPED: &str = r#"[{"name":"ib","interface":"net1"}]"#;

/// Multus' network-status for `net1` set up by ib-sriov-cni with `guid` (UFM form), beside the default
/// network: the IPoIB hardware address ends with the port GUID.
fn network_status(guid_ufm: &str) -> String {
    let bytes: Vec<&str> = (0..8).map(|i| &guid_ufm[2 * i..2 * i + 2]).collect();
    json!([
        {"name": "k8s-pod-network", "interface": "eth0", "mac": "0a:58:0a:00:00:05", "default": true},
        {"name": "default/ib", "interface": "net1",
         "mac": format!("00:00:01:07:fe:80:00:00:00:00:00:00:{}", bytes.join(":")), "dns": {}}
    ])
    .to_string()
}

/// The VM is running: Multus reported the interface, and virt-handler removed the `cni-args`.
fn run_and_strip(cluster: &Cluster, name: &str, guid_ufm: &str) {
    cluster
        .api()
        .mutate(Resource::Pods, "default", name, |p| {
            p["status"]["phase"] = "Running".into();
            p["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = network_status(guid_ufm).into();
            p["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = STRIPPED.into();
        })
        .expect("mutate pod");
}

/// A pod created after an edit and configured means the controller has seen the edit: it handles a
/// watch's events in order.
async fn probe(cluster: &Cluster, name: &str) -> String {
    cluster.pod("default", name, "ib");
    let nets = cluster.wait_configured("default", name, 1).await;
    ufm(nets[0]["cni-args"]["guid"].as_str().expect("guid"))
}

fn ufm(guid_text: &str) -> String {
    ib_model::Guid::parse(guid_text).expect("valid GUID").to_ufm()
}

/// GUIDs (UFM form) named by every add request UFM received, counted.
fn added(cluster: &Cluster) -> Vec<String> {
    cluster
        .fabric()
        .requests_to(Endpoint::AddGuids)
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .flat_map(|b| b["guids"].as_array().cloned().unwrap_or_default())
        .filter_map(|g| g.as_str().map(str::to_lowercase))
        .collect()
}

/// The pod uid the GUID's record names, if any.
fn recorded_pod(cluster: &Cluster, guid_ufm: &str) -> Option<String> {
    let guid = ib_model::Guid::parse_ufm(guid_ufm).expect("valid");
    let block = cluster.api().get(Resource::GuidBlocks, "", &ib_model::BlockId::of(guid).name())?;
    block["spec"]["allocations"][guid.to_string()]["podUid"].as_str().map(str::to_owned)
}

/// The pod's GUID as its annotation names it now, if it names one: only ever `guid_ufm`.
fn annotation_names_only(cluster: &Cluster, name: &str, guid_ufm: &str) {
    if let Some(text) = cluster.networks("default", name)[0]["cni-args"]["guid"].as_str() {
        assert_eq!(ufm(text), guid_ufm, "{name} was given another GUID");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripped_pod_keeps_its_guid_across_leaders_and_releases_when_deleted() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let a = cluster.controller("a", &[]).await;
    let mut vms = Vec::new();
    for name in ["virt-launcher-live", "virt-launcher-between-leaders"] {
        let uid = cluster.pod("default", name, STRIPPED);
        let nets = cluster.wait_configured("default", name, 1).await;
        let guid = ufm(nets[0]["cni-args"]["guid"].as_str().expect("guid"));
        run_and_strip(&cluster, name, &guid);
        vms.push((name, uid, guid));
    }
    let first = probe(&cluster, "probe-1").await;
    for (name, uid, guid) in &vms {
        assert_eq!(recorded_pod(&cluster, guid).as_deref(), Some(uid.as_str()), "{name}");
        annotation_names_only(&cluster, name, guid);
    }
    let want: BTreeSet<String> = vms.iter().map(|(_, _, g)| g.clone()).chain([first.clone()]).collect();
    assert_eq!(cluster.members(5), want);

    // A new leader, the elements stripped again while none ran.
    a.shutdown().await;
    for (name, _, guid) in &vms {
        run_and_strip(&cluster, name, guid);
    }
    let b = cluster.controller("b", &[]).await;
    let second = probe(&cluster, "probe-2").await;
    for (name, uid, guid) in &vms {
        assert_eq!(recorded_pod(&cluster, guid).as_deref(), Some(uid.as_str()), "{name}");
        annotation_names_only(&cluster, name, guid);
    }
    let want: BTreeSet<String> = want.into_iter().chain([second.clone()]).collect();
    assert_eq!(cluster.members(5), want);
    // Each GUID was added once, and no other GUID was ever added.
    let mut adds = added(&cluster);
    adds.sort();
    let mut expected: Vec<String> = want.iter().cloned().collect();
    expected.sort();
    assert_eq!(adds, expected);

    // One VM deleted while the controller runs, stripped; the other while no controller runs.
    let (live, between) = (&vms[0], &vms[1]);
    run_and_strip(&cluster, live.0, &live.2);
    cluster.api().delete_with_grace(Resource::Pods, "default", live.0, Some(0)).expect("delete");
    wait_for("the live VM's GUID to leave the partition", || (!cluster.members(5).contains(&live.2)).then_some(()))
        .await;
    b.shutdown().await;
    run_and_strip(&cluster, between.0, &between.2);
    cluster.api().delete_with_grace(Resource::Pods, "default", between.0, Some(0)).expect("delete");
    let c = cluster.controller("c", &[]).await;
    wait_for("the other VM's GUID to leave the partition", || (!cluster.members(5).contains(&between.2)).then_some(()))
        .await;
    wait_for("both records to be deleted", || {
        (recorded_pod(&cluster, &live.2).is_none() && recorded_pod(&cluster, &between.2).is_none()).then_some(())
    })
    .await;
    assert_eq!(cluster.members(5), BTreeSet::from([first, second]));
    c.shutdown().await;
}

/// Coming from the Go daemon with VMs running: no records, the element stripped, the GUID a member of
/// the NAD's partition in UFM and reported in network-status. The first start makes the pod its owner;
/// a pod with a network-status the controller cannot read is configured like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_imports_a_stripped_guid_from_network_status() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let guid = "0200000000000042".to_owned();
    cluster.fabric().seed_members(5, [(guid.parse().expect("guid"), Member::default())]);
    let pod = |name: &str, status: &str| {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": STRIPPED,
                                         "k8s.v1.cni.cncf.io/network-status": status}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"}
        });
        let created = cluster.api().create(Resource::Pods, pod).expect("create pod");
        created["metadata"]["uid"].as_str().expect("uid").to_owned()
    };
    let vm = pod("virt-launcher-vm", &network_status(&guid));
    // Deeply nested: refused by the parser, never a crash of the watch.
    let garbage = pod("garbage", &"[".repeat(100_000));
    let controller = cluster.controller("a", &[]).await;
    wait_for("the import to record the VM's GUID", || {
        (recorded_pod(&cluster, &guid).as_deref() == Some(vm.as_str())).then_some(())
    })
    .await;
    let nets = cluster.wait_configured("default", "garbage", 1).await;
    let fresh = ufm(nets[0]["cni-args"]["guid"].as_str().expect("guid"));
    assert_ne!(fresh, guid);
    assert_eq!(recorded_pod(&cluster, &fresh).as_deref(), Some(garbage.as_str()));
    let probed = probe(&cluster, "probe").await;
    annotation_names_only(&cluster, "virt-launcher-vm", &guid);
    assert_eq!(cluster.members(5), BTreeSet::from([guid.clone(), fresh.clone(), probed.clone()]));
    assert!(!added(&cluster).contains(&guid), "the imported GUID was added again");

    cluster.api().delete_with_grace(Resource::Pods, "default", "virt-launcher-vm", Some(0)).expect("delete");
    wait_for("the imported GUID to leave the partition", || (!cluster.members(5).contains(&guid)).then_some(())).await;
    wait_for("its record to be deleted", || recorded_pod(&cluster, &guid).is_none().then_some(())).await;
    controller.shutdown().await;
}
