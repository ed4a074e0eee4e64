//! Hostile tenants against the real controller over HTTP: what a pod author writes is a request, never
//! proof, and what a tenant sees in its Events says nothing about others or about the subnet manager.

mod common;

use common::{Cluster, IB5, wait_for};
use kube_emulator::Resource;
use serde_json::json;
use ufm_emulator::{Endpoint, FaultRule as UfmFault, Member, Method};

fn forged(nad: &str, guid: &str) -> String {
    json!([{"name": nad, "cni-args": {"mellanox.infiniband.app": "configured", "guid": guid, "pkey": "0x5"}}])
        .to_string()
}

/// Another namespace's pods carry `configured` markers with a live pod's GUID, scheduled or not, on a
/// missing NAD or a real one. A new leader starts and, with the opt-in to remove unrecorded
/// memberships on, runs its cleanup: the victim keeps its partition, and its record keeps naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_claims_take_nothing_across_a_new_leader() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    cluster.nad("evil", "ib", IB5);
    let a = cluster.controller("a", &[]).await;
    let victim_uid = cluster.pod("default", "victim", "ib");
    let nets = cluster.wait_configured("default", "victim", 1).await;
    let guid_text = nets[0]["cni-args"]["guid"].as_str().expect("guid").to_owned();
    let guid_ufm = ib_model::Guid::parse(&guid_text).expect("valid").to_ufm();

    let unscheduled = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "unscheduled", "namespace": "evil",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": forged("no-such-nad", &guid_text)}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    });
    cluster.api().create(Resource::Pods, unscheduled).expect("create pod");
    cluster.pod("evil", "scheduled", &forged("ib", &guid_text));
    // A stray membership nobody recorded: its removal shows that the new leader's cleanup has run.
    let stray: ufm_emulator::Guid = "02000000000000ff".parse().expect("guid");
    cluster.fabric().seed_members(5, [(stray, Member::default())]);
    a.shutdown().await;

    let b = cluster.controller("b", &[("REMOVE_UNRECORDED_MEMBERSHIPS", "true")]).await;
    wait_for("the stray membership to be removed", || (!cluster.members(5).contains("02000000000000ff")).then_some(()))
        .await;
    assert!(cluster.members(5).contains(&guid_ufm), "the victim lost its partition");
    let removes_of_victim = [Endpoint::RemoveGuidsAction, Endpoint::DeleteGuids]
        .into_iter()
        .flat_map(|e| cluster.fabric().requests_to(e))
        .filter(|r| (r.body.clone() + &r.path).to_lowercase().contains(&guid_ufm.to_lowercase()))
        .count();
    assert_eq!(removes_of_victim, 0);

    // The record still names the victim.
    let guid = ib_model::Guid::parse(&guid_text).expect("valid");
    let block = cluster.api().get(Resource::GuidBlocks, "", &ib_model::BlockId::of(guid).name());
    let block = block.expect("the victim's block exists");
    assert_eq!(block["spec"]["allocations"][&guid_text]["podUid"], victim_uid.as_str());
    assert_eq!(block["spec"]["allocations"][&guid_text]["state"], "Member");

    // The scheduled forger is told its marker is not honoured, without a word about the victim.
    let events = wait_for("the forger's Event", || {
        let e = cluster.events_for("scheduled");
        e.iter().any(|(reason, _)| reason == "DuplicateGUID").then_some(e)
    })
    .await;
    for (_, note) in &events {
        assert!(!note.contains("victim") && !note.contains("default/"), "{note}");
    }
    b.shutdown().await;
}

/// A subnet manager that keeps failing: one Event for the pod however often it is retried, and the
/// Event carries no address, status or body of the subnet manager (those go to the controller's log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subnet_manager_raises_one_event_without_its_details() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let controller = cluster.controller("a", &[]).await;
    let fault = cluster.fabric().inject(UfmFault::respond(
        Some(Method::POST),
        "/ufmRest/resources/pkeys*",
        500,
        r#"{"error":"internal detail: sweep failed on sm-host-7"}"#,
    ));
    cluster.pod("default", "p", "ib");
    let failed_adds = || cluster.fabric().requests_to(Endpoint::AddGuids).iter().filter(|r| r.status == 500).count();
    wait_for("the first SubnetManagerFailed Event", || {
        cluster.events_for("p").iter().any(|(reason, _)| reason == "SubnetManagerFailed").then_some(())
    })
    .await;
    let seen = failed_adds();
    wait_for("three more failed attempts", || (failed_adds() >= seen + 3).then_some(())).await;
    cluster.fabric().remove_fault(fault);
    cluster.wait_configured("default", "p", 1).await;
    // Events go out in order through one queue: once Configured is recorded, every earlier one is too.
    let events = wait_for("the Configured Event", || {
        let e = cluster.events_for("p");
        e.iter().any(|(reason, _)| reason == "Configured").then_some(e)
    })
    .await;
    let failures: Vec<&String> =
        events.iter().filter(|(reason, _)| reason == "SubnetManagerFailed").map(|(_, note)| note).collect();
    assert_eq!(failures.len(), 1, "{events:?}");
    for secret in ["sm-host-7", "internal detail", "500", "127.0.0.1", "ufmRest"] {
        assert!(!failures[0].contains(secret), "{secret} in {}", failures[0]);
    }
    controller.shutdown().await;
}
