//! The end-to-end suite: the user-visible scenarios against any cluster, with the real
//! `ib-kubernetes run` processes as the controller under test.
//!
//! Settings (environment variables; README, "Checking a cluster before a rollout"):
//! - `IB_E2E_KUBECONFIG`: the cluster. Unset: a fresh Kubernetes emulator with its simulated kubelet
//!   (nodes `node-01`…) is started in this process.
//! - `IB_E2E_CONTROLLER_KUBECONFIG`: the identity the controllers run as (default: `IB_E2E_KUBECONFIG`).
//!   Where the project's admission policy is installed, only the controller's ServiceAccount may write
//!   the configured marker: give a kubeconfig of that ServiceAccount here.
//! - `IB_E2E_SM`: `ufm` (default; a UFM emulator is started and every membership is checked in it) or
//!   `noop` (no subnet manager; GUIDs and ownership records only).
//! - `IB_E2E_NODE`: the node the suite's pods are bound to (`spec.nodeName`); default the first Ready,
//!   schedulable node of the cluster's Node list.
//! - `IB_E2E_IMAGE`: the pods' image (default `registry.k8s.io/pause:3.10`).
//! - `KUBE_PYTHON`: the interpreter with the official Kubernetes Python client for the Python part
//!   (default `python3`); the part prints SKIP when it cannot import the client.
//!
//! Everything happens in a fresh namespace `ib-e2e-<random>`, deleted at the end even on failure,
//! with NADs of its own; the controllers watch only that namespace (`WATCH_NAMESPACE`), hold their
//! Lease there and use a random 256-GUID range of their own, whose ownership records (`GuidBlock`s)
//! are deleted at the end. The suite refuses to run while any live ib-kubernetes leader Lease exists
//! in the cluster: a deployed controller watching every namespace would configure the suite's pods too.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use kube::api::PostParams;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

/// Generous: the suite must pass on a loaded two-core machine and on slow clusters; a correct
/// controller is far quicker.
const DEADLINE: Duration = Duration::from_secs(120);
/// Between two reads of a condition being waited for.
const POLL: Duration = Duration::from_millis(250);
use ib_controller::leader::LEASE_NAME;
const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const CONFIGURED: &str = "configured";
const PKEY_A: u16 = 0x0e21;
const PKEY_B: u16 = 0x0e22;
/// The NAD the Python part creates.
const PKEY_PY: u16 = 0x0e23;
/// Short lease timings so that a failover is quick (the defaults take about 15 s).
const LEASE_ENV: [(&str, &str); 3] =
    [("LEADER_LEASE_DURATION", "4"), ("LEADER_RENEW_DEADLINE", "3"), ("LEADER_RETRY_PERIOD", "1")];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SmMode {
    Noop,
    Ufm,
}

/// The UFM emulator the suite starts with `IB_E2E_SM=ufm`.
struct Fabric {
    ufm: ufm_emulator::RunningUfm,
    password: String,
}

impl Fabric {
    /// GUIDs (16 lower-case hex digits) that are members of `pkey`.
    fn members(&self, pkey: u16) -> BTreeSet<String> {
        self.ufm.handle().members(pkey).keys().map(|g| g.to_string()).collect()
    }
}

/// The emulated cluster started when no kubeconfig is given.
struct Emulated {
    kube: kube_emulator::RunningEmulator,
    _kubelet: ib_sim::Kubelet,
}

/// One `ib-kubernetes run` process.
struct Replica {
    name: String,
    child: tokio::process::Child,
    log: PathBuf,
}

