//! What a configured pod costs the controller in CPU: pods at fixed rates, the controller's CPU time
//! (all threads, from /proc) over each step divided by the pods configured in it. The controller's
//! idle CPU over the same length of time is measured first and reported beside it, so the cost of
//! the pods can be told from what the process spends doing nothing (timers, the allocator's purge).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Bench, CONFIGURE_DEADLINE, ScenarioError, not_configured};
use crate::cluster::Cluster;
use crate::rails::{Layout, create_rail_pod};
use crate::report::{Machine, table};

const POLL: Duration = Duration::from_millis(20);
/// Long enough for a profiler under the controller to write its output.
const STOP_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct EfficiencyOptions {
    pub rates: Vec<f64>,
    pub seconds: f64,
    /// Interfaces per pod.
    pub rails: usize,
    pub pkeys: u16,
}

impl Default for EfficiencyOptions {
    fn default() -> Self {
        EfficiencyOptions { rates: vec![100.0, 1000.0], seconds: 20.0, rails: 1, pkeys: 4 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EfficiencyStep {
    pub rate_per_s: f64,
    pub pods: usize,
    /// Create of the first pod → the last configured.
    pub seconds: f64,
    pub controller_cpu_seconds: f64,
    pub cpu_us_per_pod: f64,
    /// The same, less what the idle controller spends over as long.
    pub cpu_us_per_pod_over_idle: f64,
    pub controller_cpu_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EfficiencyReport {
    pub machine: Machine,
    pub rails: usize,
    /// Share of a core the controller uses with nothing to do.
    pub idle_cpu_percent: f64,
    pub steps: Vec<EfficiencyStep>,
}

pub async fn run(bench: &Bench, options: &EfficiencyOptions) -> Result<EfficiencyReport, ScenarioError> {
    for rate in &options.rates {
        if !(rate.is_finite() && *rate > 0.0) {
            return Err(ScenarioError::Option {
                option: "--rates",
                value: rate.to_string(),
                reason: "every rate must be a positive number of pods per second",
            });
        }
    }
    if !(options.seconds.is_finite() && options.seconds > 0.0) || options.rails == 0 || options.pkeys == 0 {
        return Err(ScenarioError::Option {
            option: "--seconds/--rails/--pkeys",
            value: format!("{}/{}/{}", options.seconds, options.rails, options.pkeys),
            reason: "all must be > 0",
        });
    }
    let cluster = Cluster::start(options.pkeys).await?;
    let (mut controller, observer) = bench.leading_controller(&cluster, "efficiency").await?;
    let idle_window = Duration::from_secs_f64(options.seconds.min(10.0));
    let idle_before = controller.usage()?.cpu_seconds;
    tokio::time::sleep(idle_window).await;
    let idle_per_s = (controller.usage()?.cpu_seconds - idle_before) / idle_window.as_secs_f64();
    let mut steps = Vec::new();
    for (s, &rate) in options.rates.iter().enumerate() {
        let pods = ((rate * options.seconds).round() as usize).max(1);
        let names: Vec<String> = (0..pods).map(|i| format!("eff{s}-{i}")).collect();
        let cpu_before = controller.usage()?.cpu_seconds;
        let started = Instant::now();
        let start = tokio::time::Instant::now();
        for (i, name) in names.iter().enumerate() {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
            observer.created(name);
            let tenant = (i % usize::from(options.pkeys)) as u16;
            create_rail_pod(&cluster, name, i, options.rails, Layout::OnePkey, tenant)?;
        }
        let deadline = tokio::time::Instant::now() + CONFIGURE_DEADLINE;
        while names.iter().any(|n| !observer.is_configured(n)) {
            if tokio::time::Instant::now() >= deadline {
                let done = names.iter().filter(|n| observer.is_configured(n)).count();
                return Err(not_configured(&format!("pods at {rate}/s"), done, pods, &controller));
            }
            tokio::time::sleep(POLL).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = controller.usage()?.cpu_seconds - cpu_before;
        steps.push(EfficiencyStep {
            rate_per_s: rate,
            pods,
            seconds,
            controller_cpu_seconds: cpu,
            cpu_us_per_pod: cpu * 1e6 / pods as f64,
            cpu_us_per_pod_over_idle: (cpu - idle_per_s * seconds).max(0.0) * 1e6 / pods as f64,
            controller_cpu_percent: 100.0 * cpu / seconds.max(1e-9),
        });
    }
    // A profiler wrapping the controller writes its output when the process exits by itself.
    controller.stop(STOP_GRACE).await;
    Ok(EfficiencyReport { machine: Machine::this(), rails: options.rails, idle_cpu_percent: 100.0 * idle_per_s, steps })
}

impl EfficiencyReport {
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .steps
            .iter()
            .map(|s| {
                vec![
                    format!("{}", s.rate_per_s),
                    s.pods.to_string(),
                    format!("{:.2} s", s.controller_cpu_seconds),
                    format!("{:.0}", s.cpu_us_per_pod),
                    format!("{:.0}", s.cpu_us_per_pod_over_idle),
                    format!("{:.0}%", s.controller_cpu_percent),
                ]
            })
            .collect();
        format!(
            "efficiency: controller CPU per configured pod ({} interface(s) each); idle: {:.2}% of a core\n{}\n{}",
            self.rails,
            self.idle_cpu_percent,
            self.machine.line(),
            table(&["rate/s", "pods", "ctrl CPU", "µs/pod", "µs/pod over idle", "ctrl CPU %"], &rows)
        )
    }
}
