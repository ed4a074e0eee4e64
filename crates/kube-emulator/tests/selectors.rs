//! Label and field selectors on LIST and WATCH; objects moving in and out of a watch's
//! selection arrive as ADDED and DELETED.

mod common;

use common::{api_error, pod_json, start, test_config, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use kube_emulator::Resource;
use serde_json::json;

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(ResourceExt::name_any).collect()
}

#[tokio::test]
async fn list_selectors() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.create(Resource::Pods, pod_json("a", "web-1", json!({ "app": "web", "tier": "front" }))).unwrap();
    handle.create(Resource::Pods, pod_json("a", "db-1", json!({ "app": "db" }))).unwrap();
    handle.create(Resource::Pods, pod_json("b", "web-2", json!({ "app": "web" }))).unwrap();
    handle
        .mutate(Resource::Pods, "b", "web-2", |p| {
            p["spec"]["nodeName"] = json!("node-2");
            p["status"] = json!({ "phase": "Running" });
        })
        .unwrap();
    let all: Api<Pod> = Api::all(client.clone());
    let list = |params: ListParams| {
        let all = all.clone();
        async move { names(&all.list(&params).await.unwrap().items) }
    };
    assert_eq!(list(ListParams::default().labels("app=web")).await, vec!["web-1", "web-2"]);
    assert_eq!(list(ListParams::default().labels("app in (db,cache)")).await, vec!["db-1"]);
    assert_eq!(list(ListParams::default().labels("app!=web")).await, vec!["db-1"]);
    assert_eq!(list(ListParams::default().labels("tier")).await, vec!["web-1"]);
    assert_eq!(list(ListParams::default().labels("!tier,app notin (db)")).await, vec!["web-2"]);
    assert_eq!(list(ListParams::default().fields("spec.nodeName=node-2")).await, vec!["web-2"]);
    assert_eq!(list(ListParams::default().fields("status.phase!=Running")).await, vec!["db-1", "web-1"]);
    assert_eq!(list(ListParams::default().fields("metadata.namespace=a,metadata.name=db-1")).await, vec!["db-1"]);
    let in_a: Api<Pod> = Api::namespaced(client, "a");
    assert_eq!(names(&in_a.list(&ListParams::default()).await.unwrap().items), vec!["db-1", "web-1"]);

    let status = api_error(all.list(&ListParams::default().fields("spec.hostNetwork=true")).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    let status = api_error(all.list(&ListParams::default().labels("app in (web")).await.unwrap_err());
    assert_eq!(status.code, 400);
    emulator.shutdown().await;
}

#[tokio::test]
async fn watch_selection_transitions() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.create(Resource::Pods, pod_json("default", "p", json!({ "app": "web" }))).unwrap();
    handle.create(Resource::Pods, pod_json("default", "other", json!({ "app": "db" }))).unwrap();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut events =
        api.watch(&WatchParams::default().labels("app=web").disable_bookmarks(), "0").await.unwrap().boxed();
    let relabel = |app: &'static str| {
        let api = api.clone();
        async move {
            api.patch("p", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "labels": { "app": app } } })))
                .await
                .unwrap()
        }
    };
    let left = relabel("db").await;
    let back = relabel("web").await;
    api.patch("other", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "annotations": { "x": "1" } } })))
        .await
        .unwrap();
    let annotated = api
        .patch("p", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "annotations": { "x": "1" } } })))
        .await
        .unwrap();

    let seen = within("four events", async {
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let event = events.next().await.unwrap().unwrap();
            seen.push(match event {
                WatchEvent::Added(p) => ("ADDED", p),
                WatchEvent::Modified(p) => ("MODIFIED", p),
                WatchEvent::Deleted(p) => ("DELETED", p),
                other => panic!("unexpected {other:?}"),
            });
        }
        seen
    })
    .await;
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, vec!["ADDED", "DELETED", "ADDED", "MODIFIED"]);
    assert!(seen.iter().all(|(_, p)| p.name_any() == "p"), "the unselected pod never shows up");
    // Leaving the selection: the last selected state, at the leaving write's version.
    assert_eq!(seen[1].1.labels().get("app").map(String::as_str), Some("web"));
    assert_eq!(seen[1].1.resource_version(), left.resource_version());
    assert_eq!(seen[2].1.resource_version(), back.resource_version());
    assert_eq!(seen[3].1.resource_version(), annotated.resource_version());
    emulator.shutdown().await;
}
