//! PATCH dispatch by Content-Type: JSON patch `test` failures are 422, undecodable patches 400,
//! unknown types 415, strategic directives refused; server-side apply creates and merges; no-op
//! writes keep the resourceVersion and emit no watch event.

mod common;

use common::{api_error, pod, start, test_config, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test]
async fn json_patch_test_guards_the_write() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    let uid = created.uid().unwrap();
    let guarded = |expected_uid: &str| -> Patch<json_patch::Patch> {
        Patch::Json(
            serde_json::from_value(json!([
                { "op": "test", "path": "/metadata/uid", "value": expected_uid },
                { "op": "add", "path": "/metadata/annotations/guid", "value": "02:00" }
            ]))
            .unwrap(),
        )
    };
    let status = api_error(api.patch("p", &PatchParams::default(), &guarded("someone-else")).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(api.get("p").await.unwrap().annotations().get("guid").is_none());

    let patched = api.patch("p", &PatchParams::default(), &guarded(&uid)).await.unwrap();
    assert_eq!(patched.annotations().get("guid").map(String::as_str), Some("02:00"));

    let missing_path: Patch<json_patch::Patch> =
        Patch::Json(serde_json::from_value(json!([{ "op": "remove", "path": "/metadata/labels/nope" }])).unwrap());
    let status = api_error(api.patch("p", &PatchParams::default(), &missing_path).await.unwrap_err());
    assert_eq!(status.code, 422);
    emulator.shutdown().await;
}

async fn raw_patch(url: &str, content_type: &str, body: &str) -> (u16, serde_json::Value) {
    // kube's typed API cannot send malformed bodies; speak HTTP directly through kube's client.
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let request = http::Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/default/pods/p")
        .header("Content-Type", content_type)
        .body(body.as_bytes().to_vec())
        .unwrap();
    match client.request::<serde_json::Value>(request).await {
        Ok(v) => (200, v),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&*s).unwrap()),
        Err(other) => panic!("transport error {other:?}"),
    }
}

#[tokio::test]
async fn content_types_and_malformed_bodies() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    let url = emulator.url();

    let (code, status) = raw_patch(&url, "application/json-patch+json", "{not json").await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = raw_patch(&url, "application/json-patch+json", r#"[{"op":"jump","path":"/a"}]"#).await;
    assert_eq!(code, 400);
    let (code, status) = raw_patch(&url, "application/apply-patch+yaml", "metadata: {name: p}").await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    assert!(status["message"].as_str().unwrap().contains("fieldManager"), "{status}");
    let (code, _) = raw_patch(&url, "text/plain", "{}").await;
    assert_eq!(code, 415);
    let (code, status) = raw_patch(
        &url,
        "application/strategic-merge-patch+json",
        r#"{"spec":{"containers":[{"name":"c","$patch":"delete"}]}}"#,
    )
    .await;
    assert_eq!(code, 400);
    assert!(status["message"].as_str().unwrap().contains("$patch"));
    let (code, obj) = raw_patch(&url, "application/merge-patch+json", r#"{"metadata":{"labels":{"m":"1"}}}"#).await;
    assert_eq!((code, obj["metadata"]["labels"]["m"].as_str()), (200, Some("1")));

    let status = api_error(
        api.patch("p", &PatchParams::apply("test"), &Patch::Apply(json!({ "metadata": {} }))).await.unwrap_err(),
    );
    assert_eq!(status.code, 400);
    assert!(status.message.contains("metadata.name"), "{}", status.message);
    emulator.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let applied = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "ssa", "labels": { "a": "1" } },
        "spec": { "nodeName": "n1", "containers": [{ "name": "c", "image": "one" }, { "name": "d", "image": "d" }] }
    });
    let created = api.patch("ssa", &PatchParams::apply("tool"), &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(created.labels().get("a").map(String::as_str), Some("1"));
    let managers = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managers.len(), 1);
    assert_eq!((managers[0].manager.as_deref(), managers[0].operation.as_deref()), (Some("tool"), Some("Apply")));

    let second = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "ssa", "labels": { "b": "2" } },
        "spec": { "containers": [{ "name": "c", "image": "two" }] }
    });
    let merged = api.patch("ssa", &PatchParams::apply("other"), &Patch::Apply(&second)).await.unwrap();
    assert_eq!(merged.labels().len(), 2);
    let spec = merged.spec.unwrap();
    let images: Vec<(&str, Option<&str>)> =
        spec.containers.iter().map(|c| (c.name.as_str(), c.image.as_deref())).collect();
    assert_eq!(images, [("c", Some("two")), ("d", Some("d"))]);
    assert_eq!(spec.node_name.as_deref(), Some("n1"));
    assert_eq!(merged.metadata.managed_fields.unwrap_or_default().len(), 2);

    // A stale resourceVersion in the configuration is a precondition, as in any PATCH.
    let stale = json!({ "apiVersion": "v1", "kind": "Pod",
                        "metadata": { "name": "ssa", "resourceVersion": "1", "labels": { "c": "3" } } });
    let status = api_error(api.patch("ssa", &PatchParams::apply("tool"), &Patch::Apply(&stale)).await.unwrap_err());
    assert_eq!(status.code, 409);
    // Another kind in the body, or another name than the URL's, is refused.
    let wrong = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "ssa" } });
    assert_eq!(
        api_error(api.patch("ssa", &PatchParams::apply("t"), &Patch::Apply(&wrong)).await.unwrap_err()).code,
        400
    );
    let renamed = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "other" } });
    assert_eq!(
        api_error(api.patch("ssa", &PatchParams::apply("t"), &Patch::Apply(&renamed)).await.unwrap_err()).code,
        400
    );
    assert!(api.get_opt("other").await.unwrap().is_none());
    emulator.shutdown().await;
}

#[tokio::test]
async fn no_op_write_keeps_rv_and_emits_nothing() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    let rv = created.resource_version().unwrap();
    let mut events = api.watch(&WatchParams::default().disable_bookmarks(), &rv).await.unwrap().boxed();

    let same_labels = Patch::Merge(json!({ "metadata": { "labels": { "app": "web" } } }));
    let unchanged = api.patch("p", &PatchParams::default(), &same_labels).await.unwrap();
    assert_eq!(unchanged.resource_version().unwrap(), rv);
    let replaced = api.replace("p", &PostParams::default(), &unchanged).await.unwrap();
    assert_eq!(replaced.resource_version().unwrap(), rv);
    assert_eq!(emulator.handle().resource_version().to_string(), rv);

    // The first event the watch sees is the next real change, not the no-ops.
    let changed = api
        .patch("p", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "labels": { "app": "db" } } })))
        .await
        .unwrap();
    let first = within("the real change", events.next()).await.unwrap().unwrap();
    let WatchEvent::Modified(seen) = first else {
        panic!("expected MODIFIED, got {first:?}");
    };
    assert_eq!(seen.resource_version(), changed.resource_version());
    assert_eq!(seen.labels().get("app").map(String::as_str), Some("db"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn status_subresource_owns_pod_status() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    let running = Patch::Merge(json!({ "status": { "phase": "Running" } }));
    let main = api.patch("p", &PatchParams::default(), &running).await.unwrap();
    assert_eq!(main.status.unwrap().phase.as_deref(), Some("Pending"));
    let status = api.patch_status("p", &PatchParams::default(), &running).await.unwrap();
    assert_eq!(status.status.unwrap().phase.as_deref(), Some("Running"));
    emulator.shutdown().await;
}
