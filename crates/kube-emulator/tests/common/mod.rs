//! Shared fixtures for the emulator scenarios: start an emulator with a kube-rs client, tiny
//! object builders, a hand-written NetworkAttachmentDefinition type and a deadline-based wait.
#![allow(dead_code)] // each scenario file uses a different subset

use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;
use kube_emulator::{EmulatorConfig, KubeEmulator, RunningEmulator};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

/// Generous: tests run on a loaded 2-core machine and never assert on timing.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub async fn start(config: EmulatorConfig) -> (RunningEmulator, kube::Client) {
    let emulator = KubeEmulator::start(config).await.expect("emulator starts");
    let client = client_for(&emulator);
    (emulator, client)
}

pub fn client_for(emulator: &RunningEmulator) -> kube::Client {
    let url = emulator.url().parse().expect("emulator url parses");
    let config = kube::Config::new(url);
    kube::Client::try_from(config).expect("client builds")
}

pub fn test_config() -> EmulatorConfig {
    EmulatorConfig { bookmark_interval: Duration::from_secs(1), ..EmulatorConfig::default() }
}

/// Polls `check` until it returns `Some`, failing the test after `DEADLINE`.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `fut`, failing the test after `DEADLINE`.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn pod_json(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace, "labels": labels,
                      "annotations": { "k8s.v1.cni.cncf.io/networks": "ib-net" } },
        "spec": { "nodeName": "node-1", "containers": [{ "name": "c", "image": "busybox" }] }
    })
}

pub fn pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(pod_json(namespace, name, json!({ "app": "web" }))).expect("pod json")
}

pub fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The Multus NetworkAttachmentDefinition, hand-written as the controller does. It carries its
/// `apiVersion` and `kind`: a custom resource created without them is refused.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NetworkAttachmentDefinition {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<NadSpec>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NadSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

impl kube::Resource for NetworkAttachmentDefinition {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "NetworkAttachmentDefinition".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "k8s.cni.cncf.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "network-attachment-definitions".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

pub fn nad(namespace: &str, name: &str, config: &str) -> NetworkAttachmentDefinition {
    NetworkAttachmentDefinition {
        api_version: "k8s.cni.cncf.io/v1".into(),
        kind: "NetworkAttachmentDefinition".into(),
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(namespace.into()), ..ObjectMeta::default() },
        spec: Some(NadSpec { config: Some(config.into()) }),
    }
}
