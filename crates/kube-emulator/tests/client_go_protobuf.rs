//! Bodies as client-go's typed clients send them: protobuf for built-in kinds. Its leader election
//! creates and updates its Lease so; a real API server takes that, and so must the emulator, or every
//! client-go controller's election fails at its first write.

mod common;

use base64::Engine;
use common::{start, test_config};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const CREATE: &str = include_str!("fixtures/client-go-lease-create.b64");
/// Its takeover of a Lease read at resourceVersion 17.
const UPDATE: &str = include_str!("fixtures/client-go-lease-update.b64");

async fn post(url: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    send("POST", url, path, content_type, body).await
}

async fn send(method: &str, url: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let request =
        http::Request::builder().method(method).uri(path).header("Content-Type", content_type).body(body).unwrap();
    match client.request::<serde_json::Value>(request).await {
        Ok(v) => (201, v),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&*s).unwrap()),
        Err(other) => panic!("transport error {other:?}"),
    }
}

#[tokio::test]
async fn client_go_creates_its_lease_in_protobuf() {
    let (emulator, client) = start(test_config()).await;
    let body = base64::engine::general_purpose::STANDARD.decode(CREATE.trim()).unwrap();
    let url = emulator.url();
    let path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    let (code, created) = post(&url, path, "application/vnd.kubernetes.protobuf", body.clone()).await;
    assert_eq!(code, 201, "{created}");
    let lease = Api::<Lease>::namespaced(client, "kube-system").get("ib-kubernetes-leader").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("control-plane-1_go-replica"));
    assert_eq!(spec.lease_duration_seconds, Some(60));
    assert!(spec.renew_time.is_some() && spec.acquire_time.is_some());

    // The same bytes again: a conflict, as for a JSON body.
    let (code, _) = post(&url, path, "application/vnd.kubernetes.protobuf", body.clone()).await;
    assert_eq!(code, 409);
    // Protobuf for a kind the emulator does not decode: 415 naming the kind, not a silent mis-read.
    let (code, status) =
        post(&url, "/api/v1/namespaces/default/pods", "application/vnd.kubernetes.protobuf", body).await;
    assert_eq!(code, 415);
    assert!(status["message"].as_str().unwrap().contains("Pod"), "{status}");
    // A broken envelope is a 400 that says why.
    let (code, status) = post(&url, path, "application/vnd.kubernetes.protobuf", b"k8s\0\x0a\xff".to_vec()).await;
    assert_eq!(code, 400);
    assert!(status["message"].as_str().unwrap().contains("protobuf"), "{status}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_protobuf_update_carries_its_preconditions() {
    let (emulator, client) = start(test_config()).await;
    let api = Api::<Lease>::namespaced(client, "kube-system");
    // Other objects first, so that the Lease's resourceVersion is not the 17 the captured update read.
    for i in 0..20 {
        let filler: Lease =
            serde_json::from_value(serde_json::json!({"metadata": {"name": format!("filler-{i}")}})).unwrap();
        api.create(&Default::default(), &filler).await.unwrap();
    }
    let held: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ib-kubernetes-leader", "labels": {"app": "ib-kubernetes"}},
        "spec": {"holderIdentity": "old-node_old-uid", "leaseDurationSeconds": 60, "leaseTransitions": 3}
    }))
    .unwrap();
    let created = api.create(&Default::default(), &held).await.unwrap();
    assert_ne!(created.metadata.resource_version.as_deref(), Some("17"));
    let body = base64::engine::general_purpose::STANDARD.decode(UPDATE.trim()).unwrap();
    let path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/ib-kubernetes-leader";
    let (code, status) = send("PUT", &emulator.url(), path, "application/vnd.kubernetes.protobuf", body).await;
    assert_eq!(
        code, 409,
        "a stale resourceVersion (and another uid) in a protobuf body conflicts as in JSON: {status}"
    );
    let now = api.get("ib-kubernetes-leader").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("old-node_old-uid"));
    emulator.shutdown().await;
}
