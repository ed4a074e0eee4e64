//! `ib-kubernetes demo`: the whole system on an embedded cluster. Both emulators run in-process on
//! loopback (UFM over HTTPS with a generated CA), the real controller is started through
//! `ib_controller::startup::start` with nothing but an environment, exactly as the binary starts it,
//! and the simulated kubelet plays the nodes. A seeded workload is created at a steady rate, part of
//! it deleted or finished, and the end state is verified against the UFM emulator.

pub mod floor;
pub mod observer;
pub mod progress;
pub mod stats;
pub mod summary;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ib_controller::{Config, Controller};
use ib_model::Guid;
use ib_sm::EnvMap;
use kube_emulator::{EmulatorConfig, KubeEmulator, Resource, RunningEmulator};
use serde_json::Value;
use ufm_emulator::{Endpoint, RunningUfm, UfmConfig, UfmEmulator};

use crate::kubelet::{Kubelet, PodOutcome};
use crate::rng::SplitMix64;
use crate::workload::{self, IbNetworks, MIN_PODS, NAMESPACE, NadRole, PodKind, PodPlan};
use observer::Observer;
use progress::{Counts, Progress, ProgressMode};
use stats::Percentiles;
use summary::{
    EventStats, GuidCounts, InterfaceCounts, Latency, NetworkInterfaces, PodCounts, QuotedEvent, Settings, Summary,
    UfmStats,
};
use verify::{Inputs, Verification};

