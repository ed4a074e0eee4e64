//! History compaction: a watch resuming from a compacted resourceVersion gets an in-stream
//! ERROR 410 `Expired`, and the kube-rs watcher answers it by re-listing.

mod common;

use common::{pod, pod_json, start, test_config, wait_for, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use kube_emulator::{EmulatorConfig, Fault, FaultRule, Resource};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn watch_from_compacted_version_is_expired_in_stream() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.seed(Resource::Pods, (0..3).map(|i| pod_json("default", &format!("p{i}"), json!({})))).unwrap();
    handle.compact();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut stream = api.watch(&WatchParams::default(), "1").await.unwrap().boxed();
    let first = within("the error event", stream.next()).await.unwrap().unwrap();
    let WatchEvent::Error(status) = first else {
        panic!("expected ERROR, got {first:?}");
    };
    assert_eq!(status.code, 410);
    assert_eq!(status.reason, "Expired");
    assert_eq!(status.message, "too old resource version: 1 (3)");
    assert!(within("stream end", stream.next()).await.is_none());

    // The current version is still a valid starting point.
    let mut ok = api.watch(&WatchParams::default().timeout(1), "3").await.unwrap().boxed();
    let next = within("stream end", ok.next()).await;
    assert!(!matches!(next, Some(Ok(WatchEvent::Error(_)))), "{next:?}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn small_history_expires_a_lagging_resume() {
    let config = EmulatorConfig { history_capacity: 2, ..test_config() };
    let (emulator, client) = start(config).await;
    let handle = emulator.handle();
    handle.seed(Resource::Pods, (0..5).map(|i| pod_json("default", &format!("p{i}"), json!({})))).unwrap();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut stream = api.watch(&WatchParams::default(), "2").await.unwrap().boxed();
    let first = within("the error event", stream.next()).await.unwrap().unwrap();
    assert!(matches!(first, WatchEvent::Error(s) if s.code == 410 && s.message == "too old resource version: 2 (3)"));
    let mut replay = api.watch(&WatchParams::default(), "3").await.unwrap().boxed();
    let first = within("replay", replay.next()).await.unwrap().unwrap();
    assert!(matches!(first, WatchEvent::Added(p) if p.name_any() == "p3"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn watcher_relists_after_expiry() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let api: Api<Pod> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &pod("default", "before")).await.unwrap();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    within("initial sync", async { while !matches!(stream.next().await, Some(Ok(Event::InitDone))) {} }).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    wait_for("the watch to connect", || async { (handle.active_watches() == 1).then_some(()) }).await;

    // Hold the watcher's reconnect while history moves on and is compacted, so it must resume
    // from a version the server no longer has.
    handle.inject_fault(
        FaultRule::new(Fault::Hang { max: Duration::from_secs(60) }).method("GET").query_contains("watch=true"),
    );
    handle.drop_watches();
    wait_for("the reconnect to hang", || async { (handle.hung_requests() == 1).then_some(()) }).await;
    handle.create(Resource::Pods, pod_json("default", "during", json!({}))).unwrap();
    handle.compact();
    handle.release_hung();

    let relisted = within("a re-list containing the new pod", async {
        let mut saw_init = false;
        loop {
            match rx.recv().await.expect("watcher alive") {
                Ok(Event::Init) => saw_init = true,
                Ok(Event::InitApply(p)) if saw_init && p.name_any() == "during" => return p,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(relisted.name_any(), "during");
    let lists = handle.requests().iter().filter(|r| r.method == "GET" && !r.query.contains("watch=true")).count();
    assert_eq!(lists, 2, "initial LIST and one re-list");
    driver.abort();
    emulator.shutdown().await;
}
