//! One chaos run: the emulators in this process, controller replicas as child processes of the real
//! binary, pods churning over several PKeys while faults are injected at random from a seed, then the
//! invariants of [`crate::invariants`] checked once the faults stop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ib_model::{Guid, NetworksAnnotation, PKey};
use ib_sim::rng::SplitMix64;
use kube_emulator::{EmulatorConfig, EmulatorHandle, Fault, FaultRule, KubeEmulator, Resource, RunningEmulator};
use serde_json::json;
use ufm_emulator::{Endpoint, Method, RunningUfm, UfmEmulator};

use crate::invariants::{self, LiveInterface};
use crate::replicas::{ReplicaSet, ReplicaSettings};

const NAMESPACE: &str = "chaos";
const UFM_USER: &str = "admin";
/// Not a real credential: the emulator accepts what it is given.
const UFM_PASSWORD: &str = "chaos-soak-password";

#[derive(Clone, Debug)]
pub struct SoakOptions {
    pub seed: u64,
    /// Pods created during the run.
    pub pods: usize,
    /// Partitions the pods spread over (plus one GUID-only network).
    pub pkeys: u32,
    pub replicas: usize,
    /// How long faults and churn go on.
    pub fault_time: Duration,
    /// How long the controllers get to converge once faults stop.
    pub converge_deadline: Duration,
    /// The `ib-kubernetes` binary the replicas run.
    pub controller: PathBuf,
    /// Where kubeconfig and replica logs go.
    pub work_dir: PathBuf,
    /// Kill replicas at random (SIGKILL) and restart them.
    pub kills: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SoakReport {
    pub seed: u64,
    pub pods_created: usize,
    pub pods_live: usize,
    pub interfaces_configured: usize,
    pub faults: BTreeMap<String, usize>,
    pub kills: usize,
    /// From the end of the faults until invariants 1 and 2 held; `None` if they never did.
    pub converge_seconds: Option<f64>,
    pub violations: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("starting the Kubernetes emulator: {0}")]
    Kube(#[from] kube_emulator::StartError),
    #[error("starting the UFM emulator: {0}")]
    Ufm(#[from] ufm_emulator::StartError),
    #[error("work directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("seeding the cluster: {0}")]
    Api(#[from] kube_emulator::ApiError),
    #[error("starting a controller replica: {0}")]
    Replica(#[from] crate::replicas::ReplicaError),
}

/// The cluster under test and what the run did to it.
struct World {
    kube: RunningEmulator,
    ufm: RunningUfm,
    sequence: Arc<AtomicU64>,
    rng: SplitMix64,
    /// NAD name → its pkey (`None`: GUID-only).
    networks: Vec<(String, Option<PKey>)>,
    live: Vec<(String, String)>,
    /// Pod uid → order number taken just before the pod was deleted or finished.
    ends: BTreeMap<String, u64>,
    created: usize,
    faults: BTreeMap<String, usize>,
}

pub async fn run(options: &SoakOptions) -> Result<SoakReport, SoakError> {
    let io = |source| SoakError::Io { path: options.work_dir.clone(), source };
    std::fs::create_dir_all(&options.work_dir).map_err(io)?;
    let sequence = Arc::new(AtomicU64::new(0));
    let kube = KubeEmulator::start(EmulatorConfig {
        sequence: Some(sequence.clone()),
        // Every request stays in the log: invariants 3 and 4 are read from it.
        request_log_capacity: usize::MAX,
        ..EmulatorConfig::default()
    })
    .await?;
    let ufm = UfmEmulator::start(
        ufm_emulator::UfmConfig::http().with_credentials(UFM_USER, UFM_PASSWORD).with_sequence(sequence.clone()),
    )
    .await?;
    let kubeconfig = options.work_dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).map_err(io)?;

    let mut world = World {
        kube,
        ufm,
        sequence,
        rng: SplitMix64::new(options.seed),
        networks: Vec::new(),
        live: Vec::new(),
        ends: BTreeMap::new(),
        created: 0,
        faults: BTreeMap::new(),
    };
    world.create_networks(options.pkeys)?;

    let settings = ReplicaSettings {
        binary: options.controller.clone(),
        work_dir: options.work_dir.clone(),
        kubeconfig,
        ufm_port: world.ufm.addr().port(),
        ufm_user: UFM_USER.into(),
        ufm_password: UFM_PASSWORD.into(),
    };
    let mut replicas = ReplicaSet::start(settings, options.replicas)?;

    // Churn and faults.
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < options.fault_time {
        match world.rng.weighted(&[10, 3, 2, 6, if options.kills { 1 } else { 0 }]) {
            0 if world.created < options.pods => world.create_pod()?,
            1 => world.end_pod(false),
            2 => world.end_pod(true),
            3 => world.inject_fault(),
            4 => {
                let victim = world.rng.below(options.replicas as u64) as usize;
                replicas.kill(victim);
                kills += 1;
                // Restarted after a pause, like a container restart with backoff.
                tokio::time::sleep(Duration::from_millis(200 + world.rng.below(1500))).await;
                replicas.restart(victim)?;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(5 + world.rng.below(40))).await;
    }
    // Every pod asked for is created, then the faults stop.
    while world.created < options.pods {
        world.create_pod()?;
    }
    world.stop_faults();
    replicas.ensure_running()?;
    let quiet = Instant::now();

    // Convergence: invariants 1 and 2 hold.
    let mut converge_seconds = None;
    let mut last = Vec::new();
    while quiet.elapsed() < options.converge_deadline {
        let live = world.live_interfaces();
        last = invariants::live_interfaces_configured(&live);
        last.extend(invariants::membership_matches(&live, &world.members()));
        if last.is_empty() {
            converge_seconds = Some(quiet.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut violations = last;
    let (patches, changes) = world.logged_history();
    violations.extend(invariants::configured_after_membership(&patches, &changes));
    violations.extend(invariants::never_two_owners(&patches, &world.ends));

    let live = world.live_interfaces();
    let report = SoakReport {
        seed: options.seed,
        pods_created: world.created,
        pods_live: world.live.len(),
        interfaces_configured: live.iter().filter(|i| i.configured.is_some()).count(),
        faults: world.faults.clone(),
        kills,
        converge_seconds,
        violations,
    };
    replicas.stop_all();
    world.kube.shutdown().await;
    world.ufm.shutdown().await;
    Ok(report)
}

impl World {
    fn api(&self) -> EmulatorHandle {
        self.kube.handle()
    }

    fn create_networks(&mut self, pkeys: u32) -> Result<(), SoakError> {
        for i in 0..pkeys {
            let pkey = PKey::new(0x10 + i).ok();
            let config = json!({"type": "ib-sriov", "cniVersion": "0.3.1", "pkey": format!("0x{:x}", 0x10 + i)});
            self.networks.push((format!("ib-{i}"), pkey));
            self.create_nad(&format!("ib-{i}"), &config.to_string())?;
        }
        self.networks.push(("guid-only".into(), None));
        self.create_nad("guid-only", r#"{"type":"ib-sriov","cniVersion":"0.3.1"}"#)?;
        Ok(())
    }

    fn create_nad(&self, name: &str, config: &str) -> Result<(), SoakError> {
        self.api().create(
            Resource::NetworkAttachmentDefinitions,
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"config": config}}),
        )?;
        Ok(())
    }

    fn create_pod(&mut self) -> Result<(), SoakError> {
        let name = format!("pod-{}", self.created);
        self.created += 1;
        let count = 1 + self.rng.below(2) as usize;
        let elements: Vec<serde_json::Value> = (0..count)
            .map(|k| {
                let (net, _) = &self.networks[self.rng.below(self.networks.len() as u64) as usize];
                json!({"name": net, "interface": format!("ib{k}")})
            })
            .collect();
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "annotations": {"k8s.v1.cni.cncf.io/networks": serde_json::Value::Array(elements).to_string()}},
            "spec": {"nodeName": format!("node-{}", self.rng.below(8)), "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Pending"}
        });
        let created = self.api().create(Resource::Pods, pod)?;
        let uid = created["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        self.live.push((name, uid));
        Ok(())
    }

    /// Deletes a random live pod, or lets it finish.
    fn end_pod(&mut self, finish: bool) {
        if self.live.is_empty() {
            return;
        }
        let i = self.rng.below(self.live.len() as u64) as usize;
        let (name, uid) = self.live.swap_remove(i);
        // Taken before the change: ownership ends no later than this.
        let order = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        self.ends.insert(uid, order);
        let api = self.api();
        let _ = if finish {
            api.mutate(Resource::Pods, NAMESPACE, &name, |p| p["status"]["phase"] = "Succeeded".into()).map(|_| ())
        } else {
            api.delete_with_grace(Resource::Pods, NAMESPACE, &name, Some(0)).map(|_| ())
        };
    }

    fn count(&mut self, fault: &str) {
        *self.faults.entry(fault.to_owned()).or_insert(0) += 1;
    }

    fn inject_fault(&mut self) {
        let fabric = self.ufm.handle();
        let api = self.api();
        let n = 1 + self.rng.below(4) as u32;
        match self.rng.below(11) {
            0 => {
                fabric.inject(
                    ufm_emulator::FaultRule::respond(Some(Method::POST), "/ufmRest/resources/pkeys*", 500, "{}")
                        .times(n),
                );
                self.count("ufm 500 on add");
            }
            1 => {
                fabric.inject(
                    ufm_emulator::FaultRule::respond(Some(Method::POST), "/ufmRest/actions/*", 503, "{}").times(n),
                );
                self.count("ufm 503 on remove");
            }
            2 => {
                fabric.inject(
                    ufm_emulator::FaultRule::respond(Some(Method::GET), "/ufmRest/resources/pkeys*", 500, "{}")
                        .times(n),
                );
                self.count("ufm 500 on list");
            }
            3 => {
                // Longer than the controllers' 2 s request timeout: the request may still apply.
                let hold = Duration::from_millis(500 + self.rng.below(3000));
                fabric.inject(ufm_emulator::FaultRule::hang(Some(Method::POST), "/ufmRest/*").at_most(hold).times(1));
                self.count("ufm hang");
            }
            4 => {
                api.inject_fault(FaultRule::new(Fault::InternalError).method("PATCH").times(n as usize));
                self.count("api 500 on patch");
            }
            5 => {
                api.inject_fault(FaultRule::new(Fault::ServiceUnavailable).method("PATCH").times(n as usize));
                self.count("api 503 on patch");
            }
            6 => {
                api.inject_fault(
                    FaultRule::new(Fault::TooManyRequests { retry_after_seconds: 1 }).method("PATCH").times(n as usize),
                );
                self.count("api 429 on patch");
            }
            7 => {
                if let Some((name, _)) = self.live.get(self.rng.below(self.live.len().max(1) as u64) as usize) {
                    api.force_conflict(Resource::Pods, NAMESPACE, name);
                    self.count("api 409 on a pod");
                }
            }
            8 => {
                api.drop_watches();
                self.count("watches dropped");
            }
            9 => {
                api.compact();
                api.drop_watches();
                self.count("history compacted (410)");
            }
            _ => {
                api.inject_fault(
                    FaultRule::new(Fault::InternalError).method("GET").query_contains("watch=true").times(n as usize),
                );
                self.count("api 500 on watch");
            }
        }
    }

    fn stop_faults(&self) {
        let fabric = self.ufm.handle();
        fabric.clear_faults();
        fabric.set_latency(Duration::ZERO);
        fabric.release_hung();
        let api = self.api();
        api.clear_faults();
        api.release_hung();
    }

    /// Every IB interface of every live pod, as the API server holds it now.
    fn live_interfaces(&self) -> Vec<LiveInterface> {
        let (_, pods) = self.api().list(Resource::Pods, Some(NAMESPACE));
        let mut out = Vec::new();
        for pod in pods {
            let phase = pod["status"]["phase"].as_str().unwrap_or("");
            if phase == "Succeeded" || phase == "Failed" || pod["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let raw = pod["metadata"]["annotations"][ib_model::annotation::NETWORKS_ANNOTATION].as_str().unwrap_or("");
            let Ok(annotation) = NetworksAnnotation::parse(raw, NAMESPACE) else {
                out.push(LiveInterface {
                    pod: name.into(),
                    network: "(unparsable)".into(),
                    configured: None,
                    pkey: None,
                });
                continue;
            };
            for s in annotation.selections() {
                let pkey = self.networks.iter().find(|(n, _)| *n == s.network.name).and_then(|(_, p)| *p);
                let configured =
                    if s.configured { s.guid.as_ref().and_then(|(t, _)| Guid::parse(t).ok()) } else { None };
                out.push(LiveInterface {
                    pod: name.into(),
                    network: format!("{} {}", s.network, s.interface),
                    configured,
                    pkey,
                });
            }
        }
        out
    }

    /// (pkey, GUID) UFM holds inside the default pool range, outside the management partition.
    fn members(&self) -> BTreeSet<(PKey, Guid)> {
        let range =
            ib_model::GuidRange::new(Guid::from_u64(0x0200_0000_0000_0000), Guid::from_u64(0x02FF_FFFF_FFFF_FFFF))
                .expect("the default range is valid");
        let mut members = BTreeSet::new();
        for (pkey, partition) in self.ufm.handle().partitions() {
            let Ok(pkey) = PKey::new(u32::from(pkey)) else { continue };
            for guid in partition.members.keys() {
                if let Ok(g) = Guid::parse_ufm(&guid.to_string())
                    && range.contains(g)
                {
                    members.insert((pkey, g));
                }
            }
        }
        members
    }

    /// Successful configured patches and UFM membership changes, from both logs.
    fn logged_history(&self) -> (Vec<invariants::ConfiguredPatch>, Vec<invariants::SmChange>) {
        let patches = self
            .api()
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.status == Some(200) && r.path.contains("/pods/"))
            .filter_map(|r| invariants::configured_patch(r.order, &r.path, &r.body))
            .collect();
        let changes = self
            .ufm
            .handle()
            .requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .filter_map(|r| match r.endpoint {
                Endpoint::AddGuids => invariants::sm_change(true, r.seq, r.done_seq, &r.body),
                Endpoint::RemoveGuidsAction => invariants::sm_change(false, r.seq, r.done_seq, &r.body),
                _ => None,
            })
            .collect();
        (patches, changes)
    }
}
