//! The in-process control handle: writes made through it are seen by HTTP clients and watchers,
//! HTTP writes are seen by in-process subscribers (a simulated kubelet), and the combined
//! list-and-subscribe misses nothing.

mod common;

use common::{pod, pod_json, start, test_config, within};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use kube_emulator::{ChangeKind, EmulatorConfig, Resource, SubscriptionError};
use serde_json::json;

#[tokio::test]
async fn simulated_kubelet_reacts_to_http_writes() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.create(Resource::Pods, pod_json("default", "existing", json!({}))).unwrap();
    let (initial, mut changes) = handle.list_and_subscribe(Resource::Pods, None);
    assert_eq!(initial.len(), 1);

    // The "kubelet": marks every new pod Running through the handle.
    let kubelet = {
        let handle = handle.clone();
        tokio::spawn(async move {
            loop {
                let change = changes.recv().await.expect("subscription open");
                if change.kind == ChangeKind::Added {
                    let name = change.object["metadata"]["name"].as_str().unwrap().to_string();
                    handle
                        .mutate(Resource::Pods, "default", &name, |p| p["status"]["phase"] = json!("Running"))
                        .unwrap();
                    return (change.resource_version, name);
                }
            }
        })
    };
    let api: Api<Pod> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &pod("default", "new")).await.unwrap();
    let (rv, name) = within("the kubelet", kubelet).await.unwrap();
    assert_eq!(name, "new");
    assert_eq!(rv.to_string(), created.resource_version().unwrap());
    let running = api.get("new").await.unwrap();
    assert_eq!(running.status.unwrap().phase.as_deref(), Some("Running"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn handle_writes_follow_api_rules() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let created = handle
        .create(Resource::Pods, json!({ "metadata": { "name": "p" }, "status": { "phase": "Running" } }))
        .unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["status"]["phase"], "Running", "the handle may seed status");
    let dup = handle.create(Resource::Pods, json!({ "metadata": { "name": "p" } })).unwrap_err();
    assert_eq!(dup.reason(), "AlreadyExists");
    let same = handle.mutate(Resource::Pods, "default", "p", |_| {}).unwrap();
    assert_eq!(same["metadata"]["resourceVersion"], "1", "no-op mutation keeps the RV");
    let missing = handle.mutate(Resource::Pods, "default", "q", |_| {}).unwrap_err();
    assert_eq!(missing.code(), 404);
    let (rv, all) = handle.list(Resource::Pods, Some("default"));
    assert_eq!((rv, all.len()), (1, 1));

    let api: Api<Pod> = Api::namespaced(client, "default");
    api.patch("p", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } })))
        .await
        .unwrap();
    let changes = handle.changes_since(Resource::Pods, 0).unwrap();
    let kinds: Vec<_> = changes.iter().map(|c| (c.kind, c.resource_version)).collect();
    assert_eq!(kinds, vec![(ChangeKind::Added, 1), (ChangeKind::Modified, 2)]);
    assert_eq!(changes[1].previous.as_ref().unwrap()["metadata"]["resourceVersion"], "1");
    emulator.shutdown().await;
}

#[tokio::test]
async fn lagging_subscriber_is_told() {
    let config = EmulatorConfig { watch_queue_capacity: 2, ..test_config() };
    let (emulator, _client) = start(config).await;
    let handle = emulator.handle();
    let mut changes = handle.subscribe(Resource::Leases);
    for i in 0..5 {
        handle.create(Resource::Leases, json!({ "metadata": { "name": format!("l{i}") } })).unwrap();
    }
    assert!(matches!(changes.try_recv(), Err(SubscriptionError::Lagged(_))));
    let next = changes.try_recv().unwrap().expect("the retained tail");
    assert!(next.resource_version > 1);
    emulator.shutdown().await;
}
