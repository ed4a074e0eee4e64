//! Events in both groups: the `events.k8s.io/v1` POST + merge PATCH a kube-rs Recorder uses, and
//! core `v1` events, kept apart although they share a plural.

mod common;

use common::{start, test_config};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test]
async fn events_in_both_groups() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let event: Event = serde_json::from_value(json!({
        "metadata": { "generateName": "pod-p." },
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reason": "GuidConflict",
        "note": "GUID already in use",
        "type": "Warning",
        "action": "Allocate",
        "reportingController": "ib-kubernetes",
        "reportingInstance": "ib-kubernetes-0",
        "regarding": { "kind": "Pod", "namespace": "default", "name": "p" }
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &event).await.unwrap();
    assert!(created.name_any().starts_with("pod-p."));
    let patched = api
        .patch(
            &created.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "series": { "count": 2, "lastObservedTime": "2025-01-01T00:00:05.000000Z" } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.series.unwrap().count, 2);

    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    assert!(core.list(&ListParams::default()).await.unwrap().items.is_empty());
    let core_event: CoreEvent = serde_json::from_value(json!({
        "metadata": { "name": "legacy" },
        "involvedObject": { "kind": "Pod", "name": "p", "namespace": "default" },
        "reason": "Legacy",
        "message": "core v1 event"
    }))
    .unwrap();
    core.create(&PostParams::default(), &core_event).await.unwrap();
    assert_eq!(core.list(&ListParams::default()).await.unwrap().items.len(), 1);
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
    emulator.shutdown().await;
}
