//! `ib-kubernetes demo`: the whole system on an embedded cluster. Both emulators run in-process on
//! loopback (UFM over HTTPS with a generated CA), the real controller is started through
//! `ib_controller::startup::start` with nothing but an environment, exactly as the binary starts it,
//! and the simulated kubelet plays the nodes. A seeded workload is created at a steady rate, part of
//! it deleted or finished, and the end state is verified against the UFM emulator: each GUID's
//! partitions with their membership and index0, each partition's QoS. The controller runs with a
//! default limited partition ([`workload::DEFAULT_LIMITED_PKEY`]) that every GUID it hands out joins.
//!
//! With `opensm` set, the controller runs the built-in `opensm` backend instead, against a real OpenSM
//! on an ibsim-simulated fabric whose host ports carry the pool's GUIDs, and the end state is verified
//! against the ports' P_Key tables as `smpquery pkeys` reads them (the membership bit of each entry)
//! and against the QoS flags of each partition in OpenSM's `partitions.conf`.

pub mod floor;
pub mod observer;
pub mod progress;
pub mod sources;
pub mod stats;
pub mod summary;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ib_controller::{Config, Controller};
use ib_model::Guid;
use ib_sm::OpenSm;
use ib_sm::opensm::{OpenSmConfig, Reload};
use kube_emulator::{EmulatorConfig, Resource};
use serde_json::Value;
use ufm_emulator::{Endpoint, RunningUfm, UfmConfig};

