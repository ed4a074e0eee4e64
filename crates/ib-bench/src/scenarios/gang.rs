//! A gang job: hundreds of 8-rail GPU pods created at once, none of which can start work until the
//! last is ready. Job-ready time (first create → last pod configured) against the job floor
//! ([`super::job_floor`]), for each layout of the rails and each UFM service time. Given several
//! daemons (this controller and the Go one), each runs every job in turn against fresh emulators, so
//! both see the machine in the same state, and the report pairs their job-ready times.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ib_model::Guid;
use ib_sim::demo::stats::Percentiles;
use serde::{Deserialize, Serialize};

use super::job_floor::{self, JobFloor};
use super::{Bench, CONFIGURE_DEADLINE, ScenarioError, not_configured};
use crate::cluster::{ApiWrites, Cluster, UfmAdds, pkey_of};
use crate::controller_kind::ControllerKind;
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

/// How long the Go daemon may take over a gang job before the run is recorded as unfinished: it patches
/// every interface of every pod on its own through client-go's 20 requests/s, so 4,096 rails take
/// about 3.5 minutes at best.
pub const GO_JOB_DEADLINE: Duration = Duration::from_secs(600);

/// A job the daemon did not finish within its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Unfinished {
    pub deadline_seconds: f64,
    /// Pods configured (on every rail) when the deadline passed.
    pub pods_configured: usize,
}

/// One job, one layout, one UFM, one daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GangRun {
    /// Which daemon ran the job (`ours` or `go`); reports from before there was a choice are `ours`.
    #[serde(default = "ours")]
    pub daemon: String,
    /// Set when the daemon did not configure every pod in time; `job_ready_seconds` is then the
    /// deadline, a lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<Unfinished>,
    /// The 1-minute load average of the machine when the job ended.
    #[serde(default)]
    pub load_average: Option<f64>,
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

fn ours() -> String {
    ControllerKind::Ours.label().to_owned()
}

pub async fn run(bench: &Bench, options: &GangOptions) -> Result<GangReport, ScenarioError> {
    run_each(std::slice::from_ref(bench), options).await
}

/// Every job with each of `benches` in turn (job by job, so that a slow stretch of the shared machine
/// falls on both daemons and not on one).
pub async fn run_each(benches: &[Bench], options: &GangOptions) -> Result<GangReport, ScenarioError> {
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
            for bench in benches {
                runs.push(one_job(bench, options, layout, ufm).await?);
            }
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
    // A controller in service has talked to this UFM before the job: one pod of the job's shape,
    // configured under the service model, so that what the controller knows of UFM's speed is true.
    create_rail_pod(&cluster, "steady", options.pods, options.rails, layout, 0)?;
    if !observer.wait_pod("steady", job_deadline(&bench.kind)).await {
        return Err(not_configured("the steady pod", 0, 1, &controller));
    }

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
    // The warm-up and steady pods are configured already.
    let deadline = job_deadline(&bench.kind);
    let mut unfinished = None;
    if !observer.wait_configured(names.len() + 2, deadline).await {
        let done = names.iter().filter(|n| observer.is_configured(n)).count();
        // This controller not finishing is a fault to report; the Go daemon not finishing is a result.
        if bench.kind == ControllerKind::Ours {
            return Err(not_configured("the gang job", done, names.len(), &controller));
        }
        unfinished = Some(Unfinished { deadline_seconds: deadline.as_secs_f64(), pods_configured: done });
    }
    let last = names.iter().filter_map(|n| observer.configured(n).map(|c| c.at)).max().unwrap_or(started);
    let job_ready_seconds = match unfinished {
        Some(u) => u.deadline_seconds,
        None => last.saturating_duration_since(started).as_secs_f64(),
    };
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
        daemon: bench.kind.label().to_owned(),
        unfinished,
        load_average: load_average(),
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

fn job_deadline(kind: &ControllerKind) -> Duration {
    match kind {
        ControllerKind::Ours => CONFIGURE_DEADLINE,
        ControllerKind::Go { .. } => GO_JOB_DEADLINE,
    }
}

/// The machine's 1-minute load average, where /proc has it.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// One job as both daemons ran it.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    pub layout: Layout,
    pub service_ms: f64,
    /// This controller's job-ready time and the floor of its run.
    pub ours_seconds: f64,
    pub ours_floor_ms: f64,
    /// The other daemon's, a lower bound when it did not finish.
    pub other_seconds: f64,
    pub other_floor_ms: f64,
    pub other_finished: bool,
    /// Other / ours.
    pub ratio: f64,
}

