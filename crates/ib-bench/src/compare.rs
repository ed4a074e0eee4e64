//! Two daemons side by side in one run: this project's controller and another implementation (the Go
//! daemon), each through the same scenarios against fresh emulators, one after the other, so both see
//! the same machine at the same time. Prints one table with a column per daemon.

use serde::{Deserialize, Serialize};

use crate::report::{Machine, mib, table};
use crate::scenarios::latency::{self, LatencyOptions, LatencyReport};
use crate::scenarios::leader_start::{self, LeaderStartOptions, LeaderStartReport};
use crate::scenarios::throughput::{self, ThroughputOptions, ThroughputReport};
use crate::scenarios::{Bench, ScenarioError};

#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub rates: Vec<f64>,
    pub seconds: f64,
    pub burst: usize,
    pub leader_pods: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { rates: vec![10.0, 100.0], seconds: 20.0, burst: 10_000, leader_pods: 100_000 }
    }
}

/// One daemon's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    pub kind: String,
    pub latency: LatencyReport,
    pub throughput: ThroughputReport,
    pub leader_start: LeaderStartReport,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    pub machine: Machine,
    pub columns: Vec<Column>,
}

/// Runs every scenario for each bench in turn (a scenario's own failure is the whole run's: a
/// comparison with a hole in it would read as a result).
pub async fn run(benches: &[Bench], options: &CompareOptions) -> Result<CompareReport, ScenarioError> {
    let mut columns = Vec::new();
    for bench in benches {
        let latency = latency::run(
            bench,
            &LatencyOptions { rates: options.rates.clone(), seconds: options.seconds, ..LatencyOptions::default() },
        )
        .await?;
        let throughput =
            throughput::run(bench, &ThroughputOptions { pods: options.burst, ..ThroughputOptions::default() }).await?;
        let leader_start = leader_start::run(
            bench,
            &LeaderStartOptions { pods: options.leader_pods, ..LeaderStartOptions::default() },
        )
        .await?;
        columns.push(Column { kind: bench.kind.label().to_owned(), latency, throughput, leader_start });
    }
    Ok(CompareReport { machine: Machine::this(), columns })
}

impl CompareReport {
    pub fn table(&self) -> String {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut row = |name: String, cell: &dyn Fn(&Column) -> String| {
            let mut r = vec![name];
            r.extend(self.columns.iter().map(cell));
            rows.push(r);
        };
        let rates: Vec<f64> =
            self.columns.first().map(|c| c.latency.steps.iter().map(|s| s.rate_per_s).collect()).unwrap_or_default();
        for (i, rate) in rates.iter().enumerate() {
            row(format!("latency at {rate}/s: p50 / p99"), &|c| {
                c.latency
                    .steps
                    .get(i)
                    .map_or("-".into(), |s| format!("{} / {}", ms(s.latency.p50_ms), ms(s.latency.p99_ms)))
            });
            row(format!("at {rate}/s: UFM add requests (pods) / controller CPU"), &|c| {
                c.latency.steps.get(i).map_or("-".into(), |s| {
                    format!("{} ({}) / {:.0}%", s.ufm_adds.requests, s.pods, s.controller_cpu_percent)
                })
            });
        }
        row("burst: pods, all configured after".into(), &|c| {
            format!("{}, {:.2} s", c.throughput.pods, c.throughput.all_configured_seconds)
        });
        row("burst: latency p50 / p99".into(), &|c| {
            format!("{} / {}", ms(c.throughput.latency.p50_ms), ms(c.throughput.latency.p99_ms))
        });
        row("burst: UFM add requests".into(), &|c| c.throughput.ufm_adds.requests.to_string());
        row("burst: API requests (pod patches)".into(), &|c| {
            format!("{} ({})", c.throughput.api_requests, c.throughput.api_writes.pod_patches)
        });
        row("burst: controller CPU".into(), &|c| format!("{:.2} s", c.throughput.controller_cpu_seconds));
        row("burst: peak RSS".into(), &|c| mib(c.throughput.controller_at_end.peak_rss_bytes));
        row("leader start: configured pods already there".into(), &|c| c.leader_start.configured_pods.to_string());
        row("leader start: lease held / new pod configured".into(), &|c| {
            format!("{:.2} s / {:.2} s", c.leader_start.lease_seconds, c.leader_start.new_pod_configured_seconds)
        });
        row("leader start: CPU / peak RSS".into(), &|c| {
            format!(
                "{:.2} s / {}",
                c.leader_start.controller_cpu_seconds,
                mib(c.leader_start.controller_at_configured.peak_rss_bytes)
            )
        });
        row("leader start: API requests / UFM adds".into(), &|c| {
            format!("{} / {}", c.leader_start.api_requests, c.leader_start.ufm_adds.requests)
        });
        let mut header = vec![""];
        header.extend(self.columns.iter().map(|c| c.kind.as_str()));
        format!("compare: daemons side by side\n{}\n{}", self.machine.line(), table(&header, &rows))
    }
}

fn ms(v: f64) -> String {
    if v >= 1000.0 { format!("{:.2} s", v / 1000.0) } else { format!("{v:.2} ms") }
}

#[cfg(test)]
mod tests {
    use super::ms;

    #[test]
    fn milliseconds_read_as_seconds_from_one_second_on() {
        assert_eq!(ms(1.234), "1.23 ms");
        assert_eq!(ms(2500.0), "2.50 s");
    }
}
