//! One chaos run: the emulators in this process, controller replicas as child processes of the real
//! binary, pods churning over several PKeys while faults are injected at random from a seed, then the
//! invariants of [`crate::invariants`] checked once the faults stop.
//!
//! With hostile tenants ([`crate::hostile`]), their pods appear between 20 % and 80 % of the fault time,
//! drawn from a generator of their own (the honest churn keeps its own), and the current leader is
//! killed after a third and after two thirds of them, so that leader starts happen with forged claims
//! in place. An honest pod a hostile pod aims at is not ended by the churn (attackers aim at long-lived
//! pods, and a victim that ends at once shows nothing), and the last tenth of the honest pods is created
//! after the last hostile pod, so that invariant 6 always has pods to judge. With a small pool, honest
//! pods keep at most three fewer interfaces live than the pool has GUIDs (a pod is ended before one is
//! created that would not fit), so the pool is tight but honest pods alone never exhaust it; and once
//! the last hostile pod is created, every hostile pod but the squeezes still waiting ends (their jobs
//! are done), so the late honest pods find room unless the controller holds GUIDs for pods it cannot
//! configure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ib_model::{Guid, GuidRange, PKey};
use ib_sim::fixture::EmulatedCluster;
use ib_sim::rng::SplitMix64;
use ib_sm::EnvMap;
use kube_emulator::{EmulatorConfig, EmulatorHandle, Fault, FaultRule, Resource};
use serde_json::json;
use ufm_emulator::{Endpoint, Method};

use crate::hostile::{self, Attack, HostileOptions};
use crate::invariants::{self, HonestPod, LiveInterface, PatchedElement};
use crate::reading;
use crate::replicas::{ReplicaSet, ReplicaSettings};

