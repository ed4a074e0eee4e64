//! A kube-rs `watcher` over more than 500 pods: the default `?limit=500` LIST follows continue
//! tokens through a snapshot, then the watch picks up changes made after it.

mod common;

use common::{pod_json, start, test_config, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use kube_emulator::Resource;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn watcher_lists_every_page_then_sees_new_pods() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let total = 1234;
    handle
        .seed(Resource::Pods, (0..total).map(|i| pod_json(&format!("ns-{}", i % 3), &format!("pod-{i:05}"), json!({}))))
        .unwrap();

    let api: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut names = BTreeSet::new();
    within("initial list", async {
        loop {
            match stream.next().await.expect("stream open").expect("no watcher error") {
                Event::Init => {}
                Event::InitApply(p) => {
                    names.insert(p.metadata.name.unwrap());
                }
                Event::InitDone => break,
                other => panic!("unexpected event before InitDone: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(names.len(), total);

    // The first page had no continue token; later pages carried one, and all were `limit=500`.
    let lists: Vec<_> =
        handle.requests().into_iter().filter(|r| r.path == "/api/v1/pods" && !r.query.contains("watch")).collect();
    assert_eq!(lists.len(), 3, "{lists:#?}");
    assert!(lists.iter().all(|r| r.query.contains("limit=500") && r.status == Some(200)));
    assert!(!lists[0].query.contains("continue="));
    assert!(lists[1].query.contains("continue=") && lists[2].query.contains("continue="));

    let created = Api::<Pod>::namespaced(client, "ns-1")
        .create(&PostParams::default(), &common::pod("ns-1", "late"))
        .await
        .unwrap();
    let seen = within("the new pod", async {
        loop {
            if let Event::Apply(p) = stream.next().await.unwrap().unwrap() {
                return p;
            }
        }
    })
    .await;
    assert_eq!(seen.metadata.name.as_deref(), Some("late"));
    assert_eq!(seen.metadata.resource_version, created.metadata.resource_version);
    emulator.shutdown().await;
}

#[tokio::test]
async fn pages_are_a_consistent_snapshot() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.seed(Resource::Pods, (0..25).map(|i| pod_json("default", &format!("p{i:02}"), json!({})))).unwrap();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let first = api.list(&kube::api::ListParams::default().limit(10)).await.unwrap();
    let snapshot_rv = first.metadata.resource_version.clone().unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.metadata.remaining_item_count, Some(15));

    // Writes between pages must not leak into the pinned list.
    handle.delete_with_grace(Resource::Pods, "default", "p20", Some(0)).unwrap();
    handle.create(Resource::Pods, pod_json("default", "p99", json!({}))).unwrap();
    let mut names: Vec<String> = first.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
    let mut token = first.metadata.continue_.clone();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api.list(&kube::api::ListParams::default().limit(10).continue_token(&t)).await.unwrap();
        assert_eq!(page.metadata.resource_version.as_deref(), Some(snapshot_rv.as_str()));
        names.extend(page.items.iter().filter_map(|p| p.metadata.name.clone()));
        token = page.metadata.continue_;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(names, expected);

    // A fresh LIST sees the writes.
    let now = api.list(&kube::api::ListParams::default()).await.unwrap();
    let fresh: Vec<String> = now.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
    assert!(fresh.contains(&"p99".to_string()) && !fresh.contains(&"p20".to_string()));

    // A mangled continue token is a 400.
    let err = api.list(&kube::api::ListParams::default().continue_token("not-a-token")).await.unwrap_err();
    assert_eq!(common::api_error(err).reason, "BadRequest");
    emulator.shutdown().await;
}
