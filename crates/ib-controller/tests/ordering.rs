//! The order ib-sriov-cni relies on: for every configured interface, UFM answered the add of its GUID
//! before the API server received the patch that marks it configured.

mod common;

use common::{Cluster, IB5};
use ib_model::{Guid, NetworksAnnotation};
use ufm_emulator::Endpoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sm_add_answered_before_configured_patch() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    cluster.nad("default", "ib6", r#"{"type":"ib-sriov","pkey":"0x6"}"#);
    let controller = cluster.controller("a", &[]).await;
    // A slow UFM: a patch sent without waiting for the add's answer would arrive first.
    cluster.fabric().set_latency(std::time::Duration::from_millis(50));
    for i in 0..30 {
        let nets = match i % 3 {
            0 => "ib",
            1 => "ib6",
            _ => "ib, ib6",
        };
        cluster.pod("default", &format!("p{i}"), nets);
    }
    for i in 0..30 {
        cluster.wait_configured("default", &format!("p{i}"), if i % 3 == 2 { 2 } else { 1 }).await;
    }

    let adds: Vec<_> = cluster
        .fabric()
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::AddGuids && r.status == 200)
        .collect();
    let patches: Vec<_> =
        cluster.api().requests().into_iter().filter(|r| r.method == "PATCH" && r.path.contains("/pods/")).collect();
    let mut checked = 0;
    for patch in &patches {
        let body: serde_json::Value = serde_json::from_str(&patch.body).expect("patch body is JSON");
        let raw = body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str().expect("annotation");
        let annotation = NetworksAnnotation::parse(raw, "default").expect("parses");
        for s in annotation.selections().iter().filter(|s| s.configured) {
            let guid = Guid::parse(&s.guid.as_ref().expect("guid").0).expect("valid").to_ufm();
            let add = adds.iter().find(|a| a.body.contains(&guid)).unwrap_or_else(|| panic!("no UFM add for {guid}"));
            assert!(
                add.done_seq < patch.order,
                "{guid}: UFM add answered at {} but configured patch arrived at {}",
                add.done_seq,
                patch.order
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 40, "every configured interface was checked");
    // Patches carry the preconditions and only the networks annotation.
    let body: serde_json::Value = serde_json::from_str(&patches[0].body).unwrap();
    assert!(body["metadata"]["uid"].is_string() && body["metadata"]["resourceVersion"].is_string());
    assert_eq!(body["metadata"]["annotations"].as_object().unwrap().len(), 1);
    assert_eq!(patches[0].content_type.as_deref(), Some("application/merge-patch+json"));
    controller.shutdown().await;
}
