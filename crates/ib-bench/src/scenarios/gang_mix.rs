//! A steady mix of gang jobs: every interval a job of 8-rail pods starts on one of a few tenant
//! partitions, and each job ends (all its pods deleted) a fixed time after it started, so adds and
//! removes meet at UFM. Each job's ready time against its floor, and at the end UFM's members of the
//! tenant partitions must equal exactly the GUIDs of the jobs still running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ib_model::Guid;
use kube_emulator::Resource;
use serde::{Deserialize, Serialize};
use ufm_emulator::Endpoint;

use super::job_floor::{self, JobFloor};
use super::{Bench, CONFIGURE_DEADLINE, ScenarioError, not_configured};
use crate::cluster::{Cluster, NAMESPACE, pkey_of};
use crate::rails::{Layout, RAILS, create_rail_pod};
use crate::report::{Machine, table};
use crate::ufm_service::{UfmService, UfmSweep};

const CONVERGE_DEADLINE: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct GangMixOptions {
    /// Pods of each job, in turn.
    pub job_pods: Vec<usize>,
    pub rails: usize,
    /// Tenant partitions the jobs take in turn (each job's rails all on its tenant's).
    pub tenants: u16,
    pub interval_seconds: f64,
    pub lifetime_seconds: f64,
    /// Jobs start while this many seconds have not passed.
    pub seconds: f64,
    pub ufm: UfmSweep,
}

impl Default for GangMixOptions {
    fn default() -> Self {
        GangMixOptions {
            job_pods: vec![16, 64, 128],
            rails: RAILS,
            tenants: 4,
            interval_seconds: 10.0,
            lifetime_seconds: 30.0,
            seconds: 120.0,
            ufm: UfmSweep::default(),
        }
    }
}

/// One job of the mix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixJob {
    pub pods: usize,
    /// Seconds after the mix began.
    pub started_s: f64,
    /// First create → last pod configured; `None` if it ended first.
    pub ready_seconds: Option<f64>,
    pub over_floor: Option<f64>,
}

/// The mix at one UFM service setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixRun {
    pub ufm: UfmService,
    /// The floor of each job size.
    pub floors: BTreeMap<usize, JobFloor>,
    pub jobs: Vec<MixJob>,
    pub ready_p50_seconds: f64,
    pub ready_max_seconds: f64,
    pub over_floor_p50: f64,
    pub over_floor_max: f64,
    pub ufm_adds: u64,
    pub ufm_removes: u64,
    pub controller_cpu_percent: f64,
    pub ufm_verified: bool,
    pub ufm_missing: usize,
    pub ufm_extra: usize,
    pub converged_after_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GangMixReport {
    pub machine: Machine,
    pub rails: usize,
    pub interval_seconds: f64,
    pub lifetime_seconds: f64,
    pub runs: Vec<MixRun>,
}

struct Job {
    names: Vec<String>,
    tenant: u16,
    started: Instant,
    started_s: f64,
    ended: bool,
}

pub async fn run(bench: &Bench, options: &GangMixOptions) -> Result<GangMixReport, ScenarioError> {
    let positive = |option: &'static str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(ScenarioError::Option { option, value: v.to_string(), reason: "must be > 0" })
        }
    };
    positive("--interval", options.interval_seconds)?;
    positive("--lifetime", options.lifetime_seconds)?;
    positive("--seconds", options.seconds)?;
    if options.job_pods.is_empty() || options.job_pods.contains(&0) || options.rails == 0 || options.tenants == 0 {
        return Err(ScenarioError::Option {
            option: "--job-pods/--rails/--tenants",
            value: format!("{:?}/{}/{}", options.job_pods, options.rails, options.tenants),
            reason: "jobs of at least one pod, at least one rail and one tenant",
        });
    }
    let settings = options.ufm.settings()?;
    let mut runs = Vec::new();
    for ufm in &settings {
        runs.push(one_mix(bench, options, ufm).await?);
    }
    Ok(GangMixReport {
        machine: Machine::this(),
        rails: options.rails,
        interval_seconds: options.interval_seconds,
        lifetime_seconds: options.lifetime_seconds,
        runs,
    })
}