/// Share of the well-formed pods deleted after configuration, and share finished (Succeeded).
const DELETE_PERCENT: usize = 20;
const FINISH_PERCENT: usize = 10;
/// Deadlines for the controller to lead, to configure everything, and to converge after churn:
/// generous for a loaded 2-core machine, far above what a healthy run needs.
const LEAD_DEADLINE: Duration = Duration::from_secs(30);
const CONFIGURE_DEADLINE: Duration = Duration::from_secs(30);
const CONVERGE_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// Releasing the lease is one API call; this only bounds a stuck one.
const CONTROLLER_STOP: Duration = Duration::from_secs(10);
const UFM_USER: &str = "admin";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub pods: usize,
    /// Pods created per second.
    pub rate: f64,
    pub seed: u64,
    pub progress: ProgressMode,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { pods: 500, rate: 100.0, seed: 1, progress: ProgressMode::Auto }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--pods must be at least {MIN_PODS} (the demo always includes its three special pods), got {0}")]
    TooFewPods(usize),
    #[error("--rate must be a positive number of pods per second, got {0}")]
    BadRate(f64),
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("cannot write the kubeconfig: {0}")]
    Kubeconfig(#[source] std::io::Error),
    #[error("the Kubernetes API emulator did not start: {0}")]
    Kube(#[from] kube_emulator::StartError),
    #[error("the UFM emulator did not start: {0}")]
    Ufm(#[from] ufm_emulator::StartError),
    #[error("the demo's controller configuration is invalid: {0}")]
    Config(String),
    #[error("the controller did not start: {0}")]
    Controller(#[from] ib_controller::startup::StartupError),
    #[error("the controller did not take the lease within {LEAD_DEADLINE:?}")]
    NotLeading,
    #[error("measuring the floor: {0}")]
    Floor(#[from] floor::FloorError),
    #[error("creating {what}: {source}")]
    Create { what: String, source: Box<kube_emulator::ApiError> },
}

/// A finished demo run; the emulated cluster stays up until `shutdown`.
pub struct Demo {
    pub summary: Summary,
    world: World,
}

impl Demo {
    /// The kubeconfig of the emulated cluster, for kubectl while it is up.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.world.kubeconfig.clone()
    }

    pub fn api_url(&self) -> String {
        self.world.kube.url()
    }

    pub fn ufm_url(&self) -> String {
        self.world.ufm.base_url()
    }

    /// Where the controller serves `/metrics`.
    pub fn admin_address(&self) -> std::net::SocketAddr {
        self.world.controller.admin_address()
    }

    /// Stops the controller (releasing its lease), the kubelet and both emulators.
    pub async fn shutdown(self) {
        self.world.shutdown().await;
    }
}

struct World {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    kube: RunningEmulator,
    ufm: RunningUfm,
    kubelet: Kubelet,
    controller: Controller,
    observer: Observer,
}

impl World {
    async fn shutdown(self) {
        let World { dir, kube, ufm, kubelet, controller, observer, .. } = self;
        let _ = tokio::time::timeout(CONTROLLER_STOP, controller.shutdown()).await;
        observer.stop();
        kubelet.stop();
        // Dropped, not shut down gracefully: the controller's watch tasks outlive `Controller::shutdown`
        // and keep connections open, so a graceful stop would wait out the emulator's grace period.
        drop(kube);
        drop(ufm);
        drop(dir);
    }
}

/// The controller's environment, as a deployment would set it, pointing at the emulators.
fn controller_env(kubeconfig: &Path, ufm: &RunningUfm, password: &str) -> EnvMap {
    let mut env: EnvMap = [
        ("DAEMON_SM_PLUGIN", "ufm"),
        ("UFM_USERNAME", UFM_USER),
        ("UFM_ADDRESS", "127.0.0.1"),
        ("UFM_HTTP_SCHEMA", "https"),
        ("ADMIN_ADDRESS", "127.0.0.1:0"),
        ("K8S_NODE", "demo-control-plane"),
        ("POD_UID", "ib-kubernetes-demo"),
        ("POD_NAMESPACE", "kube-system"),
        ("GUID_POOL_RANGE_START", workload::POOL_START),
        ("GUID_POOL_RANGE_END", workload::POOL_END),
    ]
    .into_iter()
    .collect();
    env.set("UFM_PASSWORD", password);
    env.set("UFM_PORT", ufm.addr().port().to_string());
    env.set("UFM_CERTIFICATE", ufm.ca_pem().unwrap_or_default());
    env.set("KUBECONFIG", kubeconfig.display().to_string());
    env
}

/// Runs the demo; the returned [`Demo`] holds the summary and the still-running cluster.
pub async fn run(options: DemoOptions) -> Result<Demo, DemoError> {
    if options.pods < MIN_PODS {
        return Err(DemoError::TooFewPods(options.pods));
    }
    if !(options.rate.is_finite() && options.rate > 0.0) {
        return Err(DemoError::BadRate(options.rate));
    }
    let started = Instant::now();
    let nads = workload::nads();
    let ib = workload::ib_networks(&nads);
    let plans = workload::plan(options.pods, options.seed);
    let kinds: HashMap<String, PodKind> = plans.iter().map(|p| (p.name.clone(), p.kind)).collect();
    let good_ib: Vec<&PodPlan> = plans.iter().filter(|p| !p.ib_networks.is_empty()).collect();
    let to_run = plans.iter().filter(|p| !p.kind.is_bad()).count();
    let progress = Progress::new(
        options.progress,
        Counts { created: plans.len() as u64, configured: good_ib.len() as u64, running: to_run as u64 },
    );

    progress.phase("starting the emulated Kubernetes API server and UFM (HTTPS)");
    let dir = tempfile::Builder::new().prefix("ib-kubernetes-demo-").tempdir().map_err(DemoError::TempDir)?;
    let kube = KubeEmulator::start(EmulatorConfig::default()).await?;
    let password =
        format!("demo-{:016x}", SplitMix64::new(options.seed ^ started.elapsed().as_nanos() as u64).next_u64());
    let ufm = UfmEmulator::start(UfmConfig::https().with_credentials(UFM_USER, password.clone())).await?;
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).map_err(DemoError::Kubeconfig)?;
    let env = controller_env(&kubeconfig, &ufm, &password);
    let config = Config::from_env(&env, None).map_err(|e| DemoError::Config(e.to_string()))?;
    let range = config.guid_range;
    let api = kube.handle();
    for nad in &nads {
        api.create(Resource::NetworkAttachmentDefinitions, workload::nad_object(nad))
            .map_err(|e| DemoError::Create { what: format!("NAD {}", nad.name), source: Box::new(e) })?;
    }
    let kubelet = Kubelet::start(api.clone());

    progress.phase("measuring the floor: one pod PATCH + one UFM add");
    let floor = {
        let client = ib_controller::startup::kube_client(&env).await?;
        let sm = ib_controller::startup::subnet_manager(&config)?;
        floor::measure(client, sm.as_ref(), &api, &ufm.handle(), Duration::ZERO).await?
    };

    progress.phase("starting the controller (ib_controller::startup::start)");
    let controller = ib_controller::startup::start(config, &env).await?;
    let observer = Observer::start(api.clone(), NAMESPACE, ib.clone());
    let mut world = World { dir, kubeconfig, kube, ufm, kubelet, controller, observer };
    let mut leading = world.controller.leading();
    if !matches!(tokio::time::timeout(LEAD_DEADLINE, leading.wait_for(|l| *l)).await, Ok(Ok(_))) {
        progress.finish();
        world.shutdown().await;
        return Err(DemoError::NotLeading);
    }

    let counts = |world: &World, created: u64| Counts {
        created,
        configured: world.observer.configured_count() as u64,
        running: world.kubelet.started().iter().filter(|s| s.namespace == NAMESPACE).count() as u64,
    };

    progress.phase(&format!("creating {} pods at {}/s", plans.len(), options.rate));
    let creation_start = tokio::time::Instant::now();
    for (i, plan) in plans.iter().enumerate() {
        tokio::time::sleep_until(creation_start + Duration::from_secs_f64(i as f64 / options.rate)).await;
        world.observer.created(&plan.name);
        api.create(Resource::Pods, plan.object())
            .map_err(|e| DemoError::Create { what: format!("pod {}", plan.name), source: Box::new(e) })?;
        progress.update(counts(&world, i as u64 + 1));
    }
    let created = plans.len() as u64;

    progress.phase("waiting until every valid pod is configured and running");
    let deadline = Instant::now() + CONFIGURE_DEADLINE;
    loop {
        let now = counts(&world, created);
        progress.update(now);
        if (now.configured as usize >= good_ib.len() && now.running as usize >= to_run) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let configured_before_churn = world.observer.configured_count();
    let running_before_churn = counts(&world, created).running as usize;

    progress.phase(&format!("deleting {DELETE_PERCENT}% of the pods and finishing {FINISH_PERCENT}%"));
    let churn = churn(&plans, options.seed);
    let mut released: Vec<Guid> = Vec::new();
    for name in &churn.delete {
        let _ = api.delete(Resource::Pods, NAMESPACE, name);
    }
    for name in &churn.finish {
        let _ = world.kubelet.finish(NAMESPACE, name, PodOutcome::Succeeded);
    }
    for name in churn.delete.iter().chain(&churn.finish) {
        if let Some(c) = world.observer.configured(name) {
            released.extend(c.guids);
        }
    }

    progress.phase("waiting for the controller to release their GUIDs, then verifying against UFM");
    let deleted: BTreeSet<String> = churn.delete.iter().cloned().collect();
    let deadline = Instant::now() + CONVERGE_DEADLINE;
    let verification = loop {
        let verification = verify_now(&world, &kinds, &ib, range, &deleted, &released);
        if verification.passed || Instant::now() > deadline {
            break verification;
        }
        progress.update(counts(&world, created));
        tokio::time::sleep(POLL).await;
    };
    progress.update(counts(&world, created));
    progress.finish();

    let summary = summarize(SummaryInputs {
        options: &options,
        plans: &plans,
        world: &mut world,
        floor,
        verification,
        configured: configured_before_churn,
        running: running_before_churn,
        churn: &churn,
        released: released.len(),
        range: range.to_string(),
        nads: &nads,
        duration: started.elapsed(),
    });
    Ok(Demo { summary, world })
}

struct Churn {
    delete: Vec<String>,
    finish: Vec<String>,
}

/// Which pods to delete and which to finish: drawn from the well-formed pods other than the one that
/// asked for a GUID (kept so that its GUID can be checked at the end).
fn churn(plans: &[PodPlan], seed: u64) -> Churn {
    let mut candidates: Vec<String> =
        plans.iter().filter(|p| !p.kind.is_bad() && p.kind != PodKind::RequestedGuid).map(|p| p.name.clone()).collect();
    // A different stream from the workload's, so changing the mix does not change who is deleted.
    SplitMix64::new(seed ^ 0x5EED_C4A2_0000_0001).shuffle(&mut candidates);
    let deletes = plans.len() * DELETE_PERCENT / 100;
    let finishes = plans.len() * FINISH_PERCENT / 100;
    let finish = candidates.split_off(deletes.min(candidates.len()));
    Churn { delete: candidates, finish: finish.into_iter().take(finishes).collect() }
}

fn verify_now(
    world: &World,
    kinds: &HashMap<String, PodKind>,
    ib: &IbNetworks,
    range: ib_model::GuidRange,
    deleted: &BTreeSet<String>,
    released: &[Guid],
) -> Verification {
    let api = world.kube.handle();
    let pods = api.list(Resource::Pods, Some(NAMESPACE)).1;
    let events = api.list(Resource::Events, Some(NAMESPACE)).1;
    let memberships = world.ufm.handle().guid_pkeys();
    verify::verify(&Inputs {
        pods: &pods,
        kinds,
        ib,
        memberships: &memberships,
        range,
        events: &events,
        deleted,
        released,
    })
}

struct SummaryInputs<'a> {
    options: &'a DemoOptions,
    plans: &'a [PodPlan],
    world: &'a mut World,
    floor: floor::Floor,
    verification: Verification,
    configured: usize,
    running: usize,
    churn: &'a Churn,
    released: usize,
    range: String,
    nads: &'a [workload::NadSpec],
    duration: Duration,
}

fn summarize(s: SummaryInputs<'_>) -> Summary {
    let api = s.world.kube.handle();
    let plans = s.plans;
    let pods_now = api.list(Resource::Pods, Some(NAMESPACE)).1;

    let mut by_network: BTreeMap<String, NetworkInterfaces> = BTreeMap::new();
    for network in plans.iter().flat_map(|p| p.ib_networks.iter()) {
        let entry = by_network.entry((*network).to_owned()).or_default();
        if let Some(NadRole::InfiniBand { pkey: Some(pkey) }) =
            s.nads.iter().find(|n| n.name == *network).map(|n| n.role)
        {
            entry.pkey = Some(format!("0x{pkey:02x}"));
        }
        entry.interfaces += 1;
    }
    let configured_interfaces: usize =
        plans.iter().filter_map(|p| s.world.observer.configured(&p.name)).map(|c| c.guids.len()).sum();
    let requested = plans
        .iter()
        .filter(|p| p.kind == PodKind::RequestedGuid)
        .filter_map(|p| s.world.observer.configured(&p.name))
        .count();
    let other_interfaces = plans.iter().filter(|p| p.kind == PodKind::IbAndMacvlan).count();

    let latencies = s.world.observer.latencies();
    let configured = Percentiles::of(&latencies);
    let to_running: Vec<Duration> = s
        .world
        .kubelet
        .started()
        .iter()
        .filter(|st| st.namespace == NAMESPACE)
        .filter_map(|st| s.world.observer.created_at(&st.name).map(|c| st.at.saturating_duration_since(c)))
        .collect();
    let ratio = |v: f64| if s.floor.total_ms > 0.0 { v / s.floor.total_ms } else { 0.0 };

    let events = api.list(Resource::Events, Some(NAMESPACE)).1;
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        *by_reason.entry(e["reason"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    let bad_pods = plans
        .iter()
        .filter(|p| p.kind.is_bad())
        .filter_map(|p| {
            verify::warning_for(&events, &p.name).map(|(reason, note)| QuotedEvent {
                pod: format!("{NAMESPACE}/{}", p.name),
                reason: reason.to_owned(),
                note: note.to_owned(),
            })
        })
        .collect();

    Summary {
        settings: Settings {
            pods: s.options.pods,
            rate_per_s: s.options.rate,
            seed: s.options.seed,
            ufm: "HTTPS, generated CA".to_owned(),
            guid_pool: s.range,
        },
        duration_s: s.duration.as_secs_f64(),
        pods: PodCounts {
            created: plans.len(),
            infiniband: plans.iter().filter(|p| !p.ib_networks.is_empty()).count(),
            no_networks: plans.iter().filter(|p| p.kind == PodKind::NoNetworks).count(),
            bad: plans.iter().filter(|p| p.kind.is_bad()).count(),
            configured: s.configured,
            running: s.running,
            deleted: s.churn.delete.len(),
            finished: s.churn.finish.len(),
            live_at_end: pods_now.iter().filter(|p| verify::is_live(p)).count(),
        },
        interfaces: InterfaceCounts {
            infiniband: plans.iter().map(|p| p.ib_networks.len()).sum(),
            configured: configured_interfaces,
            by_network,
            other: other_interfaces,
        },
        guids: GuidCounts {
            allocated_from_pool: configured_interfaces - requested,
            requested_by_pods: requested,
            released: s.released,
        },
        ufm: ufm_stats(&s.world.ufm),
        latency: Latency {
            source: "measured by the demo: its create call to the configured annotation on the API server's change \
                     stream"
                .to_owned(),
            pod_to_configured: configured,
            pod_to_running: Percentiles::of(&to_running),
            floor: s.floor,
            p50_over_floor: ratio(configured.p50_ms),
            p99_over_floor: ratio(configured.p99_ms),
        },
        events: EventStats { total: events.len(), by_reason, bad_pods },
        verification: s.verification,
    }
}

/// Counts from the UFM emulator's own request log (the floor's requests were cleared before).
fn ufm_stats(ufm: &RunningUfm) -> UfmStats {
    let requests = ufm.handle().requests();
    let mut stats = UfmStats { requests: requests.len(), ..UfmStats::default() };
    for r in &requests {
        *stats.by_endpoint.entry(r.endpoint.name().to_owned()).or_default() += 1;
        if r.status != 200 {
            stats.failed += 1;
            continue;
        }
        let guids = || {
            serde_json::from_str::<Value>(&r.body)
                .ok()
                .and_then(|b| b.get("guids").and_then(Value::as_array).map(Vec::len))
                .unwrap_or(0)
        };
        match r.endpoint {
            Endpoint::AddGuids => {
                stats.add_requests += 1;
                stats.add_guids += guids();
            }
            Endpoint::RemoveGuidsAction => {
                stats.remove_requests += 1;
                stats.remove_guids += guids();
            }
            Endpoint::DeleteGuids => {
                stats.remove_requests += 1;
                stats.remove_guids += r.path.rsplit('/').next().map(|g| g.split(',').count()).unwrap_or(0);
            }
            _ => {}
        }
    }
    if stats.add_requests > 0 {
        stats.mean_guids_per_add = stats.add_guids as f64 / stats.add_requests as f64;
    }
    stats
}
