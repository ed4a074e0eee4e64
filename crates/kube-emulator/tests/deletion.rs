//! DELETE: finalizers park the object with a deletionTimestamp until the last one is removed;
//! scheduled pods are deleted gracefully and removed by the stand-in kubelet; types that do not
//! return the deleted object answer with a `Status` of `Success`.

mod common;

use common::{api_error, pod, start, test_config, wait_for, within};
use either::Either;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use kube_emulator::{DeleteOutcome, EmulatorConfig, GracefulFinish, PodDeletion, Resource};
use serde_json::json;
use std::time::Duration;

fn manual() -> EmulatorConfig {
    EmulatorConfig { pod_deletion: PodDeletion::Graceful { finish: GracefulFinish::Manual }, ..test_config() }
}

#[tokio::test]
async fn finalizers_hold_the_object_until_removed() {
    let (emulator, client) = start(manual()).await;
    let api: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": "l", "finalizers": ["example.com/hold"] }
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut events = api
        .watch(&WatchParams::default().disable_bookmarks(), &created.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();

    let Either::Left(terminating) = api.delete("l", &DeleteParams::default()).await.unwrap() else {
        panic!("a finalized object is returned, not a Status");
    };
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(0));
    assert!(api.get("l").await.is_ok());

    let status = api_error(
        api.patch(
            "l",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": ["example.com/hold", "new"] } })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 422);

    api.patch("l", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "finalizers": null } })))
        .await
        .unwrap();
    assert_eq!(api_error(api.get("l").await.unwrap_err()).code, 404);

    let kinds = within("MODIFIED then DELETED", async {
        let mut kinds = Vec::new();
        while kinds.len() < 2 {
            match events.next().await.unwrap().unwrap() {
                WatchEvent::Modified(l) => kinds.push(("MODIFIED", l)),
                WatchEvent::Deleted(l) => kinds.push(("DELETED", l)),
                other => panic!("unexpected {other:?}"),
            }
        }
        kinds
    })
    .await;
    assert_eq!(kinds[0].0, "MODIFIED");
    assert_eq!(kinds[1].0, "DELETED");
    // DELETED carries the final state at the deletion's resourceVersion.
    let deleted = &kinds[1].1;
    assert!(deleted.metadata.deletion_timestamp.is_some());
    assert_eq!(deleted.resource_version().unwrap(), emulator.handle().resource_version().to_string());
    emulator.shutdown().await;
}