async fn one_mix(bench: &Bench, options: &GangMixOptions, ufm: &UfmService) -> Result<MixRun, ScenarioError> {
    let cluster = Cluster::start(options.tenants).await?;
    let (mut controller, observer) =
        bench.leading_controller(&cluster, &format!("gang-mix-{}ms", ufm.service_ms)).await?;
    let api = cluster.api();
    // Only the jobs' pods are to be in UFM at the end.
    let _ = api.delete(Resource::Pods, NAMESPACE, "warm-up");
    let handle = cluster.ufm.handle();
    handle.set_service(ufm.model()?).map_err(|e| ScenarioError::Config(e.to_string()))?;
    let mut floors = BTreeMap::new();
    for &pods in options.job_pods.iter().collect::<BTreeSet<_>>() {
        let floor = job_floor::measure(&cluster, &pods.to_string(), pods, options.rails, Layout::OnePkey).await?;
        floors.insert(pods, floor);
    }

    let adds_before = handle.count(Endpoint::AddGuids);
    let removes_before = handle.count(Endpoint::RemoveGuidsAction) + handle.count(Endpoint::DeleteGuids);
    let cpu_before = controller.usage()?.cpu_seconds;
    let count = (options.seconds / options.interval_seconds).ceil() as usize;
    let lifetime = Duration::from_secs_f64(options.lifetime_seconds);
    let start = tokio::time::Instant::now();
    let began = Instant::now();
    let mut jobs: Vec<Job> = Vec::with_capacity(count);
    let mut index = 0;
    for k in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 * options.interval_seconds)).await;
        controller.check_alive()?;
        for job in jobs.iter_mut().filter(|j| !j.ended && j.started.elapsed() >= lifetime) {
            for name in &job.names {
                let _ = api.delete(Resource::Pods, NAMESPACE, name);
            }
            job.ended = true;
        }
        let pods = options.job_pods[k % options.job_pods.len()];
        let tenant = (k % usize::from(options.tenants)) as u16;
        let started = Instant::now();
        let names: Vec<String> = (0..pods).map(|p| format!("job{k}-{p}")).collect();
        for name in &names {
            observer.created(name);
            create_rail_pod(&cluster, name, index, options.rails, Layout::OnePkey, tenant)?;
            index += 1;
        }
        jobs.push(Job { names, tenant, started, started_s: began.elapsed().as_secs_f64(), ended: false });
    }
    // Every job still running must become ready.
    let deadline = tokio::time::Instant::now() + CONFIGURE_DEADLINE;
    for job in jobs.iter().filter(|j| !j.ended) {
        while job.names.iter().any(|n| !observer.is_configured(n)) {
            if tokio::time::Instant::now() >= deadline {
                let done = job.names.iter().filter(|n| observer.is_configured(n)).count();
                return Err(not_configured("a running job of the mix", done, job.names.len(), &controller));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    let mix_seconds = began.elapsed().as_secs_f64();
    let cpu = controller.usage()?.cpu_seconds - cpu_before;

    let expected: BTreeSet<(u16, Guid)> = jobs
        .iter()
        .filter(|j| !j.ended)
        .flat_map(|j| {
            let pkey = pkey_of(j.tenant);
            j.names
                .iter()
                .flat_map(|n| observer.configured(n).map(|c| c.guids).unwrap_or_default())
                .map(move |g| (pkey, g))
                .collect::<Vec<_>>()
        })
        .collect();
    let converge_start = Instant::now();
    let deadline = tokio::time::Instant::now() + CONVERGE_DEADLINE;
    let mut actual = cluster.ufm_memberships();
    while actual != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        actual = cluster.ufm_memberships();
    }
    let converged_after_s = converge_start.elapsed().as_secs_f64();

    let mix_jobs: Vec<MixJob> = jobs
        .iter()
        .map(|j| {
            let last = j.names.iter().map(|n| observer.configured(n).map(|c| c.at)).collect::<Option<Vec<_>>>();
            let ready_seconds = last
                .and_then(|at| at.into_iter().max())
                .map(|at| at.saturating_duration_since(j.started).as_secs_f64());
            let floor = floors.get(&j.names.len()).map(|f| f.total_ms).unwrap_or(f64::NAN);
            MixJob {
                pods: j.names.len(),
                started_s: j.started_s,
                ready_seconds,
                over_floor: ready_seconds.map(|s| s * 1000.0 / floor),
            }
        })
        .collect();
    let ready: Vec<f64> = mix_jobs.iter().filter_map(|j| j.ready_seconds).collect();
    let over: Vec<f64> = mix_jobs.iter().filter_map(|j| j.over_floor).collect();
    Ok(MixRun {
        ufm: *ufm,
        floors,
        ready_p50_seconds: median(&ready),
        ready_max_seconds: ready.iter().copied().fold(0.0, f64::max),
        over_floor_p50: median(&over),
        over_floor_max: over.iter().copied().fold(0.0, f64::max),
        jobs: mix_jobs,
        ufm_adds: handle.count(Endpoint::AddGuids) - adds_before,
        ufm_removes: handle.count(Endpoint::RemoveGuidsAction) + handle.count(Endpoint::DeleteGuids) - removes_before,
        controller_cpu_percent: 100.0 * cpu / mix_seconds.max(1e-9),
        ufm_verified: actual == expected,
        ufm_missing: expected.difference(&actual).count(),
        ufm_extra: actual.difference(&expected).count(),
        converged_after_s,
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

impl GangMixReport {
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                let ready = r.jobs.iter().filter(|j| j.ready_seconds.is_some()).count();
                let floors = r
                    .floors
                    .iter()
                    .map(|(pods, f)| format!("{pods}: {:.0}", f.total_ms))
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![
                    r.ufm.label(),
                    format!("{ready} of {}", r.jobs.len()),
                    floors,
                    format!("{:.2} / {:.2}", r.ready_p50_seconds, r.ready_max_seconds),
                    format!("{:.2}x / {:.2}x", r.over_floor_p50, r.over_floor_max),
                    format!("{} / {}", r.ufm_adds, r.ufm_removes),
                    format!("{:.1}%", r.controller_cpu_percent),
                    format!("{} ({} missing, {} extra)", r.ufm_verified, r.ufm_missing, r.ufm_extra),
                ]
            })
            .collect();
        format!(
            "gang mix: a job of {}-rail pods every {} s, each ending {} s after it started\n{}\n{}",
            self.rails,
            self.interval_seconds,
            self.lifetime_seconds,
            self.machine.line(),
            table(
                &[
                    "UFM per request",
                    "jobs ready",
                    "floor ms by job size",
                    "ready p50 / max s",
                    "ready/floor p50 / max",
                    "UFM adds / removes",
                    "ctrl CPU",
                    "UFM verified",
                ],
                &rows
            )
        )
    }
}
