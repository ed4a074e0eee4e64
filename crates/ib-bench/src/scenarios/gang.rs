//! A gang job: hundreds of 8-rail GPU pods created at once, none of which can start work until the
//! last is ready. Job-ready time (first create → last pod configured) against the job floor
//! ([`super::job_floor`]), for each layout of the rails and each UFM service time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ib_model::Guid;
use ib_sim::demo::stats::Percentiles;
use serde::{Deserialize, Serialize};

use super::job_floor::{self, JobFloor};
use super::{Bench, CONFIGURE_DEADLINE, ScenarioError, not_configured};
use crate::cluster::{ApiWrites, Cluster, UfmAdds, pkey_of};
use crate::process::Usage;
use crate::rails::{Layout, RAILS, create_rail_pod};
use crate::report::{Machine, mib, table};
use crate::ufm_service::{UfmService, UfmSweep};

#[derive(Debug, Clone)]
pub struct GangOptions {
    pub pods: usize,
    pub rails: usize,
    pub layouts: Vec<Layout>,
    pub ufm: UfmSweep,
}

impl Default for GangOptions {
    fn default() -> Self {
        GangOptions {
            pods: 512,
            rails: RAILS,
            layouts: vec![Layout::OnePkey, Layout::PerRail],
            ufm: UfmSweep::default(),
        }
    }
}

/// One job, one layout, one UFM.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GangRun {
    pub layout: Layout,
    pub ufm: UfmService,
    pub floor: JobFloor,
    /// From the first create to the last create.
    pub create_seconds: f64,
    /// First create → last pod configured.
    pub job_ready_seconds: f64,
    pub over_floor: f64,
    /// Per pod, create → configured.
    pub latency: Percentiles,
    pub ufm_adds: UfmAdds,
    /// Every UFM request during the job, adds or not.
    pub ufm_requests: u64,
    pub api_writes: ApiWrites,
    pub controller_cpu_seconds: f64,
    pub controller_at_end: Usage,
    /// Every interface's GUID is a member of its partition in UFM.
    pub ufm_verified: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GangReport {
    pub machine: Machine,
    pub pods: usize,
    pub rails: usize,
    pub runs: Vec<GangRun>,
}

pub async fn run(bench: &Bench, options: &GangOptions) -> Result<GangReport, ScenarioError> {
    if options.pods == 0 || options.rails == 0 {
        return Err(ScenarioError::Option {
            option: "--pods/--rails",
            value: format!("{}/{}", options.pods, options.rails),
            reason: "a job has at least one pod with at least one rail",
        });
    }
    let settings = options.ufm.settings()?;
    let mut runs = Vec::new();
    for &layout in &options.layouts {
        for ufm in &settings {
            runs.push(one_job(bench, options, layout, ufm).await?);
        }
    }
    Ok(GangReport { machine: Machine::this(), pods: options.pods, rails: options.rails, runs })
}

async fn one_job(
    bench: &Bench,
    options: &GangOptions,
    layout: Layout,
    ufm: &UfmService,
) -> Result<GangRun, ScenarioError> {
    let cluster = Cluster::start(layout.pkeys_needed(options.rails, 1)).await?;
    let label = format!("gang-{layout:?}-{}ms", ufm.service_ms).to_lowercase();
    let (mut controller, observer) = bench.leading_controller(&cluster, &label).await?;
    cluster.ufm.handle().set_service(ufm.model()?).map_err(|e| ScenarioError::Config(e.to_string()))?;
    let floor = job_floor::measure(&cluster, "job", options.pods, options.rails, layout).await?;

    let names: Vec<String> = (0..options.pods).map(|i| format!("job-{i}")).collect();
    let adds_before = cluster.ufm_adds();
    let requests_before = cluster.ufm.handle().requests().len();
    let writes_before = cluster.api_writes();
    let cpu_before = controller.usage()?.cpu_seconds;
    let started = Instant::now();
    for (i, name) in names.iter().enumerate() {
        observer.created(name);
        create_rail_pod(&cluster, name, i, options.rails, layout, 0)?;
    }
    let create_seconds = started.elapsed().as_secs_f64();
    // The warm-up pod is configured already.
    if !observer.wait_configured(names.len() + 1, CONFIGURE_DEADLINE).await {
        let done = names.iter().filter(|n| observer.is_configured(n)).count();
        return Err(not_configured("the gang job", done, names.len(), &controller));
    }
    let last = names.iter().filter_map(|n| observer.configured(n).map(|c| c.at)).max().unwrap_or(started);
    let job_ready_seconds = last.saturating_duration_since(started).as_secs_f64();
    let controller_at_end = controller.usage()?;
    let members = cluster.ufm_memberships();
    let expected: BTreeSet<(u16, Guid)> = names
        .iter()
        .flat_map(|n| {
            let guids = observer.configured(n).map(|c| c.guids).unwrap_or_default();
            guids.into_iter().enumerate().map(move |(r, g)| (pkey_of(layout.pkey_index(0, r)), g))
        })
        .collect();
    let latencies: Vec<Duration> = names.iter().filter_map(|n| observer.latency(n)).collect();
    let ufm_verified = expected.len() == options.pods * options.rails && expected.is_subset(&members);
    Ok(GangRun {
        layout,
        ufm: *ufm,
        floor,
        create_seconds,
        job_ready_seconds,
        over_floor: job_ready_seconds * 1000.0 / floor.total_ms.max(1e-9),
        latency: Percentiles::of(&latencies),
        ufm_adds: cluster.ufm_adds().since(adds_before),
        ufm_requests: (cluster.ufm.handle().requests().len() - requests_before) as u64,
        api_writes: cluster.api_writes().since(writes_before),
        controller_cpu_seconds: controller_at_end.cpu_seconds - cpu_before,
        controller_at_end,
        ufm_verified,
    })
}

impl GangReport {
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                vec![
                    r.layout.label().to_owned(),
                    r.ufm.label(),
                    format!(
                        "{:.0} ({:.0} + {:.0} + {:.0})",
                        r.floor.total_ms, r.floor.sm_ms, r.floor.apply_delay_ms, r.floor.patches_ms
                    ),
                    format!("{:.0}", r.job_ready_seconds * 1000.0),
                    format!("{:.2}x", r.over_floor),
                    format!("{:.0} / {:.0}", r.latency.p50_ms, r.latency.max_ms),
                    format!("{} ({:.0})", r.ufm_adds.requests, r.ufm_adds.guids_per_request()),
                    r.ufm_requests.to_string(),
                    format!("{} / {}", r.api_writes.records, r.api_writes.pod_patches),
                    format!("{:.2} s", r.controller_cpu_seconds),
                    mib(r.controller_at_end.peak_rss_bytes),
                    r.ufm_verified.to_string(),
                ]
            })
            .collect();
        format!(
            "gang job: {} pods x {} rails created at once; job ready = first create -> last pod configured\n{}\n{}",
            self.pods,
            self.rails,
            self.machine.line(),
            table(
                &[
                    "rails on",
                    "UFM per request",
                    "floor ms (SM + apply + patches)",
                    "job ready ms",
                    "ready/floor",
                    "pod p50/max ms",
                    "UFM adds (GUIDs/add)",
                    "UFM requests",
                    "record writes / pod patches",
                    "ctrl CPU",
                    "peak RSS",
                    "UFM verified",
                ],
                &rows
            )
        )
    }
}
