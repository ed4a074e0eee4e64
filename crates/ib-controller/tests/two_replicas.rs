//! Two replicas: only the leader writes; when it dies the other takes over and finishes the work.

mod common;

use common::{Cluster, IB5, UFM_TOKEN};
use kube_emulator::Resource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_takes_over_from_a_dead_leader() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    // Replica a authenticates with Basic (/ufmRest), replica b with a token (/ufmRestV3): the UFM
    // request log tells who wrote.
    let a = cluster.spawn_replica("a", &[]);
    a.wait_leading().await;
    let b = cluster.spawn_replica("b", &[("UFM_TOKEN", UFM_TOKEN)]);
    let lease = cluster.api().get(Resource::Leases, "kube-system", "ib-kubernetes-leader").expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "control-plane-1_a");

    for i in 0..4 {
        cluster.pod("default", &format!("before-{i}"), "ib");
    }
    for i in 0..4 {
        cluster.wait_configured("default", &format!("before-{i}"), 1).await;
    }
    let writes = |prefix: &str| {
        cluster.fabric().requests().iter().filter(|r| r.method == "POST" && r.path.starts_with(prefix)).count()
    };
    assert!(writes("/ufmRest/") > 0);
    assert_eq!(writes("/ufmRestV3/"), 0, "the follower must not write");
    assert!(!*b.leading.borrow());

    a.kill();
    b.wait_leading().await;
    for i in 0..4 {
        cluster.pod("default", &format!("after-{i}"), "ib");
    }
    for i in 0..4 {
        cluster.wait_configured("default", &format!("after-{i}"), 1).await;
    }
    assert!(writes("/ufmRestV3/") > 0, "the new leader writes");
    let lease = cluster.api().get(Resource::Leases, "kube-system", "ib-kubernetes-leader").expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "control-plane-1_b");
    assert_eq!(cluster.wait_converged().await.len(), 8);
    b.stop();
}

/// A graceful stop releases the lease, so the follower leads at its next retry, well before the lease
/// would have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_releases_the_lease() {
    let cluster = Cluster::start().await;
    // A long lease: only a release lets the follower in quickly.
    let slow = [("LEADER_LEASE_DURATION", "600"), ("LEADER_RENEW_DEADLINE", "3"), ("LEADER_RETRY_PERIOD", "1")];
    let a = cluster.spawn_replica("a", &slow);
    a.wait_leading().await;
    let b = cluster.spawn_replica("b", &slow);
    a.stop();
    // With a 600 s lease, b can only lead within the test's deadline if a released it.
    b.wait_leading().await;
    let lease = cluster.api().get(Resource::Leases, "kube-system", "ib-kubernetes-leader").expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "control-plane-1_b");
    assert!(lease["spec"]["leaseTransitions"].as_i64() >= Some(1));
    b.stop();
}
