//! Events in both groups: the `events.k8s.io/v1` POST + merge PATCH a kube-rs Recorder uses, and
//! core `v1` events: one stored object per Event, served through both views.

mod common;

use common::{start, test_config};
use futures::StreamExt;
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

    // One stored object, two views: the core view shows the same Event, converted.
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let seen = core.get(&created.name_any()).await.unwrap();
    assert_eq!(seen.metadata.uid, created.metadata.uid);
    assert_eq!(seen.metadata.resource_version, patched.metadata.resource_version);
    assert_eq!(seen.message.as_deref(), Some("GUID already in use"));
    assert_eq!(seen.involved_object.name.as_deref(), Some("p"));
    assert_eq!(seen.reporting_component.as_deref(), Some("ib-kubernetes"));
    assert_eq!(seen.series.as_ref().and_then(|s| s.count), Some(2));
    // `kubectl describe pod` finds a pod's Events by the involved object.
    let selected = core
        .list(&ListParams::default().fields("involvedObject.name=p,involvedObject.namespace=default"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    assert!(core.list(&ListParams::default().fields("involvedObject.name=q")).await.unwrap().items.is_empty());

    let core_event: CoreEvent = serde_json::from_value(json!({
        "metadata": { "name": "legacy" },
        "involvedObject": { "kind": "Pod", "name": "p", "namespace": "default" },
        "reason": "Legacy",
        "message": "core v1 event",
        "source": { "component": "kubelet" }
    }))
    .unwrap();
    core.create(&PostParams::default(), &core_event).await.unwrap();
    assert_eq!(core.list(&ListParams::default()).await.unwrap().items.len(), 2);
    let legacy = api.get("legacy").await.unwrap();
    assert_eq!(legacy.note.as_deref(), Some("core v1 event"));
    assert_eq!(legacy.regarding.and_then(|r| r.name).as_deref(), Some("p"));
    assert_eq!(legacy.deprecated_source.and_then(|s| s.component).as_deref(), Some("kubelet"));
    let selected = api.list(&ListParams::default().fields("regarding.name=p,reason=Legacy")).await.unwrap();
    assert_eq!(selected.items.len(), 1);

    // Deleting through one view deletes the one object.
    api.delete("legacy", &Default::default()).await.unwrap();
    assert!(core.get_opt("legacy").await.unwrap().is_none());
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_watch_on_either_view_sees_writes_through_the_other() {
    let (emulator, client) = start(test_config()).await;
    let v1: Api<Event> = Api::namespaced(client.clone(), "default");
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let start_rv = core.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let event: Event = serde_json::from_value(json!({
        "metadata": { "name": "e1" },
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reason": "Configured", "note": "done", "type": "Normal", "action": "Configure",
        "reportingController": "ib-kubernetes", "reportingInstance": "i",
        "regarding": { "kind": "Pod", "namespace": "default", "name": "p" }
    }))
    .unwrap();
    v1.create(&PostParams::default(), &event).await.unwrap();
    let mut stream = core.watch(&kube::api::WatchParams::default().timeout(10), &start_rv).await.unwrap().boxed();
    let first =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    match first {
        kube::api::WatchEvent::Added(e) => {
            assert_eq!(e.metadata.name.as_deref(), Some("e1"));
            assert_eq!(e.message.as_deref(), Some("done"));
        }
        other => panic!("expected ADDED, got {other:?}"),
    }
    emulator.shutdown().await;
}
