//! LIST resourceVersion semantics: `resourceVersion=0` (kube-rs `any_semantic`) answers from the
//! current state in one page, `NotOlderThan` and `Exact` are honoured where the emulator can, a
//! future version is a 504 Timeout, and kube-rs's `any_semantic` watcher syncs.

mod common;

use common::{api_error, pod_json, start, test_config, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, VersionMatch};
use kube::runtime::watcher::{self, Event};
use kube_emulator::Resource;
use serde_json::json;

#[tokio::test]
async fn resource_version_semantics() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.seed(Resource::Pods, (0..12).map(|i| pod_json("default", &format!("p{i:02}"), json!({})))).unwrap();
    let api: Api<Pod> = Api::namespaced(client, "default");

    let any = api.list(&ListParams::default().match_any()).await.unwrap();
    assert_eq!(any.items.len(), 12);
    assert!(any.metadata.continue_.is_none());
    // kube drops resourceVersion=0 when a limit is set; send both raw, as client-go may.
    let request =
        http::Request::get("/api/v1/namespaces/default/pods?resourceVersion=0&limit=5").body(Vec::new()).unwrap();
    let raw: serde_json::Value = common::client_for(&emulator).request(request).await.unwrap();
    assert_eq!(raw["items"].as_array().map(Vec::len), Some(12), "the watch cache ignores limit for resourceVersion=0");
    assert_eq!(any.metadata.resource_version.as_deref(), Some("12"));

    let not_older = api.list(&ListParams::default().at("5").matching(VersionMatch::NotOlderThan)).await.unwrap();
    assert_eq!(not_older.metadata.resource_version.as_deref(), Some("12"));
    let exact_now = api.list(&ListParams::default().at("12").matching(VersionMatch::Exact)).await.unwrap();
    assert_eq!(exact_now.items.len(), 12);
    let exact_old =
        api_error(api.list(&ListParams::default().at("5").matching(VersionMatch::Exact)).await.unwrap_err());
    assert_eq!((exact_old.code, exact_old.reason.as_str()), (410, "Expired"));
    // 504 is retried by kube's default policy; ask once.
    let mut config = kube::Config::new(emulator.url().parse().unwrap());
    config.default_retry = false;
    let once: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let future = api_error(once.list(&ListParams::default().at("99")).await.unwrap_err());
    assert_eq!((future.code, future.reason.as_str()), (504, "Timeout"));

    let mut stream = watcher::watcher(api, watcher::Config::default().any_semantic()).boxed();
    let synced = within("any-semantic sync", async {
        let mut n = 0;
        loop {
            match stream.next().await.unwrap().unwrap() {
                Event::InitApply(_) => n += 1,
                Event::InitDone => return n,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(synced, 12);
    emulator.shutdown().await;
}