use crate::fixture::EmulatedCluster;
use crate::kubelet::{Kubelet, PodOutcome};
use crate::rng::SplitMix64;
use crate::workload::{self, IbNetworks, Joins, MIN_PODS, NAMESPACE, NadRole, PodKind, PodPlan};
use observer::Observer;
use progress::{Counts, Progress, ProgressMode};
use stats::Percentiles;
use summary::{
    EventStats, GuidCounts, InterfaceCounts, Latency, NetworkInterfaces, OpenSmRun, PodCounts, QuotedEvent, Settings,
    Summary, UfmStats,
};
use verify::{Inputs, Source, Verification};

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
/// `--opensm`: host ports of the simulated fabric, one per pool GUID. The pool ends just after the GUID
/// the pinned pod asks for, so that allocation, which starts at the low end, reaches it last.
const OPENSM_PORTS: usize = 240;
/// Reading every port's P_Key table takes seconds; OpenSM's sweeps after each reload too.
const OPENSM_DEADLINE: Duration = Duration::from_secs(180);
/// The site's own part of partitions.conf in the `--opensm` run.
const OPENSM_SITE: &str =
    "# the site's partitions: ib-kubernetes keeps these lines\nDefault=0x7fff, ipoib : ALL=full ;\n";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub pods: usize,
    /// Pods created per second.
    pub rate: f64,
    pub seed: u64,
    pub progress: ProgressMode,
    /// Run against a real OpenSM on a simulated fabric (needs ibsim, OpenSM, infiniband-diags).
    pub opensm: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { pods: 500, rate: 100.0, seed: 1, progress: ProgressMode::Auto, opensm: false }
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
    #[error(transparent)]
    Cluster(#[from] crate::fixture::FixtureError),
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
    #[error(
        "--opensm needs ibsim, OpenSM and the InfiniBand diagnostics: {0} (apt-get install ibsim-utils opensm \
         infiniband-diags)"
    )]
    OpenSmTools(String),
    #[error(
        "--opensm: {pods} pods need up to {guids} GUIDs, more than the {OPENSM_PORTS} ports of the simulated fabric; \
         use fewer --pods (60 fit)"
    )]
    OpenSmTooManyPods { pods: usize, guids: usize },
    #[error("--opensm: the simulated fabric: {0}")]
    Fabric(#[from] ib_fabric::FabricError),
    #[error("the controller did not start: {0}")]
    ControllerStart(#[from] ib_controller::ControllerError),
}

/// A finished demo run; the emulated cluster stays up until `shutdown`.
pub struct Demo {
    pub summary: Summary,
    world: World,
}

impl Demo {
    /// The kubeconfig of the emulated cluster, for kubectl while it is up.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.world.cluster.kubeconfig().map(Path::to_owned).unwrap_or_default()
    }

    /// The UFM emulator's base URL.
    pub fn ufm_url(&self) -> String {
        self.world.cluster.ufm.base_url()
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
    cluster: EmulatedCluster,
    kubelet: Kubelet,
    controller: Controller,
    observer: Observer,
    /// `--opensm`: the backend, for its counters, and the fabric, stopped after the controller.
    opensm: Option<(Arc<OpenSm>, ib_fabric::Fabric)>,
}

impl World {
    async fn shutdown(self) {
        let World { dir, cluster, kubelet, controller, observer, opensm } = self;
        let _ = tokio::time::timeout(CONTROLLER_STOP, controller.shutdown()).await;
        observer.stop();
        kubelet.stop();
        // Dropped, not shut down gracefully: the controller's watch tasks outlive `Controller::shutdown`
        // and keep connections open, so a graceful stop would wait out the emulator's grace period.
        drop(cluster);
        drop(opensm);
        drop(dir);
    }
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
    let joins = workload::joins(&nads);
    let plans = workload::plan(options.pods, options.seed);
    if options.opensm {
        if let Some(missing) = ib_fabric::missing_tools() {
            return Err(DemoError::OpenSmTools(missing));
        }
        // Every interface may take a GUID; two ports stay spare.
        let guids = plans.iter().map(|p| p.ib_networks.len()).sum::<usize>();
        if guids + 2 > OPENSM_PORTS {
            return Err(DemoError::OpenSmTooManyPods { pods: options.pods, guids });
        }
    }
    let kinds: HashMap<String, PodKind> = plans.iter().map(|p| (p.name.clone(), p.kind)).collect();
    let good_ib: Vec<&PodPlan> = plans.iter().filter(|p| !p.ib_networks.is_empty()).collect();
    let to_run = plans.iter().filter(|p| !p.kind.is_bad()).count();
    let progress = Progress::new(
        options.progress,
        Counts { created: plans.len() as u64, configured: good_ib.len() as u64, running: to_run as u64 },
    );

    progress.phase("starting the emulated Kubernetes API server and UFM (HTTPS)");
    let dir = tempfile::Builder::new().prefix("ib-kubernetes-demo-").tempdir().map_err(DemoError::TempDir)?;
    let password =
        format!("demo-{:016x}", SplitMix64::new(options.seed ^ started.elapsed().as_nanos() as u64).next_u64());
    let mut cluster = EmulatedCluster::start(EmulatorConfig::default(), UfmConfig::https(), &password).await?;
    cluster.write_kubeconfig(&dir.path().join("kubeconfig"))?;
    let mut env = cluster.controller_env("ib-kubernetes-demo");
    env.set("GUID_POOL_RANGE_START", workload::POOL_START);
    env.set("GUID_POOL_RANGE_END", workload::POOL_END);
    // The floor is always measured against UFM: one PATCH and one UFM add.
    let floor_config = Config::from_env(&env, None).map_err(|e| DemoError::Config(e.to_string()))?;
    let fabric = if options.opensm {
        progress.phase(&format!("starting ibsim and a real OpenSM on a simulated fabric of {OPENSM_PORTS} ports"));
        let last = workload::REQUESTED_GUID.as_u64() + 1;
        let first = last + 1 - OPENSM_PORTS as u64;
        let hosts = (first..=last).map(ib_fabric::Host::port).collect();
        let spec = ib_fabric::FabricSpec { hosts, partitions: OPENSM_SITE.to_owned(), deadline: OPENSM_DEADLINE };
        Some((first, last, ib_fabric::Fabric::start(spec).await?))
    } else {
        None
    };
    let mut controller_env = env.clone();
    controller_env.set("DEFAULT_LIMITED_PARTITION", format!("0x{:02x}", workload::DEFAULT_LIMITED_PKEY));
    controller_env.set("PKEY_ALLOCATION_RANGE", workload::ALLOCATION_RANGE);
    if let Some((first, last, fabric)) = &fabric {
        controller_env.set("DAEMON_SM_PLUGIN", "opensm");
        controller_env.set("OPENSM_PARTITIONS_FILE", fabric.partitions_file().display().to_string());
        controller_env.set("OPENSM_PID_FILE", fabric.pid_file().display().to_string());
        controller_env.set("GUID_POOL_RANGE_START", Guid::from_u64(*first).to_string());
        controller_env.set("GUID_POOL_RANGE_END", Guid::from_u64(*last).to_string());
    }
    let config = Config::from_env(&controller_env, None).map_err(|e| DemoError::Config(e.to_string()))?;
    let range = config.guid_range;
    let api = cluster.kube.handle();
    for nad in &nads {
        api.create(Resource::NetworkAttachmentDefinitions, workload::nad_object(nad))
            .map_err(|e| DemoError::Create { what: format!("NAD {}", nad.name), source: Box::new(e) })?;
    }
    let kubelet = Kubelet::start(api.clone());

    progress.phase("measuring the floor: one pod PATCH + one UFM add");
    let floor = {
        let client = ib_controller::startup::kube_client(&env).await?;
        let sm = ib_controller::startup::subnet_manager(&floor_config)?;
        floor::measure(client, sm.as_ref(), &api, &cluster.ufm.handle(), Duration::ZERO).await?
    };

    let (controller, opensm) = match fabric {
        None => {
            progress.phase("starting the controller (ib_controller::startup::start)");
            (ib_controller::startup::start(config, &env).await?, None)
        }
        Some((_, _, fabric)) => {
            // The backend startup would build from the same variables, kept here for its counters.
            progress.phase("starting the controller with the opensm backend");
            let sm =
                Arc::new(OpenSm::new(OpenSmConfig::new(fabric.partitions_file(), Reload::PidFile(fabric.pid_file()))));
            let client = ib_controller::startup::kube_client(&controller_env).await?;
            (Controller::start(config, client, sm.clone()).await?, Some((sm, fabric)))
        }
    };
    let observer = Observer::start(api.clone(), NAMESPACE, ib.clone());
    let mut world = World { dir, cluster, kubelet, controller, observer, opensm };
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
    let deadline = Instant::now() + if world.opensm.is_some() { OPENSM_DEADLINE } else { CONVERGE_DEADLINE };
    let mut ports_read = 0;
    let verification = loop {
        let verification = verify_now(&world, &kinds, (&ib, &joins), range, &deleted, &released, &mut ports_read);
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
        ports_read,
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
    (ib, joins): (&IbNetworks, &Joins),
    range: ib_model::GuidRange,
    deleted: &BTreeSet<String>,
    released: &[Guid],
    ports_read: &mut usize,
) -> Verification {
    let api = world.cluster.kube.handle();
    let pods = api.list(Resource::Pods, Some(NAMESPACE)).1;
    let events = api.list(Resource::Events, Some(NAMESPACE)).1;
    let (source, (memberships, partition_qos)) = match &world.opensm {
        None => (Source::Ufm, sources::ufm_view(&world.cluster.ufm.handle())),
        Some((_, fabric)) => {
            let read = sources::port_memberships(fabric)
                .and_then(|(memberships, ports)| Ok((memberships, sources::opensm_qos(fabric)?, ports)));
            match read {
                Ok((memberships, qos, ports)) => {
                    *ports_read = ports;
                    (Source::OpenSm, (memberships, qos))
                }
                Err(e) => {
                    let check = verify::Check {
                        name: "the ports' P_Key tables and partitions.conf are readable",
                        passed: false,
                        checked: 0,
                        detail: e.to_string(),
                    };
                    return Verification { passed: false, checks: vec![check] };
                }
            }
        }
    };
    verify::verify(&Inputs {
        pods: &pods,
        kinds,
        ib,
        joins,
        memberships: &memberships,
        partition_qos: &partition_qos,
        default_limited: Some(workload::DEFAULT_LIMITED_PKEY),
        source,
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
    ports_read: usize,
    range: String,
    nads: &'a [workload::NadSpec],
    duration: Duration,
}

fn summarize(s: SummaryInputs<'_>) -> Summary {
    let api = s.world.cluster.kube.handle();
    let plans = s.plans;
    let pods_now = api.list(Resource::Pods, Some(NAMESPACE)).1;

    let mut by_network: BTreeMap<String, NetworkInterfaces> = BTreeMap::new();
    for network in plans.iter().flat_map(|p| p.ib_networks.iter()) {
        let entry = by_network.entry((*network).to_owned()).or_default();
        if let Some(NadRole::InfiniBand { pkey: Some(pkey), join } | NadRole::Allocated { pkey, join }) =
            s.nads.iter().find(|n| n.name == *network).map(|n| n.role)
        {
            entry.pkey = Some(format!("0x{pkey:02x}"));
            entry.options = summary::join_text(&join);
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
            ufm: if s.world.opensm.is_some() {
                "HTTPS, generated CA; partitions kept by a real OpenSM on a simulated fabric".to_owned()
            } else {
                "HTTPS, generated CA".to_owned()
            },
            guid_pool: s.range,
            default_limited_partition: Some(format!("0x{:02x}", workload::DEFAULT_LIMITED_PKEY)),
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
        ufm: ufm_stats(&s.world.cluster.ufm),
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
        opensm: s.world.opensm.as_ref().map(|(sm, fabric)| {
            let stats = sm.stats();
            OpenSmRun {
                fabric_ports: fabric.lids().len() - 1,
                batches: stats.batches,
                partitions_file_rewrites: stats.rewrites,
                reloads: stats.reloads,
                ports_read: s.ports_read,
            }
        }),
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