#[tokio::test]
async fn delete_without_finalizers_returns_status_for_leases_and_object_for_pods() {
    let (emulator, client) = start(manual()).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease: Lease = serde_json::from_value(json!({ "metadata": { "name": "l" } })).unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let Either::Right(status) = leases.delete("l", &DeleteParams::default()).await.unwrap() else {
        panic!("leases answer DELETE with a Status");
    };
    assert!(status.is_success());
    assert_eq!(status.details.unwrap().uid, created.uid().unwrap());

    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut unscheduled = pod("default", "u");
    unscheduled.spec.as_mut().unwrap().node_name = None;
    pods.create(&PostParams::default(), &unscheduled).await.unwrap();
    let Either::Left(gone) = pods.delete("u", &DeleteParams::default()).await.unwrap() else {
        panic!("pods answer DELETE with the object");
    };
    assert!(gone.metadata.deletion_timestamp.is_none(), "unscheduled pods go at once");
    assert_eq!(api_error(pods.get("u").await.unwrap_err()).code, 404);
    assert_eq!(api_error(pods.delete("u", &DeleteParams::default()).await.unwrap_err()).code, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn graceful_pod_deletion_waits_for_the_kubelet() {
    let (emulator, client) = start(manual()).await;
    let handle = emulator.handle();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();

    let stale = Preconditions { uid: Some("wrong".into()), resource_version: None };
    let status = api_error(api.delete("p", &DeleteParams::default().preconditions(stale)).await.unwrap_err());
    assert_eq!(status.reason, "Conflict");

    let Either::Left(terminating) = api.delete("p", &DeleteParams::default()).await.unwrap() else {
        panic!("pods answer DELETE with the object");
    };
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    assert!(terminating.metadata.deletion_timestamp.is_some());
    // A second, longer delete changes nothing; the pod is still there for the controller to see.
    let again = api.delete("p", &DeleteParams::default().grace_period(60)).await.unwrap();
    assert_eq!(again.left().unwrap().resource_version(), terminating.resource_version());
    assert!(api.get("p").await.is_ok());

    let DeleteOutcome::Deleted(gone) = handle.finish_pod_deletion("default", "p").unwrap() else {
        panic!("no finalizers: the kubelet's confirmation removes the pod");
    };
    assert_eq!(gone["metadata"]["uid"], created.uid().unwrap());
    assert_eq!(api_error(api.get("p").await.unwrap_err()).code, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn stand_in_kubelet_removes_terminating_pods() {
    let config = EmulatorConfig {
        pod_deletion: PodDeletion::Graceful { finish: GracefulFinish::After(Duration::from_millis(200)) },
        ..test_config()
    };
    let (emulator, client) = start(config).await;
    let handle = emulator.handle();
    let api: Api<Pod> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    let terminating = api.delete("p", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    wait_for("the pod to disappear", || async { handle.get(Resource::Pods, "default", "p").is_none().then_some(()) })
        .await;

    // With a finalizer, the kubelet's confirmation leaves the pod parked at grace 0.
    let mut held = pod("default", "held");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    wait_for("grace to reach zero", || async {
        handle
            .get(Resource::Pods, "default", "held")
            .filter(|p| p["metadata"]["deletionGracePeriodSeconds"] == 0)
            .map(|_| ())
    })
    .await;
    handle
        .mutate(Resource::Pods, "default", "held", |p| {
            p["metadata"]["finalizers"] = json!([]);
        })
        .unwrap();
    assert!(handle.get(Resource::Pods, "default", "held").is_none());
    emulator.shutdown().await;
}

/// What the partition allocator relies on, for NADs and ConfigMaps: a finalizer holds a deleted NAD
/// with its deletionTimestamp until a merge patch removes it, a merge patch carrying a stale
/// resourceVersion is refused with 409, and a ConfigMap PUT with a stale resourceVersion too.
#[tokio::test]
async fn nads_and_configmaps_honour_finalizers_and_resource_versions() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

    let (emulator, client) = start(manual()).await;
    let gvk = GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "network-attachment-definitions");
    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let nad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "n", "finalizers": ["example.com/hold"]},
        "spec": {"config": "{}"}
    }))
    .unwrap();
    let created = nads.create(&PostParams::default(), &nad).await.unwrap();
    let stale = created.resource_version().unwrap();
    let Either::Left(terminating) = nads.delete("n", &DeleteParams::default()).await.unwrap() else {
        panic!("a finalized NAD is returned, not a Status");
    };
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let held = nads.get("n").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let stale_patch = json!({"metadata": {"resourceVersion": stale, "finalizers": []}});
    let status = api_error(nads.patch("n", &PatchParams::default(), &Patch::Merge(stale_patch)).await.unwrap_err());
    assert_eq!(status.code, 409);
    assert!(nads.get("n").await.is_ok(), "a refused patch keeps the NAD");
    let current = json!({"metadata": {"resourceVersion": held.resource_version(), "finalizers": []}});
    nads.patch("n", &PatchParams::default(), &Patch::Merge(current)).await.unwrap();
    assert_eq!(api_error(nads.get("n").await.unwrap_err()).code, 404);

    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "m"}, "data": {"a": "1"}})).unwrap();
    let created = maps.create(&PostParams::default(), &map).await.unwrap();
    let mut first = created.clone();
    first.data = Some([("a".to_owned(), "2".to_owned())].into());
    maps.replace("m", &PostParams::default(), &first).await.unwrap();
    let mut second = created;
    second.data = Some([("b".to_owned(), "3".to_owned())].into());
    let status = api_error(maps.replace("m", &PostParams::default(), &second).await.unwrap_err());
    assert_eq!(status.code, 409, "a write over a version since changed is refused");
    assert_eq!(maps.get("m").await.unwrap().data.unwrap()["a"], "2");
    emulator.shutdown().await;
}
