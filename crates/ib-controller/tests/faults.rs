//! UFM errors and hangs, API errors and conflicts, dropped watches and a 410: every pod ends
//! configured and nothing leaks.

mod common;

use std::time::Duration;

use common::{Cluster, IB5};
use kube_emulator::{Fault, FaultRule as ApiFault, Resource};
use ufm_emulator::{FaultRule as UfmFault, Method};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_converges_after_faults() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    cluster.nad("default", "ib6", r#"{"type":"ib-sriov","pkey":"0x6"}"#);
    let controller = cluster.controller("a", &[]).await;

    // UFM: three 500s on adds, then a hang longer than the request timeout (3 s).
    cluster.fabric().inject(
        UfmFault::respond(Some(Method::POST), "/ufmRest/resources/pkeys*", 500, "{\"error\":\"boom\"}").times(3),
    );
    cluster.fabric().inject(
        UfmFault::hang(Some(Method::POST), "/ufmRest/resources/pkeys*").at_most(Duration::from_secs(5)).times(1),
    );
    // API: 500s and 503s on patches.
    cluster
        .api()
        .inject_fault(ApiFault::new(Fault::InternalError).method("PATCH").path("/api/v1/namespaces/*/pods/*").times(3));
    cluster.api().inject_fault(ApiFault::new(Fault::ServiceUnavailable).method("PATCH").times(2));

    for i in 0..10 {
        let net = if i % 2 == 0 { "ib" } else { "ib6" };
        cluster.pod("default", &format!("p{i}"), net);
    }
    // A conflict on one pod, watches dropped and history compacted while work is going on.
    cluster.api().force_conflict(Resource::Pods, "default", "p3");
    cluster.api().drop_watches();
    cluster.api().compact();
    for i in 10..14 {
        cluster.pod("default", &format!("p{i}"), "ib");
    }
    cluster.api().drop_watches();

    for i in 0..14 {
        cluster.wait_configured("default", &format!("p{i}"), 1).await;
    }
    let converged = cluster.wait_converged().await;
    assert_eq!(converged.len(), 14);
    // Deletions after the storm still clean up.
    for i in 0..7 {
        cluster.api().delete_with_grace(Resource::Pods, "default", &format!("p{i}"), Some(0)).unwrap();
    }
    assert_eq!(cluster.wait_converged().await.len(), 7);
    controller.shutdown().await;
}
