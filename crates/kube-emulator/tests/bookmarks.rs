//! BOOKMARK events: periodic when `allowWatchBookmarks=true`, never behind delivered events, and
//! usable to resume; plus `sendInitialEvents` streaming lists ending on an annotated bookmark.

mod common;

use common::{pod, pod_json, start, test_config, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use kube_emulator::Resource;
use serde_json::json;

#[tokio::test]
async fn bookmarks_carry_the_latest_version() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.create(Resource::Leases, json!({ "metadata": { "name": "other", "namespace": "default" } })).unwrap();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut stream = api.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    let bookmark = within("a bookmark", async {
        loop {
            if let WatchEvent::Bookmark(b) = stream.next().await.unwrap().unwrap() {
                return b;
            }
        }
    })
    .await;
    // The lease write moved the global version; the pod watch's bookmark reflects it.
    assert_eq!(bookmark.metadata.resource_version, "1");
    assert_eq!(bookmark.types.kind, "Pod");

    let created = api.create(&PostParams::default(), &pod("default", "x")).await.unwrap();
    let (added, next_bookmark) = within("event then bookmark", async {
        let mut added: Option<Pod> = None;
        loop {
            match (stream.next().await.unwrap().unwrap(), &added) {
                (WatchEvent::Added(p), _) => added = Some(p),
                (WatchEvent::Bookmark(b), Some(p)) => return (p.clone(), b),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(added.resource_version(), created.resource_version());
    let bookmark_rv: u64 = next_bookmark.metadata.resource_version.parse().unwrap();
    assert!(bookmark_rv >= created.resource_version().unwrap().parse::<u64>().unwrap());

    // Resuming from the bookmark replays nothing old.
    handle.create(Resource::Pods, pod_json("default", "y", json!({}))).unwrap();
    let mut resumed = api
        .watch(&WatchParams::default().disable_bookmarks(), &next_bookmark.metadata.resource_version)
        .await
        .unwrap()
        .boxed();
    let first = within("resumed event", resumed.next()).await.unwrap().unwrap();
    assert!(matches!(first, WatchEvent::Added(p) if p.name_any() == "y"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn no_bookmarks_unless_asked() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut stream = api.watch(&WatchParams::default().disable_bookmarks().timeout(3), "0").await.unwrap().boxed();
    // Three bookmark intervals pass; the stream must end without emitting anything.
    let next = within("stream end", stream.next()).await;
    assert!(next.is_none(), "{next:?}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn streaming_list_ends_with_initial_events_bookmark() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.seed(Resource::Pods, (0..7).map(|i| pod_json("default", &format!("p{i}"), json!({})))).unwrap();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut stream = watcher::watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let names = within("streamed initial state", async {
        let mut names = Vec::new();
        loop {
            match stream.next().await.unwrap().unwrap() {
                Event::InitApply(p) => names.push(p.name_any()),
                Event::InitDone => return names,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(names.len(), 7);
    let watch = handle
        .requests()
        .into_iter()
        .find(|r| r.query.contains("sendInitialEvents=true"))
        .expect("a streaming-list request");
    assert!(!handle.requests().iter().any(|r| !r.query.contains("watch")), "no LIST: {watch:?}");
    emulator.shutdown().await;
}
