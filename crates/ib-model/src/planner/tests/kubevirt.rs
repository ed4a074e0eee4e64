//! KubeVirt virt-launcher pods: virt-handler removes `cni-args` from the pod's elements while the VM
//! runs, and with them the GUID and the `configured` marker. Ownership is by record, so such a pod keeps
//! its GUID and membership, gets no other GUID, and gives everything back when it ends; the one-time
//! import reads a stripped element's GUID from the network-status annotation.

use super::*;
use crate::annotation::network_status::{IbAddress, parse_ib_addresses};

/// What virt-handler leaves of a virt-launcher pod's element.
const STRIPPED: &str = r#"[{"name":"ib","interface":"net1"}]"#;

/// What Multus writes after ib-sriov-cni set up `net1` with `guid`, beside the default network.
fn network_status(guid: &str) -> String {
    format!(
        r#"[{{"name":"k8s-pod-network","interface":"eth0","mac":"0a:58:0a:00:00:05","default":true}},{{"name":"default/ib","interface":"net1","mac":"00:00:01:07:fe:80:00:00:00:00:00:00:{guid}","dns":{{}}}}]"#
    )
}

fn addresses(guid: &str) -> Vec<IbAddress> {
    parse_ib_addresses(&network_status(guid)).unwrap()
}

/// A VM's pod configured on `default/ib` (pkey 0x5), running; its GUID.
fn configured_vm(w: &mut World, name: &str) -> (PodUid, Guid) {
    let uid = w.pod("default", name, STRIPPED);
    w.settle();
    let guid = g(w.annotation(&uid)[0]["cni-args"]["guid"].as_str().unwrap());
    let text = guid.to_string();
    w.edit(&uid, |v| {
        v.phase = PodPhase::Running;
        v.network_status = addresses(&text);
    });
    w.settle();
    (uid, guid)
}

/// virt-handler's edit: the element loses its `cni-args`.
fn strip(w: &mut World, uid: &PodUid) {
    w.edit(uid, |v| v.networks = Some(STRIPPED.into()));
}

/// Every subnet-manager request so far names only these GUIDs.
fn only_guids_requested(w: &World, guids: &[Guid]) {
    for l in w.sm_requests() {
        let Logged::Sm(_, _, requested) = l else { unreachable!() };
        assert!(requested.iter().all(|r| guids.contains(r)), "{l:?} names a GUID other than {guids:?}");
    }
}

/// Every patch of `name` wrote only `guid`, and the annotation, if written back, names it.
fn only_guid_configured(w: &World, uid: &PodUid, guid: Guid) {
    let name = &w.pods[&*uid.0].name;
    for l in &w.log {
        if let Logged::Configured(patched, guids) = l
            && patched == name
        {
            assert_eq!(guids, &vec![guid], "a patch configured another GUID");
        }
    }
    if let Some(text) = w.annotation(uid)[0]["cni-args"]["guid"].as_str() {
        assert_eq!(g(text), guid);
    }
}

fn owns(w: &World, uid: &PodUid, guid: Guid) {
    assert_eq!(w.state.ledger().guids_of_pod(uid), vec![guid]);
    assert_eq!(w.records[&guid].owner.pod, *uid);
    assert_eq!(w.records[&guid].pkey, Some(pk("0x5")));
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert_eq!(w.reason(uid), None);
}

#[test]
fn a_stripped_pod_keeps_its_guid_and_membership() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let (vm, guid) = configured_vm(&mut w, "virt-launcher-vm-a");
    let adds = w.sm_requests().len();
    strip(&mut w, &vm);
    w.settle();
    owns(&w, &vm, guid);
    assert_eq!(w.sm_requests().len(), adds, "the membership was changed: {:?}", w.sm_requests());
    only_guid_configured(&w, &vm, guid);
    assert_eq!(w.records.len(), 1);
    // Nothing is written back while the pod runs: virt-handler would strip it again, and the CNI does
    // not run again for a running pod.
    let patches =
        |w: &World| w.log.iter().filter(|l| matches!(l, Logged::Configured(n, _) if n == "virt-launcher-vm-a")).count();
    assert_eq!(patches(&w), 1);
    assert!(w.annotation(&vm)[0].get("cni-args").is_none());
    strip(&mut w, &vm);
    w.settle();
    assert_eq!(patches(&w), 1);
    owns(&w, &vm, guid);
    // A pod that is not running (its sandbox is being made again) gets the marker back, with the same
    // GUID, so that the CNI finds it.
    w.edit(&vm, |v| v.phase = PodPhase::Pending);
    w.settle();
    assert_eq!(patches(&w), 2);
    let element = &w.annotation(&vm)[0];
    assert_eq!(element["cni-args"]["mellanox.infiniband.app"], "configured");
    assert_eq!(element["cni-args"]["pkey"], "0x5");
    owns(&w, &vm, guid);
    // A pod created now gets another GUID: the stripped pod's is not free.
    let other = w.pod("default", "other", "ib");
    w.settle();
    let second = g(w.annotation(&other)[0]["cni-args"]["guid"].as_str().unwrap());
    assert_ne!(second, guid);
    assert_eq!(w.state.ledger().guids_of_pod(&vm), vec![guid]);
    assert_eq!(w.members("0x5"), BTreeSet::from([guid, second]));
}

