//! A watcher that falls a whole queue behind is closed (as the apiserver closes unresponsive
//! watchers) and loses nothing: resuming from its last resourceVersion replays the rest.

mod common;

use common::{pod_json, start, test_config, wait_for, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use kube_emulator::{EmulatorConfig, Resource};
use serde_json::json;

const WRITES: usize = 50;

// A current-thread runtime: while the test writes synchronously, the watch stream cannot run, so
// it deterministically falls more than its queue behind.
#[tokio::test(flavor = "current_thread")]
async fn lagging_watcher_is_closed_and_resumes_by_rv() {
    let config = EmulatorConfig { watch_queue_capacity: 4, ..test_config() };
    let (emulator, client) = start(config).await;
    let handle = emulator.handle();
    let api: Api<Pod> = Api::namespaced(client, "default");
    let start_rv = handle.resource_version().to_string();
    let mut stream = api.watch(&WatchParams::default().disable_bookmarks(), &start_rv).await.unwrap().boxed();
    wait_for("the watch to register", || async { (handle.active_watches() == 1).then_some(()) }).await;
    for i in 0..WRITES {
        handle.create(Resource::Pods, pod_json("default", &format!("p{i:02}"), json!({}))).unwrap();
    }

    let seen: Vec<Pod> = within("the lagging stream to close", async {
        let mut seen = Vec::new();
        while let Some(event) = stream.next().await {
            if let WatchEvent::Added(p) = event.unwrap() {
                seen.push(p);
            }
        }
        seen
    })
    .await;
    assert!(seen.len() < WRITES, "the stream should have been closed early, saw {}", seen.len());
    wait_for("the watch to unregister", || async { (handle.active_watches() == 0).then_some(()) }).await;

    let resume_rv = seen.last().and_then(|p| p.resource_version()).unwrap_or(start_rv);
    let rest: Vec<String> = within(
        "the replayed remainder",
        api.watch(&WatchParams::default().disable_bookmarks(), &resume_rv)
            .await
            .unwrap()
            .take(WRITES - seen.len())
            .map(|e| match e.unwrap() {
                WatchEvent::Added(p) => p.name_any(),
                other => panic!("unexpected {other:?}"),
            })
            .collect::<Vec<_>>(),
    )
    .await;
    let all: Vec<String> = seen.iter().map(ResourceExt::name_any).chain(rest).collect();
    let expected: Vec<String> = (0..WRITES).map(|i| format!("p{i:02}")).collect();
    assert_eq!(all, expected);
    emulator.shutdown().await;
}
