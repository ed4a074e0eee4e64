//! A GUID owned by a live pod is never given to another pod that asks for it (the Go daemon's bug B7 in
//! docs/architecture.md).

mod common;

use common::{Cluster, IB5, wait_for};
use kube_emulator::Resource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_pod_waits_until_the_owner_goes() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let controller = cluster.controller("a", &[]).await;
    let wanted = r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:aa"}}]"#;
    cluster.pod("default", "first", wanted);
    cluster.wait_configured("default", "first", 1).await;
    cluster.pod("default", "second", wanted);

    let events = wait_for("an Event on the second pod", || {
        let events = cluster.events_for("second");
        events.iter().any(|(reason, _)| reason == "GUIDInUse").then_some(events)
    })
    .await;
    let (_, note) = events.iter().find(|(r, _)| r == "GUIDInUse").unwrap();
    assert!(note.contains("02:00:00:00:00:00:00:aa") && note.contains("default/first"), "{note}");
    assert!(cluster.networks("default", "second")[0]["cni-args"].get("mellanox.infiniband.app").is_none());
    assert_eq!(cluster.members(5).into_iter().collect::<Vec<_>>(), ["02000000000000aa"]);

    cluster.api().delete_with_grace(Resource::Pods, "default", "first", Some(0)).unwrap();
    cluster.wait_configured("default", "second", 1).await;
    assert_eq!(cluster.members(5).into_iter().collect::<Vec<_>>(), ["02000000000000aa"]);
    cluster.wait_converged().await;
    controller.shutdown().await;
}
