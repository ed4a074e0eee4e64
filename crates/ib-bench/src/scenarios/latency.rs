//! Pod-to-configured latency at fixed creation rates, against the floor measured in the same run.

use std::time::{Duration, Instant};

use ib_sim::demo::floor::Floor;
use ib_sim::demo::stats::Percentiles;
use serde::{Deserialize, Serialize};

use super::{Bench, CONFIGURE_DEADLINE, ScenarioError, measure_floor, measure_watch_delay, not_configured};
use crate::cluster::{Cluster, UfmAdds};
use crate::process::{Usage, usage};
use crate::report::{Machine, table};

/// The pause between rounds of the idle floor: the gap between pods at 10/s.
pub const IDLE_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct LatencyOptions {
    /// Pods created per second, one step each.
    pub rates: Vec<f64>,
    /// How long each step creates pods.
    pub seconds: f64,
    pub pkeys: u16,
}

impl Default for LatencyOptions {
    fn default() -> Self {
        LatencyOptions { rates: vec![10.0, 100.0, 1000.0], seconds: 20.0, pkeys: 4 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateStep {
    pub rate_per_s: f64,
    pub pods: usize,
    /// Pods per second the benchmark managed to create (below `rate_per_s` when it cannot keep up).
    pub created_per_s: f64,
    pub latency: Percentiles,
    pub p50_over_floor: f64,
    pub p99_over_floor: f64,
    pub p50_over_idle_floor: f64,
    pub p99_over_idle_floor: f64,
    /// Controller CPU time over the step, as a share of one core.
    pub controller_cpu_percent: f64,
    /// The same for this process: both emulators, the load generator and the observer.
    pub harness_cpu_percent: f64,
    pub ufm_adds: UfmAdds,
    pub guids_per_add: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyReport {
    pub machine: Machine,
    /// Measured back to back: every thread on the way is busy.
    pub floor: Floor,
    /// Measured with [`IDLE_PAUSE`] between rounds, as pods arrive at 10/s: the threads on the way
    /// have gone idle and each must be woken, which a pod at a low rate pays too.
    pub idle_floor: Floor,
    /// Median create → watch event at a kube-rs watcher: part of every pod's latency, not of the floor.
    pub watch_delay_ms: f64,
    pub steps: Vec<RateStep>,
    pub controller_at_end: Usage,
}

pub async fn run(bench: &Bench, options: &LatencyOptions) -> Result<LatencyReport, ScenarioError> {
    for rate in &options.rates {
        if !(rate.is_finite() && *rate > 0.0) {
            return Err(ScenarioError::Option {
                option: "--rates",
                value: rate.to_string(),
                reason: "every rate must be a positive number of pods per second",
            });
        }
    }
    let cluster = Cluster::start(options.pkeys).await?;
    let floor = measure_floor(&cluster, Duration::ZERO).await?;
    let idle_floor = measure_floor(&cluster, IDLE_PAUSE).await?;
    let watch_delay_ms = measure_watch_delay(&cluster).await?;
    let (mut controller, observer) = bench.leading_controller(&cluster, "latency").await?;
    let mut steps = Vec::new();
    for (s, &rate) in options.rates.iter().enumerate() {
        let pods = ((rate * options.seconds).round() as usize).max(1);
        let names: Vec<String> = (0..pods).map(|i| format!("rate{s}-{i}")).collect();
        let adds_before = cluster.ufm_adds();
        let cpu_before = controller.usage()?.cpu_seconds;
        let harness_before = usage(std::process::id())?.cpu_seconds;
        let started = Instant::now();
        let start = tokio::time::Instant::now();
        for (i, name) in names.iter().enumerate() {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
            observer.created(name);
            cluster.create_ib_pod(name, i, (i % usize::from(options.pkeys)) as u16)?;
        }
        let creating = started.elapsed();
        let deadline = tokio::time::Instant::now() + CONFIGURE_DEADLINE;
        while names.iter().any(|n| !observer.is_configured(n)) {
            if tokio::time::Instant::now() >= deadline {
                let done = names.iter().filter(|n| observer.is_configured(n)).count();
                return Err(not_configured(&format!("pods at {rate}/s"), done, pods, &controller));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = controller.usage()?.cpu_seconds - cpu_before;
        let harness = usage(std::process::id())?.cpu_seconds - harness_before;
        let latencies: Vec<Duration> = names.iter().filter_map(|n| observer.latency(n)).collect();
        let latency = Percentiles::of(&latencies);
        let adds = cluster.ufm_adds().since(adds_before);
        steps.push(RateStep {
            rate_per_s: rate,
            pods,
            created_per_s: pods as f64 / creating.as_secs_f64().max(1e-9),
            latency,
            p50_over_floor: latency.p50_ms / floor.total_ms,
            p99_over_floor: latency.p99_ms / floor.total_ms,
            p50_over_idle_floor: latency.p50_ms / idle_floor.total_ms,
            p99_over_idle_floor: latency.p99_ms / idle_floor.total_ms,
            controller_cpu_percent: 100.0 * cpu / elapsed,
            harness_cpu_percent: 100.0 * harness / elapsed,
            ufm_adds: adds,
            guids_per_add: adds.guids_per_request(),
        });
    }
    let controller_at_end = controller.usage()?;
    Ok(LatencyReport { machine: Machine::this(), floor, idle_floor, watch_delay_ms, steps, controller_at_end })
}

impl LatencyReport {
    pub fn table(&self) -> String {
        let f = &self.floor;
        let rows: Vec<Vec<String>> = self
            .steps
            .iter()
            .map(|s| {
                vec![
                    format!("{}", s.rate_per_s),
                    format!("{:.0}", s.created_per_s),
                    s.pods.to_string(),
                    format!("{:.2}", s.latency.p50_ms),
                    format!("{:.2}", s.latency.p90_ms),
                    format!("{:.2}", s.latency.p99_ms),
                    format!("{:.1}", s.latency.max_ms),
                    format!("{:.1}x", s.p50_over_floor),
                    format!("{:.1}x", s.p99_over_floor),
                    format!("{:.1}x", s.p50_over_idle_floor),
                    format!("{:.1}x", s.p99_over_idle_floor),
                    format!("{:.0}%", s.controller_cpu_percent),
                    format!("{:.0}%", s.harness_cpu_percent),
                    format!("{} ({:.1})", s.ufm_adds.requests, s.guids_per_add),
                ]
            })
            .collect();
        format!(
            "latency: pod created -> configured (ms)\n{}\nfloor: {:.2} ms (PATCH {:.2} + UFM add {:.2}, median of {}); \
             idle floor ({} ms apart): {:.2} ms (PATCH {:.2} + UFM add {:.2}); \
             watch delay (create -> a watcher sees it): {:.2} ms\n{}",
            self.machine.line(),
            f.total_ms,
            f.patch_ms,
            f.ufm_add_ms,
            f.samples,
            IDLE_PAUSE.as_millis(),
            self.idle_floor.total_ms,
            self.idle_floor.patch_ms,
            self.idle_floor.ufm_add_ms,
            self.watch_delay_ms,
            table(
                &[
                    "rate/s",
                    "created/s",
                    "pods",
                    "p50",
                    "p90",
                    "p99",
                    "max",
                    "p50/floor",
                    "p99/floor",
                    "p50/idle",
                    "p99/idle",
                    "ctrl CPU",
                    "emulators CPU",
                    "UFM adds (GUIDs/add)"
                ],
                &rows
            )
        )
    }
}
