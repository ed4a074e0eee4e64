//! A cluster for controller scenarios: the Kubernetes API emulator, the UFM emulator and the real
//! controller talking to both over HTTP, exactly as in production.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use ib_controller::{Config, Controller};
use ib_sim::fixture::EmulatedCluster;
use ib_sm::{EnvMap, SubnetManager, Ufm};
use kube_emulator::{EmulatorConfig, EmulatorHandle, Resource};
use serde_json::{Value, json};
use ufm_emulator::UfmHandle;

pub const IB5: &str =
    r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"sriov-network","pkey":"0x5","link_state":"enable","ipam":{}}"#;
pub const UFM_PASSWORD: &str = "canary-ufm-password-7f3a";
pub const UFM_TOKEN: &str = "canary-ufm-token-51c9";
/// Generous: the machines running tests are shared and slow; a correct controller is far quicker.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The shared emulated cluster (`ib_sim::fixture`), plus what the scenarios read from it; derefs to
/// the fixture for `kube` and `ufm`.
pub struct Cluster {
    emulators: EmulatedCluster,
    /// One counter for both emulators' request logs, so that requests can be ordered across them.
    pub sequence: Arc<AtomicU64>,
}

impl std::ops::Deref for Cluster {
    type Target = EmulatedCluster;

    fn deref(&self) -> &EmulatedCluster {
        &self.emulators
    }
}

impl Cluster {
    pub async fn start() -> Self {
        let sequence = Arc::new(AtomicU64::new(0));
        let kube = EmulatorConfig { sequence: Some(sequence.clone()), ..EmulatorConfig::default() };
        let ufm = ufm_emulator::UfmConfig::http().with_token(UFM_TOKEN).with_sequence(sequence.clone());
        let emulators = EmulatedCluster::start(kube, ufm, UFM_PASSWORD).await.expect("emulators");
        Cluster { emulators, sequence }
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
        let mut env = self.emulators.controller_env(replica);
        // Short timings, so that failures, retries and fail-overs happen within a test's deadline.
        for (k, v) in [
            ("UFM_REQUEST_TIMEOUT", "3"),
            ("DAEMON_PERIODIC_UPDATE", "1"),
            ("LEADER_LEASE_DURATION", "4"),
            ("LEADER_RENEW_DEADLINE", "3"),
            ("LEADER_RETRY_PERIOD", "1"),
        ] {
            env.set(k, v);
        }
        for (k, v) in extra {
            env.set(*k, *v);
        }
        env
    }

    pub fn config(&self, replica: &str, extra: &[(&str, &str)]) -> Config {
        Config::from_env(&self.env(replica, extra), None).expect("config")
    }

    pub fn ufm_client(&self) -> Arc<dyn SubnetManager> {
        self.ufm_client_with(&[])
    }

    /// The UFM subnet manager: built in, or, when the test runs with `DAEMON_SM_PLUGIN=ufm` and
    /// `DAEMON_SM_PLUGIN_PATH` naming a directory with the `ufm` exec plugin (`make plugins` builds
    /// `build/plugins/ufm`), that plugin, so that every scenario also runs through the exec protocol. The
    /// plugin gets the scenario's `UFM_*` values explicitly: tests never change the process environment.
    pub fn ufm_client_with(&self, extra: &[(&str, &str)]) -> Arc<dyn SubnetManager> {
        let env = self.env("x", extra);
        if let Some(plugin) = exec_plugin() {
            let mut config = ib_sm::ExecConfig::new(plugin);
            for key in [
                "UFM_USERNAME",
                "UFM_PASSWORD",
                "UFM_TOKEN",
                "UFM_ADDRESS",
                "UFM_PORT",
                "UFM_HTTP_SCHEMA",
                "UFM_REQUEST_TIMEOUT",
            ] {
                if let Some(value) = env.get(key) {
                    config = config.with_env(key, value);
                }
            }
            return Arc::new(ib_sm::ExecPlugin::new(config));
        }
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

/// The `ufm` exec plugin the environment of the test run selects, if any.
pub fn exec_plugin() -> Option<std::path::PathBuf> {
    if std::env::var("DAEMON_SM_PLUGIN").ok()? != "ufm" {
        return None;
    }
    let path = std::path::PathBuf::from(std::env::var("DAEMON_SM_PLUGIN_PATH").ok()?).join("ufm");
    path.is_file().then_some(path)
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

/// Polls `check` until it gives a value or [`DEADLINE`] passes.
pub async fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_within(DEADLINE, Duration::from_millis(20), what, check).await
}

/// Polls `check` every `poll` until it gives a value, panicking once `deadline` has passed.
pub async fn wait_within<T>(deadline: Duration, poll: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(poll).await;
    }
}

/// A controller replica on its own runtime and thread, so that it can be killed at any instant like a
/// SIGKILLed process: `kill` drops every task mid-flight without releasing anything.
pub struct Replica {
    control: std::sync::mpsc::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub leading: tokio::sync::watch::Receiver<bool>,
    pub admin: std::net::SocketAddr,
}

impl Cluster {
    pub fn spawn_replica(&self, name: &str, extra: &[(&str, &str)]) -> Replica {
        self.spawn_replica_with(name, extra, self.ufm_client_with(extra))
    }