#[test]
fn a_new_leader_keeps_a_stripped_pods_guid_by_its_record() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let (vm, guid) = configured_vm(&mut w, "virt-launcher-vm-a");
    strip(&mut w, &vm);
    // The network-status annotation is not read: the record is the proof.
    w.edit(&vm, |v| v.network_status = Vec::new());
    w.restart();
    w.settle();
    owns(&w, &vm, guid);
    only_guids_requested(&w, &[guid]);
    only_guid_configured(&w, &vm, guid);
    // Stripped again under the new leader, still the same.
    strip(&mut w, &vm);
    w.settle();
    owns(&w, &vm, guid);
    only_guids_requested(&w, &[guid]);
}

#[test]
fn a_stripped_pod_releases_everything_when_it_ends() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let free = w.state.pool().free_count();
    // Deleted while a leader runs, finished, and deleted while no leader ran.
    for end in ["deleted", "finished", "deleted-between-leaders"] {
        let (vm, guid) = configured_vm(&mut w, &format!("virt-launcher-{end}"));
        strip(&mut w, &vm);
        w.settle();
        match end {
            "deleted" => w.delete(&vm),
            "finished" => w.edit(&vm, |v| v.phase = PodPhase::Succeeded),
            _ => {
                w.pods.remove(&*vm.0);
                w.restart();
            }
        }
        w.settle();
        assert!(w.members("0x5").is_empty(), "{end}: {:?}", w.members("0x5"));
        assert!(w.records.is_empty(), "{end}: {:?}", w.records);
        assert!(!w.state.ledger().contains(guid), "{end}");
        assert_eq!(w.state.pool().free_count(), free, "{end}");
        assert_eq!(w.log.last(), Some(&Logged::Sm(SmOp::Remove, pk("0x5"), vec![guid])), "{end}");
    }
}

/// Coming from the Go daemon with VMs running: no records yet, the elements stripped, the GUID only in
/// network-status. The import takes it, with the membership as evidence, and gives the pod no other.
#[test]
fn the_first_start_reads_a_stripped_guid_from_network_status() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib", IB5);
    w.sm_seed("0x5", "02:00:00:00:00:00:00:10");
    w.sm_seed("0x5", "02:00:00:00:00:00:00:11");
    let named = w.pod("default", "virt-launcher-named", STRIPPED);
    w.edit(&named, |v| {
        v.phase = PodPhase::Running;
        v.network_status = addresses("02:00:00:00:00:00:00:10");
    });
    // An element without `interface` is `idx_0`: the first entry of its network.
    let unnamed = w.pod("default", "virt-launcher-unnamed", r#"[{"name":"ib"}]"#);
    w.edit(&unnamed, |v| {
        v.phase = PodPhase::Running;
        v.network_status = addresses("02:00:00:00:00:00:00:11");
    });
    let mut w = w.synced();
    w.settle();
    owns_among(&w, &named, g_("10"));
    owns_among(&w, &unnamed, g_("11"));
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("10"), g_("11")]));
    assert!(w.unrecorded.is_empty(), "{:?}", w.unrecorded);
    only_guids_requested(&w, &[g_("10"), g_("11")]);
    only_guid_configured(&w, &named, g_("10"));
    only_guid_configured(&w, &unnamed, g_("11"));
    // Deleted, the imported GUID leaves the partition it was found in.
    w.delete(&named);
    w.settle();
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("11")]));
    assert!(!w.records.contains_key(&g_("10")));
}

fn owns_among(w: &World, uid: &PodUid, guid: Guid) {
    assert_eq!(w.state.ledger().guids_of_pod(uid), vec![guid]);
    assert_eq!(w.records[&guid].owner.pod, *uid);
    assert_eq!(w.reason(uid), None);
}

