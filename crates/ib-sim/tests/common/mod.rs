//! Builders shared by the ib-sim scenarios.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use kube_emulator::{EmulatorHandle, Resource};
use serde_json::{Value, json};

/// Generous: the machines running tests are shared and slow.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub const IB5: &str =
    r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"ib5","pkey":"0x5","ibKubernetesEnabled":true}"#;
pub const IB_RUNTIME: &str = r#"{"cniVersion":"0.3.1","name":"ibrt","plugins":[{"type":"ib-sriov","pkey":"0x6","capabilities":{"infinibandGUID":true}}]}"#;
pub const MACVLAN: &str = r#"{"type":"macvlan","cniVersion":"0.3.1","master":"eth0"}"#;
pub const MGMT: &str = r#"{"type":"ib-sriov","cniVersion":"0.3.1","pkey":"0x7fff"}"#;

pub fn nad(api: &EmulatorHandle, ns: &str, name: &str, config: &str) {
    let nad = json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"config": config}
    });
    api.create(Resource::NetworkAttachmentDefinitions, nad).unwrap();
}

/// A pod scheduled on `node` (None: unscheduled), with the networks annotation when given.
pub fn pod(api: &EmulatorHandle, ns: &str, name: &str, networks: Option<&str>, node: Option<&str>) {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    });
    if let Some(networks) = networks {
        pod["metadata"]["annotations"] = json!({"k8s.v1.cni.cncf.io/networks": networks});
    }
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    api.create(Resource::Pods, pod).unwrap();
}

pub fn phase(api: &EmulatorHandle, ns: &str, name: &str) -> String {
    let pod = api.get(Resource::Pods, ns, name).expect("pod exists");
    pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending").to_owned()
}

pub fn set_networks(api: &EmulatorHandle, ns: &str, name: &str, networks: &str) {
    api.mutate(Resource::Pods, ns, name, |p| {
        p["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = json!(networks);
    })
    .unwrap();
}

/// Polls `check` until it holds or the deadline passes.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
