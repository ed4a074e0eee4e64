//! NetworkAttachmentDefinitions through a hand-written kube `Resource` with the plural
//! `network-attachment-definitions`: CRUD, generation on spec changes, and a watcher.

mod common;

use common::{NetworkAttachmentDefinition, api_error, nad, start, test_config, within};
use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test]
async fn nad_crud_and_watch() {
    let (emulator, client) = start(test_config()).await;
    let api: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), "default");
    let config = r#"{"type":"ib-sriov","pkey":"0x6"}"#;
    let created = api.create(&PostParams::default(), &nad("default", "ib", config)).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.spec.as_ref().unwrap().config.as_deref(), Some(config));
    let raw = emulator.handle().get(kube_emulator::Resource::NetworkAttachmentDefinitions, "default", "ib").unwrap();
    assert_eq!(raw["apiVersion"], "k8s.cni.cncf.io/v1");
    assert_eq!(raw["kind"], "NetworkAttachmentDefinition");

    let relabelled = api
        .patch("ib", &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } })))
        .await
        .unwrap();
    assert_eq!(relabelled.metadata.generation, Some(1), "metadata changes keep the generation");
    let respecced =
        api.patch("ib", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "config": "{}" } }))).await.unwrap();
    assert_eq!(respecced.metadata.generation, Some(2));

    let mut stream =
        watcher::watcher(Api::<NetworkAttachmentDefinition>::all(client), watcher::Config::default()).boxed();
    let listed = within("NAD sync", async {
        let mut listed = Vec::new();
        loop {
            match stream.next().await.unwrap().unwrap() {
                Event::InitApply(n) => listed.push(n.name_any()),
                Event::InitDone => return listed,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(listed, vec!["ib"]);
    // A NAD without a spec is valid (the CRD does not require one).
    let bare: NetworkAttachmentDefinition =
        serde_json::from_value(json!({ "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                                       "metadata": { "name": "bare", "namespace": "default" } }))
        .unwrap();
    api.create(&PostParams::default(), &bare).await.unwrap();
    api.delete("ib", &DeleteParams::default()).await.unwrap();
    let seen = within("apply and delete", async {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match stream.next().await.unwrap().unwrap() {
                Event::Apply(n) => seen.push(format!("apply {}", n.name_any())),
                Event::Delete(n) => seen.push(format!("delete {}", n.name_any())),
                _ => {}
            }
        }
        seen
    })
    .await;
    assert_eq!(seen, vec!["apply bare", "delete ib"]);
    let status = api_error(api.get("ib").await.unwrap_err());
    assert_eq!(status.message, "network-attachment-definitions.k8s.cni.cncf.io \"ib\" not found");
    assert_eq!(status.details.unwrap().group, "k8s.cni.cncf.io");
    emulator.shutdown().await;
}
