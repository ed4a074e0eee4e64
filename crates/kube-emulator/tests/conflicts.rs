//! Optimistic concurrency: stale PUTs and PATCHes carrying a stale resourceVersion answer 409
//! Conflict with the apiserver's message; unconditional writes succeed; forced conflicts fire once.

mod common;

use common::{api_error, pod, start, test_config};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use kube_emulator::Resource;
use serde_json::json;

fn lease(name: &str, holder: &str) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": name, "namespace": "kube-system" },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": 60 }
    }))
    .unwrap()
}

#[tokio::test]
async fn stale_put_conflicts_and_empty_rv_is_unconditional() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Lease> = Api::namespaced(client, "kube-system");
    let created = api.create(&PostParams::default(), &lease("leader", "a")).await.unwrap();
    let mut first = created.clone();
    first.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let updated = api.replace("leader", &PostParams::default(), &first).await.unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());

    let mut stale = created.clone();
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let status = api_error(api.replace("leader", &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"leader\": the object has \
         been modified; please apply your changes to the latest version and try again"
    );
    let details = status.details.unwrap();
    assert_eq!(details.name, "leader");
    assert_eq!(details.group, "coordination.k8s.io");
    assert_eq!(details.kind, "leases");

    stale.metadata.resource_version = None;
    let forced = api.replace("leader", &PostParams::default(), &stale).await.unwrap();
    assert_eq!(forced.spec.unwrap().holder_identity.as_deref(), Some("c"));

    let missing = api_error(api.replace("nope", &PostParams::default(), &lease("nope", "a")).await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    let exists = api_error(api.create(&PostParams::default(), &lease("leader", "a")).await.unwrap_err());
    assert_eq!((exists.code, exists.reason.as_str()), (409, "AlreadyExists"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn patch_with_stale_rv_conflicts_and_rv_is_never_stored() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    let rv = created.resource_version().unwrap();
    let fresh = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "resourceVersion": rv, "annotations": { "a": "1" } } })),
        )
        .await
        .unwrap();
    let fresh_rv = fresh.resource_version().unwrap();
    assert_ne!(fresh_rv, rv);

    for patch in [
        Patch::Merge(json!({ "metadata": { "resourceVersion": rv, "annotations": { "a": "2" } } })),
        Patch::Strategic(json!({ "metadata": { "resourceVersion": rv, "annotations": { "a": "2" } } })),
    ] {
        let status = api_error(api.patch("p", &PatchParams::default(), &patch).await.unwrap_err());
        assert_eq!(status.reason, "Conflict");
    }
    // A client RV that is not the stored one is never written literally.
    let status = api_error(
        api.patch("p", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "resourceVersion": "999999" } })))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 409);
    let current = api.get("p").await.unwrap();
    assert_eq!(current.resource_version().unwrap(), fresh_rv);
    assert_eq!(current.annotations().get("a").map(String::as_str), Some("1"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn forced_conflict_fires_on_the_next_write_only() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let api: Api<Pod> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    handle.force_conflict(Resource::Pods, "default", "p");
    let patch = Patch::Merge(json!({ "metadata": { "labels": { "x": "1" } } }));
    let status = api_error(api.patch("p", &PatchParams::default(), &patch).await.unwrap_err());
    assert_eq!(status.reason, "Conflict");
    let ok = api.patch("p", &PatchParams::default(), &patch).await.unwrap();
    assert_eq!(ok.labels().get("x").map(String::as_str), Some("1"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn immutable_uid_and_name_mismatch() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    let status = api_error(
        api.patch("p", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "uid": "other" } })))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(status.details.unwrap().causes[0].field, "metadata.uid");

    // creationTimestamp changes are ignored, as the apiserver's BeforeUpdate does.
    let same = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "creationTimestamp": "2001-01-01T00:00:00Z" } })),
        )
        .await
        .unwrap();
    assert_eq!(same.metadata.creation_timestamp, created.metadata.creation_timestamp);
    assert_eq!(same.resource_version(), created.resource_version());

    let mut renamed = created.clone();
    renamed.metadata.name = Some("q".into());
    let status = api_error(api.replace("p", &PostParams::default(), &renamed).await.unwrap_err());
    assert_eq!(status.reason, "BadRequest");

    let mut with_rv = pod("default", "new");
    with_rv.metadata.resource_version = Some("5".into());
    let status = api_error(api.create(&PostParams::default(), &with_rv).await.unwrap_err());
    assert_eq!(status.reason, "InternalError");
    assert!(status.message.contains("resourceVersion should not be set on objects to be created"));
    emulator.shutdown().await;
}
