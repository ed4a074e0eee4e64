//! Scale: 100,000 annotated pods load through the control handle, page through a kube-rs
//! watcher LIST, and a live change still reaches a watcher promptly afterwards. No timing is
//! asserted; the test fails only on wrong results or the generous deadline.

mod common;

use common::{DEADLINE, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use kube_emulator::{EmulatorConfig, Resource};
use serde_json::json;

const PODS: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_pods() {
    let config = EmulatorConfig { bookmark_interval: std::time::Duration::from_secs(1), ..EmulatorConfig::default() };
    let (emulator, client) = common::start(config).await;
    let handle = emulator.handle();
    let started = std::time::Instant::now();
    let seeded = handle
        .seed(
            Resource::Pods,
            (0..PODS).map(|i| {
                json!({
                    "metadata": {
                        "name": format!("pod-{i:06}"),
                        "namespace": format!("ns-{}", i % 50),
                        "labels": { "app": if i % 10 == 0 { "ib" } else { "other" } },
                        "annotations": { "k8s.v1.cni.cncf.io/networks": format!("[{{\"name\":\"ib-{}\"}}]", i % 7) }
                    },
                    "spec": { "nodeName": format!("node-{}", i % 100), "containers": [{ "name": "c", "image": "x" }] }
                })
            }),
        )
        .unwrap();
    assert_eq!(seeded, PODS as u64);
    println!("seeded {PODS} pods in {:?}", started.elapsed());

    let started = std::time::Instant::now();
    let api: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut listed = 0usize;
    let deadline = DEADLINE * 4;
    tokio::time::timeout(deadline, async {
        loop {
            match stream.next().await.unwrap().unwrap() {
                Event::InitApply(_) => listed += 1,
                Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await
    .expect("initial sync of 100k pods");
    assert_eq!(listed, PODS);
    println!("watcher synced {PODS} pods in {:?}", started.elapsed());

    let selected = api.list(&ListParams::default().labels("app=ib").fields("spec.nodeName=node-10")).await.unwrap();
    assert_eq!(selected.items.len(), PODS / 100);

    handle
        .mutate(Resource::Pods, "ns-3", "pod-000003", |p| {
            p["metadata"]["annotations"]["mellanox.infiniband.app"] = json!("configured");
        })
        .unwrap();
    let changed = within("the live change", async {
        loop {
            if let Event::Apply(p) = stream.next().await.unwrap().unwrap() {
                return p;
            }
        }
    })
    .await;
    assert_eq!(changed.name_any(), "pod-000003");
    emulator.shutdown().await;
}