/// Everything a run uses, and what it must clean up.
struct Suite {
    dir: tempfile::TempDir,
    emulated: Option<Emulated>,
    fabric: Option<Fabric>,
    kubeconfig: PathBuf,
    /// What the controllers run with.
    controller_kubeconfig: PathBuf,
    client: Client,
    namespace: String,
    /// Whether the namespace was created (an API server without a namespaces resource, like the
    /// emulator, takes any namespace name).
    namespace_created: bool,
    node: String,
    image: String,
    range_start: u64,
    replicas: Vec<Replica>,
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

/// The colon form of a GUID.
fn colon(guid: u64) -> String {
    guid.to_be_bytes().iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Any written form of a GUID, as 16 lower-case hex digits.
fn plain(guid: &str) -> String {
    guid.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase()
}

fn nad_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

fn guidblock_resource() -> ApiResource {
    use ib_controller::records::{GROUP, KIND, PLURAL, VERSION};
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

fn crd_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    )
}

async fn client_for(kubeconfig: &Path) -> Client {
    let config = Kubeconfig::read_from(kubeconfig).unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
    let mut config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    // Every request bounded (the suite never watches from Rust), so that a hung API server fails a
    // step with a timeout instead of stalling the run.
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    config.write_timeout = Some(Duration::from_secs(60));
    Client::try_from(config).expect("client")
}

/// Waits until `check` returns `Some`, reading again every [`POLL`], for at most [`DEADLINE`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {}s waiting for {what}", DEADLINE.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every live ib-kubernetes leader Lease of the cluster, as `namespace/name held by X`. A Lease is live
/// while it has a holder and its last renewal is younger than its duration.
async fn live_leader_leases(client: &Client) -> Result<Vec<String>, String> {
    let leases: Api<Lease> = Api::all(client.clone());
    let list = leases.list(&ListParams::default()).await.map_err(|e| format!("listing Leases: {e}"))?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut live = Vec::new();
    for lease in list.items {
        if lease.metadata.name.as_deref() != Some(LEASE_NAME) {
            continue;
        }
        let value = serde_json::to_value(&lease).unwrap_or(Value::Null);
        let holder = value.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or("");
        let duration = value.pointer("/spec/leaseDurationSeconds").and_then(Value::as_i64).unwrap_or(0);
        let renewed = value
            .pointer("/spec/renewTime")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
        let fresh = renewed.is_some_and(|t| now.as_second() - t.as_second() < duration.max(0));
        if !holder.is_empty() && fresh {
            live.push(format!("{}/{LEASE_NAME} held by {holder:?}", lease.metadata.namespace.as_deref().unwrap_or("")));
        }
    }
    Ok(live)
}

/// Refuses a cluster where another ib-kubernetes leads: it would configure the suite's pods too (a
/// controller watching every namespace), and two controllers would fight over them.
async fn preflight(client: &Client) -> Result<(), String> {
    let live = live_leader_leases(client).await?;
    if live.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "refusing to run: the cluster has a live ib-kubernetes leader Lease ({}); a running controller would \
             act on the suite's pods too. Run the suite before deploying, or scale that Deployment to 0 first",
            live.join(", ")
        ))
    }
}

/// Whether the API server serves `plural` in `group_version` (`v1` for the core group).
async fn served(client: &Client, group_version: &str, plural: &str) -> bool {
    let path = if group_version == "v1" { "/api/v1".to_owned() } else { format!("/apis/{group_version}") };
    let request = http_get(&path);
    match client.request::<Value>(request).await {
        Ok(list) => list["resources"].as_array().is_some_and(|r| r.iter().any(|x| x["name"] == plural)),
        Err(_) => false,
    }
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).expect("request")
}

/// Installs the CRDs the suite needs when the cluster does not serve them (the NAD CRD of
/// deployment/examples/ib-crd.yaml, the GuidBlock CRD of deployment/ib-kubernetes-crd.yaml), and
/// waits until they are served.
async fn install_crds(client: &Client) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (group_version, plural, file) in [
        ("k8s.cni.cncf.io/v1", "network-attachment-definitions", "deployment/examples/ib-crd.yaml"),
        ("ib-kubernetes.mellanox.com/v1alpha1", "guidblocks", "deployment/ib-kubernetes-crd.yaml"),
    ] {
        if served(client, group_version, plural).await {
            continue;
        }
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        let crd: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parsing {file}: {e}"));
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource());
        let object: DynamicObject = serde_json::from_value(crd).expect("a CRD object");
        println!("e2e: installing the CRD {} from {file}", object.metadata.name.as_deref().unwrap_or(""));
        api.create(&PostParams::default(), &object).await.unwrap_or_else(|e| panic!("creating the CRD of {file}: {e}"));
        wait_for(&format!("{group_version} {plural} to be served"), || async {
            served(client, group_version, plural).await.then_some(())
        })
        .await;
    }
}

