//! A leader starting in a GPU cluster: every pod InfiniBand, a share of them 8-rail, all configured
//! and in UFM. How soon after process start is a new 8-rail pod configured, how high does RSS peak on
//! the way, and what does each watched pod cost once RSS has settled? Each size runs with a fresh
//! cluster and a fresh process; the first size (0 pods by default) is the base the per-pod figures are
//! taken over.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Bench, CONFIGURE_DEADLINE, ScenarioError, not_configured, require_steps};
use crate::cluster::Cluster;
use crate::process::Usage;
use crate::rails::{Layout, RAILS, create_rail_pod, seed_gpu};
use crate::report::{Machine, mib, table};

const POLL: Duration = Duration::from_millis(10);
const SETTLE_PERIOD: Duration = Duration::from_secs(1);
const SETTLE_TOLERANCE: f64 = 0.01;
const SETTLE_MAX: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(30);
const NEWCOMER: &str = "newcomer";

#[derive(Debug, Clone)]
pub struct GpuStartOptions {
    /// Pod counts, one fresh cluster and process each.
    pub steps: Vec<usize>,
    /// Share of the pods with `rails` interfaces; the others have one.
    pub multi_share: f64,
    pub rails: usize,
    pub pkeys: u16,
}

impl Default for GpuStartOptions {
    fn default() -> Self {
        GpuStartOptions { steps: vec![0, 10_000, 100_000], multi_share: 0.25, rails: RAILS, pkeys: 4 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GpuStartStep {
    pub pods: usize,
    pub multi_rail_pods: usize,
    pub guids: usize,
    /// Process start → the 8-rail pod created at process start reads configured.
    pub new_pod_configured_seconds: f64,
    pub controller_cpu_seconds: f64,
    /// At that moment (its peak is the start's peak).
    pub at_configured: Usage,
    /// Once RSS has settled.
    pub settled: Usage,
    /// (settled RSS − the first step's) / (pods − its pods); per GUID likewise.
    pub bytes_per_pod: Option<f64>,
    pub bytes_per_guid: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GpuStartReport {
    pub machine: Machine,
    pub rails: usize,
    pub multi_share: f64,
    pub steps: Vec<GpuStartStep>,
}

pub async fn run(bench: &Bench, options: &GpuStartOptions) -> Result<GpuStartReport, ScenarioError> {
    require_steps(&options.steps)?;
    if !(options.multi_share.is_finite() && (0.0..=1.0).contains(&options.multi_share)) {
        return Err(ScenarioError::Option {
            option: "--multi-share",
            value: options.multi_share.to_string(),
            reason: "a fraction, 0 to 1",
        });
    }
    if options.rails == 0 || options.pkeys == 0 {
        return Err(ScenarioError::Option {
            option: "--rails/--pkeys",
            value: format!("{}/{}", options.rails, options.pkeys),
            reason: "at least one of each",
        });
    }
    let mut steps: Vec<GpuStartStep> = Vec::new();
    for &pods in &options.steps {
        let step = one_start(bench, options, pods, steps.first()).await?;
        steps.push(step);
    }
    Ok(GpuStartReport { machine: Machine::this(), rails: options.rails, multi_share: options.multi_share, steps })
}

async fn one_start(
    bench: &Bench,
    options: &GpuStartOptions,
    pods: usize,
    base: Option<&GpuStartStep>,
) -> Result<GpuStartStep, ScenarioError> {
    let cluster = Cluster::start(options.pkeys).await?;
    let multi = (pods as f64 * options.multi_share).round() as usize;
    let seeded = seed_gpu(&cluster, pods - multi, multi, options.rails)?;
    let observer = cluster.observer();
    let started = Instant::now();
    let mut controller = bench.spawn_controller(&cluster, &format!("gpu-start-{pods}"))?;
    observer.created(NEWCOMER);
    create_rail_pod(&cluster, NEWCOMER, pods, options.rails, Layout::OnePkey, 0)?;
    let deadline = tokio::time::Instant::now() + CONFIGURE_DEADLINE;
    while !observer.is_configured(NEWCOMER) {
        controller.check_alive()?;
        if tokio::time::Instant::now() >= deadline {
            return Err(not_configured("the new pod", 0, 1, &controller));
        }
        tokio::time::sleep(POLL).await;
    }
    let at_configured = controller.usage()?;
    let configured_at = observer.configured(NEWCOMER).map(|c| c.at).unwrap_or_else(Instant::now);
    let settled = controller.settled_usage(SETTLE_PERIOD, SETTLE_TOLERANCE, SETTLE_MAX).await?;
    controller.stop(STOP_GRACE).await;
    let over = |per: fn(&GpuStartStep) -> usize, n: usize| {
        base.filter(|b| n > per(b))
            .map(|b| (settled.rss_bytes as f64 - b.settled.rss_bytes as f64) / (n - per(b)) as f64)
    };
    Ok(GpuStartStep {
        pods,
        multi_rail_pods: multi,
        guids: seeded.guids,
        new_pod_configured_seconds: configured_at.saturating_duration_since(started).as_secs_f64(),
        controller_cpu_seconds: at_configured.cpu_seconds,
        at_configured,
        settled,
        bytes_per_pod: over(|s| s.pods, pods),
        bytes_per_guid: over(|s| s.guids, seeded.guids),
    })
}

impl GpuStartReport {
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.pods.to_string(),
                    s.multi_rail_pods.to_string(),
                    s.guids.to_string(),
                    format!("{:.2} s", s.new_pod_configured_seconds),
                    format!("{:.2} s", s.controller_cpu_seconds),
                    mib(s.at_configured.peak_rss_bytes),
                    mib(s.settled.rss_bytes),
                    s.bytes_per_pod.map(|b| format!("{b:.0}")).unwrap_or_else(|| "-".into()),
                    s.bytes_per_guid.map(|b| format!("{b:.0}")).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        format!(
            "leader start in a GPU cluster: every pod InfiniBand, {:.0}% of them {}-rail\n{}\n{}",
            self.multi_share * 100.0,
            self.rails,
            self.machine.line(),
            table(
                &[
                    "pods",
                    "multi-rail",
                    "GUIDs",
                    "start -> new pod configured",
                    "CPU until then",
                    "peak RSS",
                    "settled RSS",
                    "B/pod",
                    "B/GUID",
                ],
                &rows
            )
        )
    }
}