/// The honest pods' namespace.
const NAMESPACE: &str = "chaos";
/// The controller's default pool range.
const DEFAULT_RANGE: (u64, u64) = (0x0200_0000_0000_0000, 0x02FF_FFFF_FFFF_FFFF);
/// Where the replicas keep their Lease (`POD_NAMESPACE`) and its name.
const LEASE: (&str, &str) = ("kube-system", "ib-kubernetes-leader");
/// Mixed into the seed for the hostile tenants' generator.
const HOSTILE_SALT: u64 = 0x6b6f_7374_696c_6521;
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
    /// Hostile tenants beside the faults; `None`: honest pods only.
    pub hostile: Option<HostileOptions>,
    /// A pool of this many GUIDs (from the start of the default range) instead of the default range.
    pub small_pool: Option<u64>,
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
    pub hostile_pods: usize,
    /// Hostile pods per attack.
    pub attacks: BTreeMap<String, usize>,
    /// Elements of live hostile pods the controller marked configured, at the end.
    pub hostile_interfaces_given: usize,
    /// `namespace/name (scheduled|unscheduled): <annotation, cut>` of each hostile pod, in creation order.
    pub hostile_names: Vec<String>,
    pub small_pool: Option<u64>,
    /// At the end, honest interfaces waited on an exhausted pool (so invariants 1 and 6 excused them).
    pub pool_exhausted: bool,
    pub violations: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("starting the emulated cluster: {0}")]
    Cluster(#[from] ib_sim::fixture::FixtureError),
    #[error("work directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("seeding the cluster: {0}")]
    Api(#[from] kube_emulator::ApiError),
    #[error("starting a controller replica: {0}")]
    Replica(#[from] crate::replicas::ReplicaError),
    #[error("small_pool: a pool of {0} GUIDs is not possible (4 up to the size of the default range)")]
    SmallPool(u64),
}

/// What a NetworkAttachmentDefinition really is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nad {
    /// InfiniBand, with its pkey (`None`: GUID-only).
    Ib(Option<PKey>),
    /// Another CNI: no GUID, no partition.
    Other,
}

/// The cluster under test and what the run did to it.
struct World {
    cluster: EmulatedCluster,
    sequence: Arc<AtomicU64>,
    rng: SplitMix64,
    /// The honest namespace's NAD names, for pods to pick from.
    networks: Vec<String>,
    /// Every NAD of every namespace: (namespace, name) → what it is.
    nads: BTreeMap<(String, String), Nad>,
    /// The controllers' pool range.
    range: GuidRange,
    /// Live honest pods: (name, uid).
    live: Vec<(String, String)>,
    /// Honest pods a hostile pod aims at: the churn lets them live on (long-lived pods, such as training
    /// jobs, are what an attacker aims at, and a victim that ends at once shows nothing).
    victims: BTreeSet<String>,
    /// Every honest pod by uid.
    honest: BTreeMap<String, HonestPod>,
    /// At most this many honest interfaces live (small pool).
    honest_cap: Option<usize>,
    /// Pod uid → order number taken just before the pod was deleted or finished.
    ends: BTreeMap<String, u64>,
    created: usize,
    faults: BTreeMap<String, usize>,
    hostile_rng: SplitMix64,
    /// Live hostile pods: (name, uid, attack).
    hostile_live: Vec<(String, String, Attack)>,
    /// Hostile pod uid → the configured markers its author wrote.
    own_markers: BTreeMap<String, Vec<PatchedElement>>,
    hostile_created: usize,
    attacks: BTreeMap<String, usize>,
    hostile_names: Vec<String>,
    /// Order number taken just before the first hostile pod was created.
    hostile_since: Option<u64>,
}

pub async fn run(options: &SoakOptions) -> Result<SoakReport, SoakError> {
    let io = |source| SoakError::Io { path: options.work_dir.clone(), source };
    let end = match options.small_pool {
        None => DEFAULT_RANGE.1,
        Some(n) if (4..=DEFAULT_RANGE.1 - DEFAULT_RANGE.0).contains(&n) => DEFAULT_RANGE.0 + n - 1,
        Some(n) => return Err(SoakError::SmallPool(n)),
    };
    let range = GuidRange::new(Guid::from_u64(DEFAULT_RANGE.0), Guid::from_u64(end))
        .map_err(|_| SoakError::SmallPool(options.small_pool.unwrap_or_default()))?;
    std::fs::create_dir_all(&options.work_dir).map_err(io)?;
    let sequence = Arc::new(AtomicU64::new(0));
    let kube = EmulatorConfig {
        sequence: Some(sequence.clone()),
        // Every request stays in the log: invariants 3 and 4 are read from it.
        request_log_capacity: usize::MAX,
        ..EmulatorConfig::default()
    };
    let ufm = ufm_emulator::UfmConfig::http().with_sequence(sequence.clone());
    let mut cluster = EmulatedCluster::start(kube, ufm, UFM_PASSWORD).await?;
    cluster.write_kubeconfig(&options.work_dir.join("kubeconfig"))?;

    let mut world = World {
        cluster,
        sequence,
        rng: SplitMix64::new(options.seed),
        networks: Vec::new(),
        nads: BTreeMap::new(),
        range,
        live: Vec::new(),
        victims: BTreeSet::new(),
        honest: BTreeMap::new(),
        honest_cap: options.small_pool.map(|n| n.saturating_sub(3) as usize),
        ends: BTreeMap::new(),
        created: 0,
        faults: BTreeMap::new(),
        hostile_rng: SplitMix64::new(options.seed ^ HOSTILE_SALT),
        hostile_live: Vec::new(),
        own_markers: BTreeMap::new(),
        hostile_created: 0,
        attacks: BTreeMap::new(),
        hostile_names: Vec::new(),
        hostile_since: None,
    };
    world.create_networks(options.pkeys)?;
    if options.hostile.is_some() {
        for (namespace, name, config) in hostile::networks() {
            world.create_nad(namespace, name, config)?;
        }
    }

    let settings = ReplicaSettings {
        binary: options.controller.clone(),
        work_dir: options.work_dir.clone(),
        env: replica_env(&world.cluster, options.small_pool.map(|_| range)),
    };
    let mut replicas = ReplicaSet::start(settings, options.replicas)?;

    // Churn and faults, and the hostile tenants' pods at their times.
    let attacks = match &options.hostile {
        Some(h) => hostile::plan(&mut world.hostile_rng, h.pods, &h.only, options.small_pool.is_some()),
        None => Vec::new(),
    };
    let attack_at = |i: usize| options.fault_time.mul_f64(0.2 + 0.6 * i as f64 / attacks.len().max(1) as f64);
    let leader_kills_after = [attacks.len() / 3, 2 * attacks.len() / 3];
    // With hostile tenants, the last tenth of the honest pods (at least two) are created after the last
    // hostile pod, once the churn is over: invariant 6 then always has pods to judge.
    let late = if attacks.is_empty() { 0 } else { (options.pods / 10).max(2).min(options.pods) };
    let mut next_attack = 0;
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < options.fault_time {
        if let Some(hostile) = &options.hostile
            && next_attack < attacks.len()
            && started.elapsed() >= attack_at(next_attack)
        {
            world.attack(attacks[next_attack], hostile)?;
            next_attack += 1;
            if world.hostile_rng.below(6) == 0 {
                world.end_hostile_pod();
            }
            if options.kills && leader_kills_after.contains(&next_attack) && world.kill_leader(&mut replicas).await? {
                kills += 1;
            }
        }
        match world.rng.weighted(&[10, 3, 2, 6, if options.kills { 1 } else { 0 }]) {
            0 if world.created + late < options.pods => world.create_pod()?,
            1 => {
                world.end_pod(false, false);
            }
            2 => {
                world.end_pod(true, false);
            }
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
    // Every pod asked for is created (hostile ones first), then the faults stop.
    if let Some(hostile) = &options.hostile {
        for attack in &attacks[next_attack..] {
            world.attack(*attack, hostile)?;
        }
        if options.small_pool.is_some() {
            world.end_hostile_pods_but_waiting_squeezes();
        }
    }
    while world.created < options.pods {
        world.create_pod()?;
    }
    world.stop_faults();
    replicas.ensure_running()?;
    let quiet = Instant::now();

    // Convergence: invariants 1 and 2 hold.
    let mut converge_seconds = None;
    let mut last;
    let mut exhausted;
    loop {
        let (live, unreadable) = world.live_interfaces();
        let members = world.members();
        exhausted = invariants::pool_exhausted(&live, &members, world.range);
        last = unreadable;
        last.extend(invariants::live_interfaces_configured(&live, exhausted));
        last.extend(invariants::membership_matches(&live, &members));
        if last.is_empty() {
            converge_seconds = Some(quiet.elapsed().as_secs_f64());
            break;
        }
        if quiet.elapsed() >= options.converge_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut violations = last;
    let (patches, changes) = world.logged_history();
    // Forged markers echoed back in patches are the tenant's words, not ownership.
    let given = invariants::given_by_controller(&patches, &world.own_markers);
    let honest_patches: Vec<_> = given.iter().filter(|p| world.honest.contains_key(&p.pod_uid)).cloned().collect();
    violations.extend(invariants::configured_after_membership(&given, &changes));
    violations.extend(invariants::never_two_owners(&given, &world.ends));
    violations.extend(invariants::memberships_kept(&honest_patches, &changes, &world.ends));
    if let Some(since) = world.hostile_since {
        let pods: Vec<HonestPod> = world.honest.values().cloned().collect();
        violations.extend(invariants::honest_pods_keep_being_configured(&pods, &honest_patches, since, exhausted));
    }

    let (live, _) = world.live_interfaces();
    let report = SoakReport {
        seed: options.seed,
        pods_created: world.created,
        pods_live: world.live.len(),
        interfaces_configured: live.iter().filter(|i| i.honest && i.configured.is_some()).count(),
        faults: world.faults.clone(),
        kills,
        converge_seconds,
        hostile_pods: world.hostile_created,
        attacks: world.attacks.clone(),
        hostile_interfaces_given: live.iter().filter(|i| !i.honest && i.given).count(),
        hostile_names: world.hostile_names.clone(),
        small_pool: options.small_pool,
        pool_exhausted: exhausted,
        violations,
    };
    replicas.stop_all();
    world.cluster.shutdown().await;
    Ok(report)
}

/// The replicas' environment: the fixture's, with the soak's short timings, and the small pool if any.
fn replica_env(cluster: &EmulatedCluster, small_pool: Option<GuidRange>) -> EnvMap {
    let mut env = cluster.controller_env("replica");
    for (key, value) in [
        // Shorter than the emulated hangs, so hung requests time out and are retried.
        ("UFM_REQUEST_TIMEOUT", "2"),
        ("DAEMON_PERIODIC_UPDATE", "1"),
        // Frequent drift repair: requests that applied after their client timed out are found soon.
        ("DAEMON_RESYNC_INTERVAL", "5"),
        ("LEADER_LEASE_DURATION", "4"),
        ("LEADER_RENEW_DEADLINE", "3"),
        ("LEADER_RETRY_PERIOD", "1"),
    ] {
        env.set(key, value);
    }
    if let Some(range) = small_pool {
        env.set("GUID_POOL_RANGE_START", range.start().to_string());
        env.set("GUID_POOL_RANGE_END", range.end().to_string());
    }
    env
}

impl World {
    fn api(&self) -> EmulatorHandle {
        self.cluster.kube.handle()
    }

    fn create_networks(&mut self, pkeys: u32) -> Result<(), SoakError> {
        for i in 0..pkeys {
            let config = json!({"type": "ib-sriov", "cniVersion": "0.3.1", "pkey": format!("0x{:x}", 0x10 + i)});
            self.networks.push(format!("ib-{i}"));
            self.create_nad(NAMESPACE, &format!("ib-{i}"), &config.to_string())?;
        }
        self.networks.push("guid-only".into());
        self.create_nad(NAMESPACE, "guid-only", r#"{"type":"ib-sriov","cniVersion":"0.3.1"}"#)?;
        Ok(())
    }

    fn create_nad(&mut self, namespace: &str, name: &str, config: &str) -> Result<(), SoakError> {
        self.api().create(
            Resource::NetworkAttachmentDefinitions,
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": name, "namespace": namespace}, "spec": {"config": config}}),
        )?;
        let parsed: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
        let kind = if parsed["type"] == "ib-sriov" {
            Nad::Ib(parsed["pkey"].as_str().and_then(|p| PKey::parse(p).ok()))
        } else {
            Nad::Other
        };
        self.nads.insert((namespace.to_owned(), name.to_owned()), kind);
        Ok(())
    }

    fn live_honest_interfaces(&self) -> usize {
        self.live.iter().filter_map(|(_, uid)| self.honest.get(uid)).map(|p| p.elements).sum()
    }

    fn create_pod(&mut self) -> Result<(), SoakError> {
        let name = format!("pod-{}", self.created);
        self.created += 1;
        let count = 1 + self.rng.below(2) as usize;
        if let Some(cap) = self.honest_cap {
            // Room first: honest pods alone never exhaust a small pool. Victims are spared while other
            // pods can make room.
            let mut spared = 0;
            while !self.live.is_empty() && self.live_honest_interfaces() + count > cap {
                if !self.end_pod(false, spared >= 64) {
                    spared += 1;
                }
            }
        }
        let elements: Vec<serde_json::Value> = (0..count)
            .map(|k| {
                let net = &self.networks[self.rng.below(self.networks.len() as u64) as usize];
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
        let order = self.next_order();
        let created = self.api().create(Resource::Pods, pod)?;
        let uid = created["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        self.honest.insert(
            uid.clone(),
            HonestPod { uid: uid.clone(), name: name.clone(), created: order, elements: count, live: true },
        );
        self.live.push((name, uid));
        Ok(())
    }

    /// A number from the sequence both servers' logs share: orders soak actions among requests.
    fn next_order(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Deletes a random live pod, or lets it finish; a victim of a hostile pod lives on unless `victims`.
    /// Whether a pod ended.
    fn end_pod(&mut self, finish: bool, victims: bool) -> bool {
        if self.live.is_empty() {
            return false;
        }
        let i = self.rng.below(self.live.len() as u64) as usize;
        if !victims && self.victims.contains(&self.live[i].1) {
            return false;
        }
        let (name, uid) = self.live.swap_remove(i);
        // Taken before the change: ownership ends no later than this.
        let order = self.next_order();
        if let Some(pod) = self.honest.get_mut(&uid) {
            pod.live = false;
        }
        self.ends.insert(uid, order);
        let api = self.api();
        let _ = if finish {
            api.mutate(Resource::Pods, NAMESPACE, &name, |p| p["status"]["phase"] = "Succeeded".into()).map(|_| ())
        } else {
            api.delete_with_grace(Resource::Pods, NAMESPACE, &name, Some(0)).map(|_| ())
        };
        true
    }

    fn count(&mut self, fault: &str) {
        *self.faults.entry(fault.to_owned()).or_insert(0) += 1;
    }

    fn inject_fault(&mut self) {
        let fabric = self.cluster.ufm.handle();
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
        let fabric = self.cluster.ufm.handle();
        fabric.clear_faults();
        fabric.set_latency(Duration::ZERO);
        fabric.release_hung();
        let api = self.api();
        api.clear_faults();
        api.release_hung();
    }

    /// Every IB interface of every live honest pod, and every element of a live hostile pod that names
    /// a GUID, as the API server holds them now; plus an invariant 1 violation for each honest pod whose
    /// annotation can no longer be read.
    fn live_interfaces(&self) -> (Vec<LiveInterface>, Vec<String>) {
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for namespace in [NAMESPACE, hostile::TENANT] {
            let honest = namespace == NAMESPACE;
            let (_, pods) = self.api().list(Resource::Pods, Some(namespace));
            for pod in pods {
                let phase = pod["status"]["phase"].as_str().unwrap_or("");
                if phase == "Succeeded" || phase == "Failed" || pod["metadata"]["deletionTimestamp"].is_string() {
                    continue;
                }
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
                let raw =
                    pod["metadata"]["annotations"][ib_model::annotation::NETWORKS_ANNOTATION].as_str().unwrap_or("");
                let Some(elements) = reading::elements(raw, namespace) else {
                    if honest {
                        unreadable.push(format!("invariant 1: {namespace}/{name}'s annotation is no longer readable"));
                    }
                    continue;
                };
                let own = self.own_markers.get(uid);
                for e in elements {
                    if !honest && e.guid.is_none() {
                        // Names no GUID: neither holds one nor can justify a membership.
                        continue;
                    }
                    let pkey = match self.nads.get(&(e.namespace.clone(), e.name.clone())) {
                        Some(Nad::Ib(pkey)) => *pkey,
                        _ => None,
                    };
                    let configured = if e.configured { e.guid } else { None };
                    let given = honest
                        || configured.is_some_and(|guid| {
                            let element = PatchedElement {
                                index: e.index,
                                guid,
                                pkey: e.pkey.as_deref().and_then(|p| PKey::parse(p).ok()),
                                pkey_text: e.pkey.clone(),
                            };
                            !own.is_some_and(|own| own.contains(&element))
                        });
                    out.push(LiveInterface {
                        pod: format!("{namespace}/{name}"),
                        network: format!("{}/{} (element {})", e.namespace, e.name, e.index),
                        honest,
                        configured,
                        given,
                        named: e.guid,
                        pkey,
                    });
                }
            }
        }
        (out, unreadable)
    }

    /// (pkey, GUID) UFM holds inside the pool range, outside the management partition.
    fn members(&self) -> BTreeSet<(PKey, Guid)> {
        let mut members = BTreeSet::new();
        for (pkey, partition) in self.cluster.ufm.handle().partitions() {
            let Ok(pkey) = PKey::new(u32::from(pkey)) else { continue };
            for guid in partition.members.keys() {
                if let Ok(g) = Guid::parse_ufm(&guid.to_string())
                    && self.range.contains(g)
                {
                    members.insert((pkey, g));
                }
            }
        }
        members
    }

    // === hostile tenants ===

    /// Creates the pod of one attack in the tenant namespace, straight into the store.
    fn attack(&mut self, attack: Attack, options: &HostileOptions) -> Result<(), SoakError> {
        let victims = self.victims();
        let (free, free_count) = self.free_guids();
        let honest_pkeys: Vec<PKey> = self
            .nads
            .iter()
            .filter(|((ns, _), _)| ns == NAMESPACE)
            .filter_map(|(_, nad)| match nad {
                Nad::Ib(pkey) => *pkey,
                Nad::Other => None,
            })
            .collect();
        let target = hostile::Target {
            victims: &victims,
            free: &free,
            free_count,
            pool_len: self.range.len(),
            honest_namespace: NAMESPACE,
            honest_networks: &self.networks,
            honest_pkeys: &honest_pkeys,
        };
        let pod = hostile::build(attack, &mut self.hostile_rng, &target, options);
        let name = format!("h{}-{}", self.hostile_created, attack.label());
        self.hostile_created += 1;
        let mut spec = json!({"containers": [{"name": "c", "image": "x"}]});
        if pod.scheduled {
            spec["nodeName"] = json!(format!("node-{}", self.hostile_rng.below(8)));
        }
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": hostile::TENANT,
                         "annotations": {"k8s.v1.cni.cncf.io/networks": pod.annotation}},
            "spec": spec,
            "status": {"phase": "Pending"}
        });
        let order = self.next_order();
        self.hostile_since.get_or_insert(order);
        let created = self.api().create(Resource::Pods, object)?;
        let uid = created["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        self.own_markers.insert(uid.clone(), invariants::own_markers(&pod.annotation));
        let how = if pod.scheduled { "scheduled" } else { "unscheduled" };
        let preview: String = pod.annotation.chars().take(200).collect();
        self.hostile_names.push(format!("{}/{name} ({how}): {preview}", hostile::TENANT));
        if let Some(victim) = pod.victim {
            self.victims.insert(victim);
        }
        self.hostile_live.push((name, uid, attack));
        *self.attacks.entry(attack.label().to_owned()).or_insert(0) += 1;
        Ok(())
    }

    /// Deletes a random live hostile pod.
    fn end_hostile_pod(&mut self) {
        if self.hostile_live.is_empty() {
            return;
        }
        let i = self.hostile_rng.below(self.hostile_live.len() as u64) as usize;
        self.end_hostile_pod_at(i);
    }

    fn end_hostile_pod_at(&mut self, i: usize) {
        let (name, uid, _) = self.hostile_live.swap_remove(i);
        let order = self.next_order();
        self.ends.insert(uid, order);
        let _ = self.api().delete_with_grace(Resource::Pods, hostile::TENANT, &name, Some(0));
    }

    /// Deletes every live hostile pod that holds a GUID the controller gave it, and every one but the
    /// waiting squeezes: what the other attacks may legitimately hold (a free GUID they asked for, a
    /// cross-namespace interface) would otherwise fill a small pool.
    fn end_hostile_pods_but_waiting_squeezes(&mut self) {
        let (live, _) = self.live_interfaces();
        let holding: BTreeSet<String> = live
            .iter()
            .filter(|i| !i.honest && i.given)
            .filter_map(|i| i.pod.strip_prefix(&format!("{}/", hostile::TENANT)).map(str::to_owned))
            .collect();
        while let Some(i) =
            self.hostile_live.iter().position(|(name, _, attack)| *attack != Attack::Squeeze || holding.contains(name))
        {
            self.end_hostile_pod_at(i);
        }
    }

    /// SIGKILLs the replica holding the Lease and restarts it after a pause; `false` if no one holds it.
    async fn kill_leader(&mut self, replicas: &mut ReplicaSet) -> Result<bool, SoakError> {
        let Some(lease) = self.api().get(Resource::Leases, LEASE.0, LEASE.1) else { return Ok(false) };
        // The holder identity is `<node>_<pod uid>`, and a replica's pod uid `replica-<slot>-<generation>`.
        let slot = lease["spec"]["holderIdentity"]
            .as_str()
            .and_then(|h| h.rsplit('_').next())
            .and_then(|uid| uid.strip_prefix("replica-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|slot| slot.parse::<usize>().ok());
        let Some(slot) = slot else { return Ok(false) };
        replicas.kill(slot);
        *self.faults.entry("leader killed after hostile pods".to_owned()).or_insert(0) += 1;
        tokio::time::sleep(Duration::from_millis(200 + self.hostile_rng.below(1500))).await;
        replicas.restart(slot)?;
        Ok(true)
    }

    /// Configured interfaces of live honest pods, as the API server holds them.
    fn victims(&self) -> Vec<hostile::Victim> {
        let api = self.api();
        let mut victims = Vec::new();
        for (name, uid) in &self.live {
            let Some(pod) = api.get(Resource::Pods, NAMESPACE, name) else { continue };
            let raw = pod["metadata"]["annotations"][ib_model::annotation::NETWORKS_ANNOTATION].as_str().unwrap_or("");
            for e in reading::elements(raw, NAMESPACE).unwrap_or_default() {
                let (true, Some(guid)) = (e.configured, e.guid) else { continue };
                let pkey = match self.nads.get(&(e.namespace.clone(), e.name.clone())) {
                    Some(Nad::Ib(pkey)) => *pkey,
                    _ => None,
                };
                victims.push(hostile::Victim { pod: uid.clone(), guid, pkey, network: e.name });
            }
        }
        victims
    }

    /// A few GUIDs of the pool range nobody holds (configured on a live pod or a UFM member), in a
    /// seed-chosen order, and how many are free.
    fn free_guids(&mut self) -> (Vec<Guid>, u64) {
        let (live, _) = self.live_interfaces();
        let held: BTreeSet<Guid> = live
            .iter()
            .filter_map(|i| i.configured)
            .chain(self.members().into_iter().map(|(_, g)| g))
            .filter(|g| self.range.contains(*g))
            .collect();
        let (start, len) = (self.range.start().as_u64(), self.range.len());
        let free_count = len.saturating_sub(held.len() as u64);
        if len <= 4096 {
            let mut free: Vec<Guid> =
                (0..len).map(|k| Guid::from_u64(start + k)).filter(|g| !held.contains(g)).collect();
            self.hostile_rng.shuffle(&mut free);
            free.truncate(4);
            return (free, free_count);
        }
        let free = (0..16)
            .map(|_| Guid::from_u64(start + self.hostile_rng.below(len)))
            .filter(|g| !held.contains(g))
            .take(4)
            .collect();
        (free, free_count)
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
            .cluster
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