    /// A replica with the subnet manager `sm` instead of UFM.
    pub fn spawn_replica_with(&self, name: &str, extra: &[(&str, &str)], sm: Arc<dyn SubnetManager>) -> Replica {
        let config = self.config(name, extra);
        let url = self.kube.url();
        let (control, commands) = std::sync::mpsc::channel::<bool>();
        let (started_tx, started) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            let controller = rt.block_on(async {
                let client = kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
                Controller::start(config, client, sm).await.expect("start")
            });
            let _ = started_tx.send((controller.leading(), controller.admin_address()));
            // true: graceful stop; false or a dropped sender: crash.
            if commands.recv().unwrap_or(false) {
                rt.block_on(controller.shutdown());
            } else {
                drop(controller);
                rt.shutdown_background();
            }
        });
        let (leading, admin) = started.recv().expect("replica started");
        Replica { control, thread: Some(thread), leading, admin }
    }
}

impl Replica {
    pub async fn wait_leading(&self) {
        self.wait_leading_within(DEADLINE).await;
    }

    /// Waits until the replica leads, for at most `deadline`.
    pub async fn wait_leading_within(&self, deadline: Duration) {
        let mut leading = self.leading.clone();
        tokio::time::timeout(deadline, leading.wait_for(|l| *l)).await.expect("leads in time").expect("leading");
    }

    /// Stops every task at once, mid-request, releasing nothing (the lease expires on its own).
    pub fn kill(mut self) {
        let _ = self.control.send(false);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// SIGTERM: the lease is released.
    pub fn stop(mut self) {
        let _ = self.control.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.control.send(false);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Cluster {
    /// GUIDs (UFM form) that are members of any managed partition inside the default pool range.
    pub fn pool_members(&self) -> BTreeSet<(u16, String)> {
        self.fabric()
            .partitions()
            .into_iter()
            .filter(|(pkey, _)| *pkey != 0x7fff)
            .flat_map(|(pkey, p)| p.members.keys().map(move |g| (pkey, g.to_string())).collect::<Vec<_>>())
            .filter(|(_, g)| g.starts_with("02"))
            .collect()
    }

    /// (pkey, GUID in UFM form) of every configured interface of every live pod, read from annotations.
    pub fn configured_pairs(&self) -> BTreeSet<(u16, String)> {
        let (_, pods) = self.api().list(Resource::Pods, None);
        let mut pairs = BTreeSet::new();
        for pod in pods {
            let phase = pod["status"]["phase"].as_str().unwrap_or("");
            if phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
            let raw = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str().unwrap_or("");
            let Ok(a) = ib_model::NetworksAnnotation::parse(raw, ns) else { continue };
            for s in a.selections().iter().filter(|s| s.configured) {
                let guid = s.guid.as_ref().and_then(|(t, _)| ib_model::Guid::parse(t).ok());
                let pkey = s.pkey.as_deref().and_then(|p| ib_model::PKey::parse(p).ok());
                if let (Some(g), Some(p)) = (guid, pkey) {
                    pairs.insert((p.get(), g.to_ufm()));
                }
            }
        }
        pairs
    }

    /// Waits until UFM membership in the pool range equals the configured interfaces of live pods.
    pub async fn wait_converged(&self) -> BTreeSet<(u16, String)> {
        wait_for("UFM membership to equal the configured live interfaces", || {
            let want = self.configured_pairs();
            (self.pool_members() == want).then_some(want)
        })
        .await
    }

    /// Events recorded about a pod: (reason, note).
    pub fn events_for(&self, name: &str) -> Vec<(String, String)> {
        let (_, events) = self.api().list(Resource::Events, None);
        events
            .iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| (e["reason"].as_str().unwrap_or("").to_owned(), e["note"].as_str().unwrap_or("").to_owned()))
            .collect()
    }
}
