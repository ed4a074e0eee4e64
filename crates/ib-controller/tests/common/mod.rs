//! A cluster for controller scenarios: the Kubernetes API emulator, the UFM emulator and the real
//! controller talking to both over HTTP, exactly as in production.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ib_controller::{Config, Controller};
use ib_sm::{EnvMap, SubnetManager, Ufm};
use kube_emulator::{EmulatorConfig, EmulatorHandle, KubeEmulator, Resource, RunningEmulator};
use serde_json::{Value, json};
use ufm_emulator::{RunningUfm, UfmEmulator, UfmHandle};

pub const IB5: &str =
    r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"sriov-network","pkey":"0x5","link_state":"enable","ipam":{}}"#;
pub const UFM_PASSWORD: &str = "canary-ufm-password-7f3a";
/// Generous: the machines running tests are shared and slow; a correct controller is far quicker.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Cluster {
    pub kube: RunningEmulator,
    pub ufm: RunningUfm,
}

impl Cluster {
    pub async fn start() -> Self {
        let kube = KubeEmulator::start(EmulatorConfig::default()).await.expect("kube emulator");
        let ufm = UfmEmulator::start(ufm_emulator::UfmConfig::http().with_credentials("admin", UFM_PASSWORD))
            .await
            .expect("ufm emulator");
        Cluster { kube, ufm }
    }

    pub fn api(&self) -> EmulatorHandle {
        self.kube.handle()
    }

    pub fn fabric(&self) -> UfmHandle {
        self.ufm.handle()
    }

    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.kube.url().parse().expect("url"));
        kube::Client::try_from(config).expect("client")
    }

    /// The environment a deployment would give the controller, pointing at the emulators.
    pub fn env(&self, replica: &str, extra: &[(&str, &str)]) -> EnvMap {
        let addr = self.ufm.addr();
        let port = addr.port().to_string();
        let mut env: EnvMap = [
            ("DAEMON_SM_PLUGIN", "ufm"),
            ("UFM_USERNAME", "admin"),
            ("UFM_PASSWORD", UFM_PASSWORD),
            ("UFM_ADDRESS", "127.0.0.1"),
            ("UFM_HTTP_SCHEMA", "http"),
            ("UFM_REQUEST_TIMEOUT", "3"),
            ("ADMIN_ADDRESS", "127.0.0.1:0"),
            ("K8S_NODE", "control-plane-1"),
            ("POD_NAMESPACE", "kube-system"),
            ("DAEMON_PERIODIC_UPDATE", "1"),
            ("LEADER_LEASE_DURATION", "4"),
            ("LEADER_RENEW_DEADLINE", "3"),
            ("LEADER_RETRY_PERIOD", "1"),
        ]
        .into_iter()
        .collect();
        env.set("UFM_PORT", port);
        env.set("POD_UID", replica);
        for (k, v) in extra {
            env.set(*k, *v);
        }
        env
    }

    pub fn config(&self, replica: &str, extra: &[(&str, &str)]) -> Config {
        Config::from_env(&self.env(replica, extra), None).expect("config")
    }

    pub fn ufm_client(&self) -> Arc<dyn SubnetManager> {
        let env = self.env("x", &[]);
        Arc::new(Ufm::new(ib_sm::ufm::UfmConfig::from_env(&env).expect("ufm config")).expect("ufm client"))
    }

    /// Starts a controller replica in this runtime and waits until it leads.
    pub async fn controller(&self, replica: &str, extra: &[(&str, &str)]) -> Controller {
        let c = Controller::start(self.config(replica, extra), self.client(), self.ufm_client()).await.expect("start");
        let mut leading = c.leading();
        tokio::time::timeout(DEADLINE, leading.wait_for(|l| *l)).await.expect("leads in time").expect("leading");
        c
    }

    pub fn nad(&self, ns: &str, name: &str, config: &str) {
        let nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"config": config}
        });
        self.api().create(Resource::NetworkAttachmentDefinitions, nad).expect("create NAD");
    }

    /// Creates a scheduled, pending pod; returns its uid.
    pub fn pod(&self, ns: &str, name: &str, networks: &str) -> String {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns,
                         "annotations": {"k8s.v1.cni.cncf.io/networks": networks, "team": "ml"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Pending"}
        });
        let created = self.api().create(Resource::Pods, pod).expect("create pod");
        created["metadata"]["uid"].as_str().expect("uid").to_owned()
    }

    pub fn get_pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.api().get(Resource::Pods, ns, name).map(|p| (*p).clone())
    }

    /// The pod's networks annotation, parsed.
    pub fn networks(&self, ns: &str, name: &str) -> Value {
        let pod = self.get_pod(ns, name).expect("pod exists");
        let raw = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str().unwrap_or("null").to_owned();
        serde_json::from_str(&raw).unwrap_or(Value::Null)
    }

    /// Waits until every element of the pod that is an IB network reads configured.
    pub async fn wait_configured(&self, ns: &str, name: &str, ib_elements: usize) -> Value {
        wait_for(&format!("{ns}/{name} configured"), || {
            let nets = self.networks(ns, name);
            let configured = nets
                .as_array()
                .map(|a| a.iter().filter(|e| e["cni-args"]["mellanox.infiniband.app"] == "configured").count())
                .unwrap_or(0);
            (configured == ib_elements).then_some(nets)
        })
        .await
    }

    /// GUIDs (UFM form) that are members of `pkey`.
    pub fn members(&self, pkey: u16) -> BTreeSet<String> {
        self.fabric().members(pkey).keys().map(|g| g.to_string()).collect()
    }
}

/// Elements as Multus reads them: a missing namespace is the pod's.
pub fn as_multus(nets: &Value, pod_namespace: &str) -> Value {
    let mut nets = nets.clone();
    if let Some(items) = nets.as_array_mut() {
        for e in items {
            if e.get("namespace").is_none() {
                e["namespace"] = Value::String(pod_namespace.to_owned());
            }
        }
    }
    nets
}

/// Polls `check` until it gives a value or the deadline passes.
pub async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > DEADLINE {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