/// The node for the suite's pods: `IB_E2E_NODE`, else the first Ready, schedulable node by name.
async fn pick_node(client: &Client) -> String {
    if let Ok(node) = std::env::var("IB_E2E_NODE")
        && !node.is_empty()
    {
        return node;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.expect("listing Nodes");
    let mut ready: Vec<String> = list
        .items
        .iter()
        .filter(|n| !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false))
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    ready.sort();
    ready.into_iter().next().expect("the cluster has no Ready, schedulable node; set IB_E2E_NODE")
}

impl Suite {
    async fn start() -> Suite {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sm = match std::env::var("IB_E2E_SM").as_deref() {
            Err(_) | Ok("") | Ok("ufm") => SmMode::Ufm,
            Ok("noop") => SmMode::Noop,
            Ok(other) => panic!("IB_E2E_SM={other:?}: must be ufm or noop"),
        };
        let (emulated, kubeconfig) = match std::env::var("IB_E2E_KUBECONFIG") {
            Ok(path) if !path.is_empty() => (None, PathBuf::from(path)),
            _ => {
                let kube = kube_emulator::KubeEmulator::start(kube_emulator::EmulatorConfig::default())
                    .await
                    .expect("the Kubernetes emulator starts");
                let path = dir.path().join("kubeconfig");
                kube.write_kubeconfig(&path).expect("kubeconfig written");
                let kubelet =
                    ib_sim::Kubelet::start_with(kube.handle(), ib_sim::kubelet::KubeletOptions { record_events: true });
                (Some(Emulated { kube, _kubelet: kubelet }), path)
            }
        };
        let fabric = match sm {
            SmMode::Noop => None,
            SmMode::Ufm => {
                let password = format!("e2e-{:016x}", random_u64());
                let ufm = ufm_emulator::UfmEmulator::start(
                    ufm_emulator::UfmConfig::http().with_credentials("admin", password.clone()),
                )
                .await
                .expect("the UFM emulator starts");
                Some(Fabric { ufm, password })
            }
        };
        let controller_kubeconfig = match std::env::var("IB_E2E_CONTROLLER_KUBECONFIG") {
            Ok(path) if !path.is_empty() => PathBuf::from(path),
            _ => kubeconfig.clone(),
        };
        let client = client_for(&kubeconfig).await;
        if let Err(refusal) = preflight(&client).await {
            panic!("{refusal}");
        }
        install_crds(&client).await;
        let node = pick_node(&client).await;
        let image = std::env::var("IB_E2E_IMAGE")
            .ok()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| "registry.k8s.io/pause:3.10".to_owned());
        let random = random_u64();
        let namespace = format!("ib-e2e-{:08x}", random as u32);
        // 256 GUIDs of their own, 02:e2:xx:xx:xx:xx:00:00 onwards.
        let range_start = 0x02e2_0000_0000_0000 | ((random >> 32) & 0xffff_ffff) << 16;
        let mut suite = Suite {
            dir,
            emulated,
            fabric,
            kubeconfig,
            controller_kubeconfig,
            client,
            namespace,
            namespace_created: false,
            node,
            image,
            range_start,
            replicas: Vec::new(),
        };
        suite.create_namespace().await;
        println!(
            "e2e: cluster {}, subnet manager {sm:?}, namespace {}, node {}, GUIDs {}..{}",
            if suite.emulated.is_some() { "emulated".to_owned() } else { suite.kubeconfig.display().to_string() },
            suite.namespace,
            suite.node,
            colon(suite.range_start),
            colon(suite.range_end())
        );
        suite
    }

    fn range_end(&self) -> u64 {
        self.range_start + 0xff
    }

    async fn create_namespace(&mut self) {
        if !served(&self.client, "v1", "namespaces").await {
            println!("e2e: note: the API server serves no namespaces resource; {} is used as is", self.namespace);
            return;
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let object: Namespace = serde_json::from_value(json!({
            "metadata": {"name": self.namespace, "labels": {"app.kubernetes.io/created-by": "ib-kubernetes-e2e"}}
        }))
        .expect("namespace");
        // A fresh random name; an existing namespace is someone else's and is never reused.
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("creating the namespace {}: {e}", self.namespace));
        self.namespace_created = true;
        // Pods need their namespace's `default` ServiceAccount, which a cluster's controller manager
        // creates shortly after the namespace; an API server without one (or slower than the first pod)
        // would refuse the pods. Creating it is harmless either way: whoever comes second gets 409.
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        let account: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("account");
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("creating the ServiceAccount {}/default: {e}", self.namespace),
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn nads(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &nad_resource())
    }

    // === controllers ===

    fn spawn(&mut self, name: &str) {
        let log = self.dir.path().join(format!("controller-{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ib-kubernetes"));
        command.arg("run").env_clear();
        // Kubeconfig credential plugins need these.
        for key in ["PATH", "HOME", "USER"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command
            .env("KUBECONFIG", &self.controller_kubeconfig)
            .env("K8S_NODE", "e2e")
            .env("POD_UID", name)
            .env("POD_NAMESPACE", &self.namespace)
            .env("WATCH_NAMESPACE", &self.namespace)
            .env("GUID_POOL_RANGE_START", colon(self.range_start))
            .env("GUID_POOL_RANGE_END", colon(self.range_end()))
            .env("ADMIN_ADDRESS", "127.0.0.1:0")
            .env("DAEMON_PERIODIC_UPDATE", "1")
            .envs(LEASE_ENV);
        match &self.fabric {
            None => {
                command.env("DAEMON_SM_PLUGIN", "noop");
            }
            Some(fabric) => {
                command
                    .env("DAEMON_SM_PLUGIN", "ufm")
                    .env("UFM_USERNAME", "admin")
                    .env("UFM_PASSWORD", &fabric.password)
                    .env("UFM_ADDRESS", "127.0.0.1")
                    .env("UFM_PORT", fabric.ufm.addr().port().to_string())
                    .env("UFM_HTTP_SCHEMA", "http");
            }
        }
        let stderr = file.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("the ib-kubernetes binary starts");
        self.replicas.push(Replica { name: name.to_owned(), child, log });
    }

    /// SIGKILL: the lease is not released and must expire.
    async fn kill(&mut self, name: &str) {
        let index = self.replicas.iter().position(|r| r.name == name).expect("a running replica");
        let mut replica = self.replicas.remove(index);
        let _ = replica.child.start_kill();
        let _ = tokio::time::timeout(DEADLINE, replica.child.wait()).await;
        println!("e2e: killed controller {name}");
    }

    /// The replica named by the live Lease in the suite's namespace.
    async fn leader(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let lease = leases.get_opt(LEASE_NAME).await.ok()??;
        let holder = lease.spec?.holder_identity?;
        let name = holder.strip_prefix("e2e_")?;
        self.replicas.iter().any(|r| r.name == name).then(|| name.to_owned())
    }

    async fn wait_leader(&mut self) -> String {
        let mut exited = Vec::new();
        for replica in &mut self.replicas {
            if let Ok(Some(status)) = replica.child.try_wait() {
                exited.push(format!("{} exited with {status}", replica.name));
            }
        }
        assert!(exited.is_empty(), "controllers exited: {exited:?}\n{}", self.logs());
        wait_for("a running controller to lead", || self.leader()).await
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for replica in &self.replicas {
            let text = std::fs::read_to_string(&replica.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- controller {} (last lines of {})\n", replica.name, replica.log.display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    // === objects ===

    async fn nad(&self, name: &str, config: &str) {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"config": config},
        }))
        .expect("NAD");
        self.nads()
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("creating NAD {name}: {e}"));
    }

    async fn pod(&self, name: &str, networks: &str) -> String {
        let object: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": self.namespace, "annotations": {NETWORKS: networks}},
            "spec": {
                "nodeName": self.node,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": self.image}],
            },
        }))
        .expect("pod");
        let created = self
            .pods()
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("creating pod {name}: {e}"));
        created.metadata.uid.expect("uid")
    }

    async fn delete_pod(&self, name: &str) {
        let params = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
        self.pods().delete(name, &params).await.unwrap_or_else(|e| panic!("deleting pod {name}: {e}"));
    }

    async fn finish_pod(&self, name: &str, phase: &str) {
        let patch = Patch::Merge(json!({"status": {"phase": phase}}));
        self.pods()
            .patch_status(name, &PatchParams::default(), &patch)
            .await
            .unwrap_or_else(|e| panic!("setting pod {name} {phase}: {e}"));
    }

    /// The pod's networks annotation, parsed; `None` while the pod is missing.
    async fn networks(&self, name: &str) -> Option<Value> {
        let pod = self.pods().get_opt(name).await.ok()??;
        let text = pod.metadata.annotations.and_then(|mut a| a.remove(NETWORKS)).unwrap_or_default();
        Some(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Waits until the pod's `elements` networks all read configured; returns their GUIDs.
    async fn wait_configured(&self, name: &str, elements: usize) -> Vec<String> {
        wait_for(&format!("pod {name} to be configured ({elements} interfaces)"), || async move {
            let nets = self.networks(name).await?;
            let nets = nets.as_array()?;
            let guids: Vec<String> = nets
                .iter()
                .filter(|e| e["cni-args"]["mellanox.infiniband.app"] == CONFIGURED)
                .filter_map(|e| e["cni-args"]["guid"].as_str().map(plain))
                .collect();
            (guids.len() == elements && nets.len() == elements).then_some(guids)
        })
        .await
    }

    /// GUIDs held in the ownership records of the suite's range, with their pod's name.
    async fn records(&self) -> BTreeSet<(String, String)> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &guidblock_resource());
        let mut held = BTreeSet::new();
        for block in self.own_blocks().await {
            let Ok(object) = api.get(&block).await else { continue };
            if let Some(allocations) = object.data["spec"]["allocations"].as_object() {
                for (guid, a) in allocations {
                    held.insert((plain(guid), a["pod"].as_str().unwrap_or("").to_owned()));
                }
            }
        }
        held
    }

    /// Names of the GuidBlocks of the suite's range that exist.
    async fn own_blocks(&self) -> Vec<String> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &guidblock_resource());
        let Ok(list) = api.list(&ListParams::default()).await else { return Vec::new() };
        list.items
            .into_iter()
            .filter_map(|b| b.metadata.name)
            .filter(|name| {
                u64::from_str_radix(name, 16).is_ok_and(|start| start >= self.range_start && start <= self.range_end())
            })
            .collect()
    }

    /// Waits until `guid` is held in the records by `pod` (and, with UFM, a member of `pkey`).
    async fn wait_held(&self, guid: &str, pod: &str, pkey: u16) {
        wait_for(&format!("GUID {guid} recorded for {pod} and a member of {pkey:#06x}"), || async move {
            let recorded = self.records().await.contains(&(guid.to_owned(), pod.to_owned()));
            let member = self.fabric.as_ref().is_none_or(|f| f.members(pkey).contains(guid));
            (recorded && member).then_some(())
        })
        .await;
    }

    /// Waits until `guid` is in no record (and, with UFM, in no member list of `pkey`).
    async fn wait_released(&self, guid: &str, pkey: u16) {
        wait_for(&format!("GUID {guid} released from the records and {pkey:#06x}"), || async move {
            let recorded = self.records().await.iter().any(|(g, _)| g == guid);
            let member = self.fabric.as_ref().is_some_and(|f| f.members(pkey).contains(guid));
            (!recorded && !member).then_some(())
        })
        .await;
    }

    /// The controller's Events about `pod` (events.k8s.io/v1): (reason, note).
    async fn events(&self, pod: &str) -> Vec<(String, String)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let Ok(list) = api.list(&ListParams::default()).await else { return Vec::new() };
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
            .filter(|e| e.reporting_controller.as_deref() == Some("ib-kubernetes"))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    async fn wait_event(&self, pod: &str, reason: &str, words: &[&str]) -> String {
        wait_for(&format!("a {reason} Event about {pod} naming {words:?}"), || async move {
            let events = self.events(pod).await;
            events
                .into_iter()
                .find(|(r, note)| r == reason && words.iter().all(|w| note.contains(w)))
                .map(|(_, note)| note)
        })
        .await
    }

    // === clean-up ===

    /// Stops the controllers, deletes the namespace (and with it the pods, NADs, Events and Lease) and
    /// the GuidBlocks of the suite's range. Best effort: every step is tried and failures are printed.
    async fn clean_up(&mut self) {
        // SIGTERM first: a controller that stops cleanly releases its Lease, so the next run of the suite
        // is not refused while the namespace is still being deleted.
        for replica in &self.replicas {
            if let Some(pid) = replica.child.id() {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
        }
        for mut replica in self.replicas.drain(..) {
            if tokio::time::timeout(DEADLINE, replica.child.wait()).await.is_err() {
                let _ = replica.child.start_kill();
                let _ = tokio::time::timeout(DEADLINE, replica.child.wait()).await;
            }
        }
        let delete = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
        // The Lease goes now, not with the namespace: a namespace is deleted only once the cluster's
        // namespace controller has emptied it.
        match Api::<Lease>::namespaced(self.client.clone(), &self.namespace).delete(LEASE_NAME, &delete).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => println!("e2e: could not delete the Lease: {e}"),
        }
        if self.namespace_created {
            let api: Api<Namespace> = Api::all(self.client.clone());
            if let Err(e) = api.delete(&self.namespace, &delete).await {
                println!("e2e: could not delete the namespace {}: {e}", self.namespace);
            }
        } else {
            // No namespace object to delete: remove what the suite and its controllers created in it.
            let all = ListParams::default();
            let ns = &self.namespace;
            let results = [
                self.pods().delete_collection(&delete, &all).await.err(),
                self.nads().delete_collection(&delete, &all).await.err(),
                Api::<Event>::namespaced(self.client.clone(), ns).delete_collection(&delete, &all).await.err(),
                Api::<k8s_openapi::api::core::v1::Event>::namespaced(self.client.clone(), ns)
                    .delete_collection(&delete, &all)
                    .await
                    .err(),
                Api::<Lease>::namespaced(self.client.clone(), ns).delete(LEASE_NAME, &delete).await.err(),
            ];
            for error in results.into_iter().flatten() {
                println!("e2e: clean-up in {ns}: {error}");
            }
        }
        let blocks: Api<DynamicObject> = Api::all_with(self.client.clone(), &guidblock_resource());
        for block in self.own_blocks().await {
            if let Err(e) = blocks.delete(&block, &DeleteParams::default()).await {
                println!("e2e: could not delete the GuidBlock {block}: {e}");
            }
        }
        println!("e2e: cleaned up namespace {} and the GuidBlocks of its range", self.namespace);
    }
}