impl GangReport {
    /// The daemons in the order their runs appear.
    pub fn daemons(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !seen.contains(&r.daemon.as_str()) {
                seen.push(&r.daemon);
            }
        }
        seen
    }

    /// Each job `other` ran paired with the same job (layout and service time) this controller ran.
    pub fn paired(&self, other: &str) -> Vec<Paired> {
        let ours = ours();
        self.runs
            .iter()
            .filter(|r| r.daemon == other)
            .filter_map(|o| {
                let mine = self
                    .runs
                    .iter()
                    .find(|r| r.daemon == ours && r.layout == o.layout && r.ufm.service_ms == o.ufm.service_ms)?;
                Some(Paired {
                    layout: o.layout,
                    service_ms: o.ufm.service_ms,
                    ours_seconds: mine.job_ready_seconds,
                    ours_floor_ms: mine.floor.total_ms,
                    other_seconds: o.job_ready_seconds,
                    other_floor_ms: o.floor.total_ms,
                    other_finished: o.unfinished.is_none(),
                    ratio: o.job_ready_seconds / mine.job_ready_seconds.max(1e-9),
                })
            })
            .collect()
    }

    /// Job-ready times of this controller and `other` side by side, with the ratio other / ours.
    pub fn paired_table(&self, other: &str) -> String {
        let rows: Vec<Vec<String>> = self
            .paired(other)
            .iter()
            .map(|p| {
                let bound = if p.other_finished { "" } else { "> " };
                vec![
                    p.layout.label().to_owned(),
                    format!("{} ms", p.service_ms),
                    format!("{:.0} / {:.0}", p.ours_floor_ms, p.other_floor_ms),
                    format!("{:.2} s", p.ours_seconds),
                    format!("{bound}{:.2} s", p.other_seconds),
                    format!("{bound}{:.1}x", p.ratio),
                    format!("{bound}{:.1}x", p.other_seconds * 1000.0 / p.other_floor_ms.max(1e-9)),
                ]
            })
            .collect();
        let header = [
            "rails on",
            "UFM per request",
            "floor ms (ours / its run)",
            "job ready: ours",
            other,
            "ratio",
            "its ready/floor",
        ];
        format!(
            "gang job: {other} against this controller
{}",
            table(&header, &rows)
        )
    }

    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                let ready = match r.unfinished {
                    Some(u) => format!("> {:.0} ({} pods)", r.job_ready_seconds * 1000.0, u.pods_configured),
                    None => format!("{:.0}", r.job_ready_seconds * 1000.0),
                };
                vec![
                    r.daemon.clone(),
                    r.layout.label().to_owned(),
                    r.ufm.label(),
                    format!(
                        "{:.0} ({:.0} + {:.0} + {:.0})",
                        r.floor.total_ms, r.floor.sm_ms, r.floor.apply_delay_ms, r.floor.patches_ms
                    ),
                    ready,
                    format!("{:.2}x", r.over_floor),
                    format!("{:.0} / {:.0}", r.latency.p50_ms, r.latency.max_ms),
                    format!("{} ({:.0})", r.ufm_adds.requests, r.ufm_adds.guids_per_request()),
                    r.ufm_requests.to_string(),
                    format!("{} / {}", r.api_writes.records, r.api_writes.pod_patches),
                    format!("{:.2} s", r.controller_cpu_seconds),
                    mib(r.controller_at_end.peak_rss_bytes),
                    r.ufm_verified.to_string(),
                    r.load_average.map_or("-".into(), |l| format!("{l:.1}")),
                ]
            })
            .collect();
        let mut text = format!(
            "gang job: {} pods x {} rails created at once; job ready = first create -> last pod configured\n{}\n{}",
            self.pods,
            self.rails,
            self.machine.line(),
            table(
                &[
                    "daemon",
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
                    "load",
                ],
                &rows
            )
        );
        for other in self.daemons().into_iter().filter(|d| *d != ours()) {
            text.push('\n');
            text.push_str(&self.paired_table(other));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(daemon: &str, layout: Layout, service_ms: f64, ready: f64, unfinished: Option<usize>) -> GangRun {
        let floor = JobFloor {
            sm_requests: 1,
            sm_guids: 16,
            sm_ms: service_ms,
            apply_delay_ms: 0.0,
            patches: 2,
            patches_ms: 40.0,
            total_ms: service_ms + 40.0,
        };
        GangRun {
            daemon: daemon.to_owned(),
            unfinished: unfinished.map(|pods_configured| Unfinished { deadline_seconds: ready, pods_configured }),
            load_average: Some(3.5),
            layout,
            ufm: UfmService { service_ms, spread: 0.25, concurrency: Some(1), seed: 1 },
            floor,
            create_seconds: 0.01,
            job_ready_seconds: ready,
            over_floor: ready * 1000.0 / floor.total_ms,
            latency: Percentiles::default(),
            ufm_adds: UfmAdds::default(),
            ufm_requests: 0,
            api_writes: ApiWrites::default(),
            controller_cpu_seconds: 0.1,
            controller_at_end: Usage::default(),
            ufm_verified: unfinished.is_none(),
        }
    }

    fn report(runs: Vec<GangRun>) -> GangReport {
        GangReport { machine: Machine::this(), pods: 2, rails: 8, runs }
    }

    #[test]
    fn the_other_daemon_pairs_with_the_same_job_of_this_controller() {
        let report = report(vec![
            run("ours", Layout::OnePkey, 200.0, 0.5, None),
            run("go", Layout::OnePkey, 200.0, 210.0, None),
            run("ours", Layout::PerRail, 200.0, 4.0, None),
            run("go", Layout::PerRail, 200.0, 600.0, Some(300)),
            // No run of this controller to compare with: left out rather than paired with another job.
            run("go", Layout::OnePkey, 1000.0, 220.0, None),
        ]);
        assert_eq!(report.daemons(), ["ours", "go"]);
        let paired = report.paired("go");
        assert_eq!(paired.len(), 2, "{paired:?}");
        assert_eq!((paired[0].layout, paired[0].ratio), (Layout::OnePkey, 420.0));
        assert!(paired[0].other_finished);
        assert_eq!((paired[1].layout, paired[1].ratio, paired[1].other_finished), (Layout::PerRail, 150.0, false));
        // An unfinished job reads as a lower bound, in both tables.
        let text = report.table();
        assert!(text.contains("> 150.0x") && text.contains("> 600.00 s"), "{text}");
        assert!(text.contains("> 600000 (300 pods)"), "{text}");
        assert!(text.contains("420.0x") && !text.contains("> 420.0x"), "{text}");
    }

    #[test]
    fn a_report_of_one_daemon_has_no_pairs() {
        let report = report(vec![run("ours", Layout::OnePkey, 0.1, 0.3, None)]);
        assert_eq!(report.daemons(), ["ours"]);
        assert!(report.paired("go").is_empty());
        assert!(!report.table().contains("against this controller"));
    }

    #[test]
    fn a_report_written_before_the_daemon_was_named_reads_as_this_controller() {
        let mut json = serde_json::to_value(report(vec![run("ours", Layout::OnePkey, 0.1, 0.3, None)])).unwrap();
        let first = json["runs"][0].as_object_mut().unwrap();
        for key in ["daemon", "unfinished", "load_average"] {
            first.remove(key);
        }
        let old: GangReport = serde_json::from_value(json).unwrap();
        assert_eq!(old.runs[0].daemon, "ours");
        assert_eq!((old.runs[0].unfinished, old.runs[0].load_average), (None, None));
    }
}
