//! Whatever instant the controller dies, the next one converges: nothing leaked, nothing lost.

mod common;

use common::{Cluster, IB5, wait_for};
use kube_emulator::{Fault, FaultRule, Resource};

/// Killed between the UFM add and the patch: the GUID is in the pkey, the pod is not configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_sm_add_and_patch() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    cluster.api().inject_fault(
        FaultRule::new(Fault::InternalError).method("PATCH").path("/api/v1/namespaces/*/pods/*").times(usize::MAX),
    );
    let a = cluster.spawn_replica("a", &[]);
    a.wait_leading().await;
    for i in 0..5 {
        cluster.pod("default", &format!("p{i}"), "ib");
    }
    wait_for("UFM adds", || (cluster.members(5).len() == 5).then_some(())).await;
    a.kill();
    cluster.api().clear_faults();
    assert!(cluster.configured_pairs().is_empty());

    let b = cluster.spawn_replica("b", &[]);
    b.wait_leading().await;
    for i in 0..5 {
        cluster.wait_configured("default", &format!("p{i}"), 1).await;
    }
    let converged = cluster.wait_converged().await;
    assert_eq!(converged.len(), 5);
    b.stop();
}

/// Pods deleted and finished while no leader runs: the next leader removes their GUIDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_gone_while_no_leader_runs() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let a = cluster.spawn_replica("a", &[]);
    a.wait_leading().await;
    for i in 0..6 {
        cluster.pod("default", &format!("p{i}"), "ib");
    }
    for i in 0..6 {
        cluster.wait_configured("default", &format!("p{i}"), 1).await;
    }
    a.kill();
    for i in 0..3 {
        cluster.api().delete_with_grace(Resource::Pods, "default", &format!("p{i}"), Some(0)).unwrap();
    }
    cluster.api().mutate(Resource::Pods, "default", "p3", |p| p["status"]["phase"] = "Failed".into()).unwrap();
    assert_eq!(cluster.members(5).len(), 6);

    let b = cluster.spawn_replica("b", &[]);
    b.wait_leading().await;
    let converged = cluster.wait_converged().await;
    assert_eq!(converged.len(), 2);
    b.stop();
}