fn ib_config(name: &str, pkey: u16) -> String {
    json!({"cniVersion": "0.3.1", "type": "ib-sriov", "name": name, "pkey": format!("{pkey:#06x}"), "link_state": "enable"})
        .to_string()
}

/// The Kubernetes Python client, if importable.
fn python() -> Option<String> {
    let candidate = std::env::var("KUBE_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".to_owned());
    let ok = std::process::Command::new(&candidate)
        .args(["-c", "import kubernetes"])
        .output()
        .is_ok_and(|out| out.status.success());
    ok.then_some(candidate)
}

async fn scenarios(suite: &mut Suite) {
    let step = |name: &str| println!("e2e: === {name}");
    suite.nad("e2e-ib", &ib_config("e2e-ib", PKEY_A)).await;
    suite.nad("e2e-ib2", &ib_config("e2e-ib2", PKEY_B)).await;
    suite.spawn("a");
    assert_eq!(suite.wait_leader().await, "a");

    step("a pod is configured: GUID and marker in its annotation, recorded, a member of its partition");
    suite.pod("single", "e2e-ib").await;
    let single = suite.wait_configured("single", 1).await;
    suite.wait_held(&single[0], "single", PKEY_A).await;
    let g = u64::from_str_radix(&single[0], 16).expect("a GUID");
    assert!((suite.range_start..=suite.range_end()).contains(&g), "{} outside the suite's range", single[0]);

    step("a multi-interface pod gets one GUID per interface, in each partition");
    suite.pod("multi", "e2e-ib, e2e-ib2").await;
    let multi = suite.wait_configured("multi", 2).await;
    assert_ne!(multi[0], multi[1]);
    let nets = suite.networks("multi").await.expect("multi exists");
    let by_name: Vec<&str> = nets.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap_or("")).collect();
    assert_eq!(by_name, ["e2e-ib", "e2e-ib2"]);
    suite.wait_held(&multi[0], "multi", PKEY_A).await;
    suite.wait_held(&multi[1], "multi", PKEY_B).await;

    step("a requested GUID is honoured");
    let wanted = colon(suite.range_start + 0x80);
    let request = format!(r#"[{{"name":"e2e-ib","cni-args":{{"guid":"{wanted}"}}}}]"#);
    suite.pod("requester", &request).await;
    let got = suite.wait_configured("requester", 1).await;
    assert_eq!(got, [plain(&wanted)]);
    suite.wait_held(&got[0], "requester", PKEY_A).await;

    step("no stealing: a second pod asking for a GUID in use waits, told why, and gets nothing");
    suite.pod("thief", &request).await;
    let note = suite.wait_event("thief", "GUIDInUse", &[&wanted]).await;
    println!("e2e: thief was told: {note}");
    let nets = suite.networks("thief").await.expect("thief exists");
    assert!(
        nets.as_array().is_some_and(|a| a.iter().all(|e| e["cni-args"].get("mellanox.infiniband.app").is_none())),
        "the thief must stay unconfigured: {nets}"
    );
    suite.wait_held(&got[0], "requester", PKEY_A).await;

    step("a deleted pod releases its GUID; the waiting pod then gets it");
    suite.delete_pod("requester").await;
    let thief = suite.wait_configured("thief", 1).await;
    assert_eq!(thief, [plain(&wanted)]);
    suite.wait_held(&thief[0], "thief", PKEY_A).await;

    step("finished pods (Succeeded, Failed) release their GUIDs and memberships");
    suite.finish_pod("single", "Succeeded").await;
    suite.wait_released(&single[0], PKEY_A).await;
    suite.finish_pod("thief", "Failed").await;
    suite.wait_released(&thief[0], PKEY_A).await;

    step("a bad NAD and a bad annotation each give an Event with the reason and the field and value");
    suite.nad("e2e-bad", &ib_config("e2e-bad", 0x8001)).await;
    suite.pod("bad-nad", "e2e-bad").await;
    suite.wait_event("bad-nad", "InvalidNetwork", &["e2e-bad", "pkey", "0x8001"]).await;
    suite.pod("bad-annotation", r#"[{"name":"e2e-ib","cni-args":{"guid":"02:e2:not-a-guid"}}]"#).await;
    suite.wait_event("bad-annotation", "InvalidGUID", &["guid", "02:e2:not-a-guid"]).await;
    for name in ["bad-nad", "bad-annotation"] {
        let nets = suite.networks(name).await.expect("pod exists");
        let text = nets.to_string();
        assert!(!text.contains("mellanox.infiniband.app"), "{name} must stay unconfigured: {text}");
    }

    step("restart: the controller is killed, things change, a new one converges");
    suite.kill("a").await;
    suite.pod("while-down", "e2e-ib").await;
    suite.delete_pod("multi").await;
    suite.spawn("a2");
    assert_eq!(suite.wait_leader().await, "a2");
    let while_down = suite.wait_configured("while-down", 1).await;
    suite.wait_held(&while_down[0], "while-down", PKEY_A).await;
    suite.wait_released(&multi[0], PKEY_A).await;
    suite.wait_released(&multi[1], PKEY_B).await;

    step("failover: two controllers, the leader is killed, the other takes over and configures new pods");
    suite.spawn("b");
    suite.kill("a2").await;
    suite.spawn("c");
    let first = suite.wait_leader().await;
    suite.kill(&first).await;
    suite.pod("after-failover", "e2e-ib, e2e-ib2").await;
    let after = suite.wait_configured("after-failover", 2).await;
    let second = suite.wait_leader().await;
    assert_ne!(first, second, "the killed leader cannot lead");
    suite.wait_held(&after[0], "after-failover", PKEY_A).await;
    suite.wait_held(&after[1], "after-failover", PKEY_B).await;
    // The configured pod of before the failover kept its GUID and membership.
    suite.wait_held(&while_down[0], "while-down", PKEY_A).await;

    step("the official Kubernetes Python client drives the same controller");
    match python() {
        None => println!(
            "SKIP: the Python part: the kubernetes Python client is not importable (set KUBE_PYTHON; .ci/run installs it)"
        ),
        Some(python) => python_part(suite, &python).await,
    }
}

async fn python_part(suite: &Suite, python: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/e2e_client.py");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(&script)
        .arg("--kubeconfig")
        .arg(&suite.kubeconfig)
        .args(["--namespace", &suite.namespace, "--node", &suite.node, "--image", &suite.image])
        .args(["--pkey", &format!("{PKEY_PY:#06x}")])
        // The script imports its sibling check_client.py; no bytecode cache in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    if suite.emulated.is_some() {
        // The emulator sends a bookmark every few seconds; a real API server decides when it sends one.
        command.arg("--expect-bookmark");
    }
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("the Python part finished within 5 minutes")
        .expect("the Python part ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the Python part failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // The pod the script configured and deleted gave its GUID back.
    let guid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("configured-guid "))
        .map(plain)
        .expect("the script reports the GUID it saw configured");
    let g = u64::from_str_radix(&guid, 16).expect("a GUID");
    assert!((suite.range_start..=suite.range_end()).contains(&g), "{guid} outside the suite's range");
    suite.wait_released(&guid, PKEY_PY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end() {
    let mut suite = Suite::start().await;
    let outcome = std::panic::AssertUnwindSafe(scenarios(&mut suite)).catch_unwind().await;
    if outcome.is_err() {
        eprintln!("{}", suite.logs());
    }
    suite.clean_up().await;
    let emulated = suite.emulated.take();
    let fabric = suite.fabric.take();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    if let Some(emulated) = emulated {
        emulated.kube.shutdown().await;
    }
    if let Some(fabric) = fabric {
        fabric.ufm.shutdown().await;
    }
}

/// The suite's own safety check: with a live leader Lease anywhere in the cluster it refuses, naming
/// the Lease and its holder; an expired or released one does not stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_cluster_with_a_live_leader() {
    let kube = kube_emulator::KubeEmulator::start(kube_emulator::EmulatorConfig::default()).await.expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&path).unwrap();
    let client = client_for(&path).await;
    assert_eq!(preflight(&client).await, Ok(()));

    let lease = |namespace: &str, holder: &str, renewed: k8s_openapi::jiff::Timestamp| {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": namespace},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
        })
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let old = now - k8s_openapi::jiff::SignedDuration::from_secs(600);
    for (namespace, holder, renewed) in [("stale", "node-1_x", old), ("released", "", now)] {
        kube.handle().create(kube_emulator::Resource::Leases, lease(namespace, holder, renewed)).unwrap();
    }
    assert_eq!(preflight(&client).await, Ok(()), "expired and released Leases are no reason to refuse");
    kube.handle().create(kube_emulator::Resource::Leases, lease("prod", "node-7_abc", now)).unwrap();
    let refusal = preflight(&client).await.unwrap_err();
    assert!(refusal.contains("prod/ib-kubernetes-leader") && refusal.contains("node-7_abc"), "{refusal}");
    kube.shutdown().await;
}
