//! Watches resume from a resourceVersion: history is replayed exactly, a dropped connection
//! does not force a re-list, and `timeoutSeconds` ends the stream cleanly.

mod common;

use common::{pod, start, test_config, wait_for, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use serde_json::json;

fn summary(event: &WatchEvent<Pod>) -> (String, String, String) {
    match event {
        WatchEvent::Added(p) => ("ADDED".into(), p.name_any(), p.resource_version().unwrap()),
        WatchEvent::Modified(p) => ("MODIFIED".into(), p.name_any(), p.resource_version().unwrap()),
        WatchEvent::Deleted(p) => ("DELETED".into(), p.name_any(), p.resource_version().unwrap()),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn replay_from_resource_version_is_exact() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let a = api.create(&PostParams::default(), &pod("default", "a")).await.unwrap();
    let start_rv = a.resource_version().unwrap();
    api.create(&PostParams::default(), &pod("default", "b")).await.unwrap();
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "labels": { "step": "2" } } })))
        .await
        .unwrap();
    api.delete("b", &DeleteParams::default().grace_period(0)).await.unwrap();

    let stream = api.watch(&WatchParams::default().disable_bookmarks(), &start_rv).await.unwrap();
    let events: Vec<_> =
        within("three replayed events", stream.take(3).map(|e| summary(&e.unwrap())).collect::<Vec<_>>()).await;
    assert_eq!(
        events,
        vec![
            ("ADDED".into(), "b".into(), "2".into()),
            ("MODIFIED".into(), "a".into(), "3".into()),
            ("DELETED".into(), "b".into(), "4".into()),
        ]
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let rv = emulator.handle().resource_version().to_string();
    let mut stream = api.watch(&WatchParams::default().timeout(1).disable_bookmarks(), &rv).await.unwrap().boxed();
    let end = within("the server to close the watch", stream.next()).await;
    assert!(end.is_none(), "expected a clean end, got {end:?}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn dropped_watch_resumes_without_relist() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let api: Api<Pod> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &pod("default", "first")).await.unwrap();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    within("initial sync", async { while !matches!(stream.next().await, Some(Ok(Event::InitDone))) {} }).await;
    // The watcher polls lazily: drive it in the background so it can reconnect.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    wait_for("the watch to connect", || async { (handle.active_watches() == 1).then_some(()) }).await;
    handle.drop_watches();
    api.create(&PostParams::default(), &pod("default", "second")).await.unwrap();
    let applied = within("the second pod", async {
        loop {
            match rx.recv().await.expect("watcher alive") {
                Ok(Event::Apply(p)) => return p,
                Ok(Event::Init) => panic!("the watcher re-listed"),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(applied.name_any(), "second");
    let lists = handle.requests().iter().filter(|r| r.method == "GET" && !r.query.contains("watch=true")).count();
    assert_eq!(lists, 1, "one LIST only: {:#?}", handle.requests());
    let watches: Vec<_> = handle.requests().into_iter().filter(|r| r.query.contains("watch=true")).collect();
    assert!(watches.len() >= 2);
    // Every watch, including the one after the drop, resumes from the listed version.
    for watch in &watches {
        let rv = watch.query.split('&').find_map(|kv| kv.strip_prefix("resourceVersion="));
        assert_eq!(rv, Some("1"), "{watch:?}");
    }
    driver.abort();
    emulator.shutdown().await;
}
