//! The controller's resident memory as the number of watched pods grows (half of them InfiniBand pods,
//! configured, half with no extra network), each size with a fresh cluster and a fresh process.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Bench, ScenarioError, require_steps};
use crate::cluster::Cluster;
use crate::process::Usage;
use crate::report::{Machine, mib, table};

/// RSS is sampled until it moves by less than this between samples a second apart.
const SETTLE_PERIOD: Duration = Duration::from_secs(1);
const SETTLE_TOLERANCE: f64 = 0.01;
const SETTLE_MAX: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// Pod counts, one step each.
    pub steps: Vec<usize>,
    pub pkeys: u16,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions { steps: vec![0, 10_000, 100_000], pkeys: 4 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryStep {
    pub pods: usize,
    pub ib_pods: usize,
    /// Settled RSS once the controller had synced and configured a probe pod.
    pub usage: Usage,
    /// (RSS − RSS of the smallest step) / (pods − pods of the smallest step).
    pub bytes_per_pod: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryReport {
    pub machine: Machine,
    pub steps: Vec<MemoryStep>,
}

pub async fn run(bench: &Bench, options: &MemoryOptions) -> Result<MemoryReport, ScenarioError> {
    require_steps(&options.steps)?;
    let mut steps: Vec<MemoryStep> = Vec::new();
    for &pods in &options.steps {
        let cluster = Cluster::start(options.pkeys).await?;
        let ib = pods / 2;
        cluster.seed("seeded", ib, pods - ib)?;
        // The probe pod shows that the controller has read everything and acts on new pods.
        let (mut controller, _observer) = bench.leading_controller(&cluster, &format!("memory-{pods}")).await?;
        let usage = controller.settled_usage(SETTLE_PERIOD, SETTLE_TOLERANCE, SETTLE_MAX).await?;
        let bytes_per_pod = steps
            .first()
            .filter(|base| pods > base.pods)
            .map(|base| (usage.rss_bytes as f64 - base.usage.rss_bytes as f64) / (pods - base.pods) as f64);
        steps.push(MemoryStep { pods, ib_pods: ib, usage, bytes_per_pod });
        controller.stop(STOP_GRACE).await;
    }
    Ok(MemoryReport { machine: Machine::this(), steps })
}

impl MemoryReport {
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.pods.to_string(),
                    s.ib_pods.to_string(),
                    mib(s.usage.rss_bytes),
                    mib(s.usage.peak_rss_bytes),
                    s.bytes_per_pod.map(|b| format!("{b:.0}")).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        format!(
            "memory: controller RSS by pods watched\n{}\n{}",
            self.machine.line(),
            table(&["pods", "IB pods", "RSS", "peak RSS", "bytes/pod over the first step"], &rows)
        )
    }
}
