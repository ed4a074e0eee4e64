//! Partition options through the controller against the UFM emulator, as UFM really behaves: changes
//! applied after they are answered, a partition deleted (QoS and all) when its last member leaves, and
//! a site that forbids creating partitions.

mod common;

use std::time::Duration;

use common::{Cluster, wait_for};
use ufm_emulator::{ApplyModel, Endpoint, Membership};

const LIMITED_QOS: &str = r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"storage","pkey":"0x6","membership":"limited","index0":false,"mtu_limit":4,"service_level":3,"rate_limit":100}"#;
const PLAIN6: &str = r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"plain","pkey":"0x6"}"#;
const SHARED: &str = "0x7000";

/// Scenarios about reading changes back need the built-in UFM client: the exec plugin says nothing
/// about when its changes take effect.
fn through_exec_plugin() -> bool {
    if common::exec_plugin().is_some() {
        println!("SKIP: this run selects the ufm exec plugin, which does not read changes back");
        return true;
    }
    false
}

/// Changes are answered at once and never applied until the test says so.
fn held_apply() -> ApplyModel {
    ApplyModel::new(Duration::from_secs(3600), Duration::ZERO, 1).expect("apply model")
}

fn guid_of(cluster: &Cluster, ns: &str, pod: &str) -> String {
    let nets = cluster.networks(ns, pod);
    nets[0]["cni-args"]["guid"].as_str().expect("guid").to_owned()
}

fn ufm_form(guid: &str) -> String {
    guid.replace(':', "").to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_is_configured_only_once_its_memberships_are_applied() {
    if through_exec_plugin() {
        return;
    }
    let cluster = Cluster::start().await;
    cluster.nad("default", "storage", LIMITED_QOS);
    cluster.fabric().set_apply(held_apply()).unwrap();
    let controller = cluster.controller("a", &[("DEFAULT_LIMITED_PARTITION", SHARED)]).await;
    cluster.pod("default", "p", "storage");
    // The join is answered, then read back again and again without showing.
    wait_for("the join to be answered and read back three times", || {
        let f = cluster.fabric();
        (f.count(Endpoint::AddGuids) >= 1 && f.count(Endpoint::GetPkey) >= 3).then_some(())
    })
    .await;
    let pod = cluster.get_pod("default", "p").unwrap();
    assert!(!pod.to_string().contains("\\\"configured\\\""), "configured before the change was applied: {pod}");
    assert_eq!(cluster.fabric().count(Endpoint::AddGuids), 1, "no second change to the partition meanwhile");
    cluster.fabric().apply_pending_now();
    // Then the shared partition's join, held the same way.
    wait_for("the shared partition's join", || (cluster.fabric().count(Endpoint::AddGuids) >= 2).then_some(())).await;
    cluster.fabric().apply_pending_now();
    cluster.wait_configured("default", "p", 1).await;
    let guid = ufm_form(&guid_of(&cluster, "default", "p"));

    let own = cluster.fabric().members(6);
    let member = own.iter().find(|(g, _)| g.to_string() == guid).map(|(_, m)| *m).expect("member of 0x6");
    assert_eq!((member.membership, member.index0), (Membership::Limited, false));
    let qos = cluster.fabric().partition(6).expect("partition 0x6").qos;
    assert_eq!((qos.mtu_limit, qos.service_level, qos.rate_limit), (4, 3, 100.0));
    let shared = cluster.fabric().members(0x7000);
    let member = shared.iter().find(|(g, _)| g.to_string() == guid).map(|(_, m)| *m).expect("member of 0x7000");
    assert_eq!((member.membership, member.index0), (Membership::Limited, false));

    cluster.fabric().set_apply(ApplyModel::default()).unwrap();
    cluster.api().delete_with_grace(kube_emulator::Resource::Pods, "default", "p", Some(0)).unwrap();
    wait_for("both memberships to go", || {
        (cluster.members(6).is_empty() && cluster.members(0x7000).is_empty()).then_some(())
    })
    .await;
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_recreated_after_its_last_member_left_gets_its_qos_back() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "storage", LIMITED_QOS);
    cluster.nad("default", "plain", PLAIN6);
    let controller = cluster.controller("a", &[]).await;
    cluster.pod("default", "a", "storage");
    cluster.wait_configured("default", "a", 1).await;
    let qos = |c: &Cluster| c.fabric().partition(6).map(|p| (p.qos.mtu_limit, p.qos.service_level, p.qos.rate_limit));
    assert_eq!(qos(&cluster), Some((4, 3, 100.0)));
    // A second member leaves the partition's QoS alone.
    cluster.pod("default", "b", "plain");
    cluster.wait_configured("default", "b", 1).await;
    assert_eq!(cluster.fabric().count(Endpoint::SetQos), 1);

    for pod in ["a", "b"] {
        cluster.api().delete_with_grace(kube_emulator::Resource::Pods, "default", pod, Some(0)).unwrap();
    }
    wait_for("the partition to go with its last member", || cluster.fabric().partition(6).is_none().then_some(()))
        .await;
    cluster.pod("default", "c", "storage");
    cluster.wait_configured("default", "c", 1).await;
    assert_eq!(qos(&cluster), Some((4, 3, 100.0)), "the recreated partition has its QoS again");
    assert_eq!(cluster.fabric().count(Endpoint::SetQos), 2);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_partition_is_waited_for_when_creating_is_forbidden() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "plain", PLAIN6);
    let controller = cluster.controller("a", &[("ALLOW_PARTITION_CREATE", "false")]).await;
    cluster.pod("default", "p", "plain");
    let note = wait_for("the PartitionNotFound Event", || {
        cluster.events_for("p").into_iter().find(|(reason, _)| reason == "PartitionNotFound").map(|(_, note)| note)
    })
    .await;
    assert!(note.contains("partition 0x0006 does not exist"), "{note}");
    assert!(!note.contains("ufmRest") && !note.contains("127.0.0.1"), "no subnet-manager internals: {note}");
    assert_eq!(cluster.fabric().count(Endpoint::AddGuids), 0, "nothing was sent that would create it");
    // The operator creates the partition, with a host port in it; the next retry joins it.
    let host = ufm_emulator::Guid::from(0x0c42_a103_0000_0001_u64);
    cluster.fabric().seed_members(6, [(host, ufm_emulator::Member::default())]);
    cluster.wait_configured("default", "p", 1).await;
    assert_eq!(cluster.members(6).len(), 2);
    controller.shutdown().await;
}
