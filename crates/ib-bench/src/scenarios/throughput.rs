//! A burst: many pods created at once on a few partitions; how long until all are configured, and how
//! well the UFM requests are batched.

use std::time::{Duration, Instant};

use ib_sim::demo::stats::Percentiles;
use serde::{Deserialize, Serialize};

use super::{Bench, ScenarioError, not_configured};
use crate::cluster::{ApiWrites, Cluster, UfmAdds};
use crate::process::Usage;
use crate::report::{Machine, mib, table};

#[derive(Debug, Clone)]
pub struct ThroughputOptions {
    pub pods: usize,
    pub pkeys: u16,
}

impl Default for ThroughputOptions {
    fn default() -> Self {
        ThroughputOptions { pods: 10_000, pkeys: 4 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThroughputReport {
    pub machine: Machine,
    pub pods: usize,
    pub pkeys: u16,
    /// From the first create to the last create.
    pub create_seconds: f64,
    /// From the first create until every pod read configured.
    pub all_configured_seconds: f64,
    pub pods_per_second: f64,
    pub latency: Percentiles,
    pub ufm_adds: UfmAdds,
    pub guids_per_add: f64,
    /// Ownership-record writes and pod patches during the burst.
    #[serde(default)]
    pub api_writes: ApiWrites,
    /// Every API request the controller made during the burst.
    #[serde(default)]
    pub api_requests: u64,
    pub controller_cpu_seconds: f64,
    pub controller_at_end: Usage,
}

pub async fn run(bench: &Bench, options: &ThroughputOptions) -> Result<ThroughputReport, ScenarioError> {
    if options.pkeys == 0 {
        return Err(ScenarioError::Option { option: "--pkeys", value: "0".into(), reason: "at least one partition" });
    }
    let cluster = Cluster::start(options.pkeys).await?;
    let (mut controller, observer) = bench.leading_controller(&cluster, "throughput").await?;
    let names: Vec<String> = (0..options.pods).map(|i| format!("burst-{i}")).collect();
    let adds_before = cluster.ufm_adds();
    let writes_before = cluster.api_writes();
    let requests_before = cluster.api_requests();
    let cpu_before = controller.usage()?.cpu_seconds;
    let started = Instant::now();
    for (i, name) in names.iter().enumerate() {
        observer.created(name);
        cluster.create_ib_pod(name, i, (i % usize::from(options.pkeys)) as u16)?;
    }
    let create_seconds = started.elapsed().as_secs_f64();
    // The warm-up pod is configured already.
    if !observer.wait_configured(names.len() + 1, bench.configure_deadline()).await {
        let done = names.iter().filter(|n| observer.is_configured(n)).count();
        return Err(not_configured("the burst", done, names.len(), &controller));
    }
    let last = names.iter().filter_map(|n| observer.configured(n).map(|c| c.at)).max().unwrap_or(started);
    let all_configured_seconds = last.saturating_duration_since(started).as_secs_f64();
    let controller_at_end = controller.usage()?;
    let adds = cluster.ufm_adds().since(adds_before);
    let api_writes = cluster.api_writes().since(writes_before);
    let api_requests = cluster.api_requests().saturating_sub(requests_before);
    let latencies: Vec<Duration> = names.iter().filter_map(|n| observer.latency(n)).collect();
    Ok(ThroughputReport {
        machine: Machine::this(),
        pods: options.pods,
        pkeys: options.pkeys,
        create_seconds,
        all_configured_seconds,
        pods_per_second: options.pods as f64 / all_configured_seconds.max(1e-9),
        latency: Percentiles::of(&latencies),
        ufm_adds: adds,
        guids_per_add: adds.guids_per_request(),
        api_writes,
        api_requests,
        controller_cpu_seconds: controller_at_end.cpu_seconds - cpu_before,
        controller_at_end,
    })
}

impl ThroughputReport {
    pub fn table(&self) -> String {
        let rows = vec![
            vec!["pods (PKeys)".into(), format!("{} ({})", self.pods, self.pkeys)],
            vec!["created in".into(), format!("{:.2} s", self.create_seconds)],
            vec!["all configured after".into(), format!("{:.2} s", self.all_configured_seconds)],
            vec!["pods configured per second".into(), format!("{:.0}", self.pods_per_second)],
            vec![
                "latency p50 / p99 / max".into(),
                format!("{:.0} / {:.0} / {:.0} ms", self.latency.p50_ms, self.latency.p99_ms, self.latency.max_ms),
            ],
            vec!["UFM add requests".into(), self.ufm_adds.requests.to_string()],
            vec!["GUIDs per add request".into(), format!("{:.1}", self.guids_per_add)],
            vec![
                "record writes (per pod) / pod patches".into(),
                format!(
                    "{} ({:.3}) / {}",
                    self.api_writes.records,
                    self.api_writes.records as f64 / self.pods.max(1) as f64,
                    self.api_writes.pod_patches
                ),
            ],
            vec!["controller CPU".into(), format!("{:.2} s", self.controller_cpu_seconds)],
            vec![
                "controller RSS (peak)".into(),
                format!("{} ({})", mib(self.controller_at_end.rss_bytes), mib(self.controller_at_end.peak_rss_bytes)),
            ],
        ];
        format!("throughput: a burst of pods\n{}\n{}", self.machine.line(), table(&["", "value"], &rows))
    }
}
