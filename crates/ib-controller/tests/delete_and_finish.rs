//! Deleted and finished pods give their GUIDs back; a re-created pod with the same name is configured
//! afresh; an edit of another annotation made while the pod waits is kept.

mod common;

use common::{Cluster, IB5, wait_for};
use kube_emulator::Resource;
use ufm_emulator::{FaultRule, Method};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_finish_and_recreate() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let controller = cluster.controller("a", &[]).await;
    let first_uid = cluster.pod("default", "web-0", "ib");
    cluster.pod("default", "job", "ib, ib");
    cluster.wait_configured("default", "web-0", 1).await;
    cluster.wait_configured("default", "job", 2).await;
    assert_eq!(cluster.members(5).len(), 3);
    let old_guid = cluster.networks("default", "web-0")[0]["cni-args"]["guid"].as_str().unwrap().to_owned();

    // Finishing releases like deleting.
    cluster.api().mutate(Resource::Pods, "default", "job", |p| p["status"]["phase"] = "Succeeded".into()).unwrap();
    cluster.api().delete_with_grace(Resource::Pods, "default", "web-0", Some(0)).unwrap();
    wait_for("GUIDs to leave the pkey", || cluster.members(5).is_empty().then_some(())).await;

    // Same name, new pod: it gets a configuration of its own.
    let second_uid = cluster.pod("default", "web-0", "ib");
    assert_ne!(first_uid, second_uid);
    let nets = cluster.wait_configured("default", "web-0", 1).await;
    let new_guid = nets[0]["cni-args"]["guid"].as_str().unwrap().to_owned();
    assert_ne!(new_guid, old_guid, "next-fit does not hand the released GUID out again at once");
    cluster.wait_converged().await;
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_edit_of_another_annotation_is_kept() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    // Hold the UFM add so that the pod is edited while the controller works on it.
    let hang = cluster.fabric().inject(FaultRule::hang(Some(Method::POST), "/ufmRest/resources/pkeys*"));
    let controller = cluster.controller("a", &[]).await;
    cluster.pod("default", "p", "ib");
    cluster.fabric().wait_hung(1, common::DEADLINE).await;
    cluster
        .api()
        .mutate(Resource::Pods, "default", "p", |p| p["metadata"]["annotations"]["owner"] = "alice".into())
        .unwrap();
    cluster.fabric().remove_fault(hang);
    cluster.fabric().release_hung();
    cluster.wait_configured("default", "p", 1).await;
    let pod = cluster.get_pod("default", "p").unwrap();
    assert_eq!(pod["metadata"]["annotations"]["owner"], "alice");
    assert_eq!(pod["metadata"]["annotations"]["team"], "ml");
    controller.shutdown().await;
}