/// network-status is written by whoever can edit the pod: a GUID it names is imported only under the
/// import's rules, and never after the first start.
#[test]
fn network_status_takes_no_guid_from_anyone() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib", IB5);
    w.sm_seed("0x5", "02:00:00:00:00:00:00:10");
    w.sm_seed("0x9", "02:00:00:00:00:00:00:12");
    w.sm_seed("0x5", "02:00:00:00:00:00:00:13");
    // The oldest pod is configured with 10; a younger one's network-status claims it.
    let owner = w.pod(
        "default",
        "owner",
        r#"[{"name":"ib","interface":"net1","cni-args":{"guid":"02:00:00:00:00:00:00:10","mellanox.infiniband.app":"configured","pkey":"0x5"}}]"#,
    );
    let claimer = w.pod("default", "claimer", STRIPPED);
    w.edit(&claimer, |v| v.network_status = addresses("02:00:00:00:00:00:00:10"));
    // 12 is a member of another partition than the pod's network: no evidence.
    let elsewhere = w.pod("default", "elsewhere", STRIPPED);
    w.edit(&elsewhere, |v| v.network_status = addresses("02:00:00:00:00:00:00:12"));
    // The element names a GUID (runtime config) other than the one network-status reports.
    let contradicted = w.pod(
        "default",
        "contradicted",
        r#"[{"name":"ib","interface":"net1","infiniband-guid":"02:00:00:00:00:00:00:20"}]"#,
    );
    w.edit(&contradicted, |v| v.network_status = addresses("02:00:00:00:00:00:00:13"));
    // An Ethernet MAC names no GUID.
    let ethernet = w.pod("default", "ethernet", STRIPPED);
    let eth = r#"[{"name":"default/ib","interface":"net1","mac":"0a:58:0a:00:00:06"}]"#;
    w.edit(&ethernet, |v| v.network_status = parse_ib_addresses(eth).unwrap());
    assert!(w.pods[&*ethernet.0].network_status.is_empty());
    let mut w = w.synced();
    w.settle();
    assert_eq!(w.recorded_owner(g_("10")).as_deref(), Some("owner"));
    assert_eq!(w.recorded_owner(g_("12")), None);
    assert_eq!(w.recorded_owner(g_("13")), None);
    assert_eq!(w.recorded_owner(g_("20")).as_deref(), Some("contradicted"));
    assert_eq!(w.unrecorded, vec![g_("12"), g_("13")]);
    // Each is a request like any other: the stripped ones get GUIDs nobody holds.
    let held = [g_("10"), g_("12"), g_("13"), g_("20")];
    for uid in [&claimer, &elsewhere, &ethernet] {
        let guid = g(w.annotation(uid)[0]["cni-args"]["guid"].as_str().unwrap());
        assert!(!held.contains(&guid), "{uid} got {guid}");
        assert_eq!(w.reason(uid), None);
    }
    // The three stripped pods' new GUIDs, the owner's, the seeded 13, and the contradicted pod's 20.
    assert_eq!(w.members("0x5").len(), 6, "{:?}", w.members("0x5"));
    assert!(w.members("0x5").contains(&g_("10")) && w.members("0x5").contains(&g_("13")));

    // After the first start, network-status is never read: a stripped pod claiming the owner's GUID,
    // even with the evidence in the subnet manager, gets nothing of it at a new leader.
    let late = w.pod("default", "late", STRIPPED);
    w.edit(&late, |v| v.network_status = addresses("02:00:00:00:00:00:00:10"));
    w.restart();
    w.settle();
    assert_eq!(w.recorded_owner(g_("10")).as_deref(), Some("owner"));
    assert_eq!(w.state.ledger().get(g_("10")).unwrap().owner.pod, owner);
    assert_ne!(w.annotation(&late)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:10");
}

/// The NAD deleted under a running VM whose element lost its `cni-args`: the pod keeps its recorded
/// partition like any running pod, and nothing is removed until it ends.
#[test]
fn a_stripped_pod_keeps_its_partition_when_its_nad_is_deleted() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let (vm, guid) = configured_vm(&mut w, "virt-launcher-vm-a");
    let requests = w.sm_requests().len();
    w.nads.remove(&NetworkRef::new("default", "ib"));
    w.state.delete_nad(&NetworkRef::new("default", "ib"));
    strip(&mut w, &vm);
    w.settle();
    assert_eq!(w.state.ledger().guids_of_pod(&vm), vec![guid]);
    assert_eq!(w.records[&guid].pkey, Some(pk("0x5")));
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert_eq!(w.sm_requests().len(), requests);
    assert_eq!(w.reason(&vm), None, "a running, configured interface does not wait for its NAD");
    assert!(w.pending_seen.iter().all(|(n, _)| n != "virt-launcher-vm-a"), "{:?}", w.pending_seen);
    w.delete(&vm);
    w.settle();
    assert!(w.members("0x5").is_empty() && w.records.is_empty());
}
