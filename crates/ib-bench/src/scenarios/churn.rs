//! Sustained churn: with a steady population of configured pods, create one and delete the oldest at a
//! fixed rate for minutes — an hour of a busy cluster compressed. Latency and RSS are recorded over time
//! (memory must not grow), and at the end UFM's memberships must equal exactly the live pods' GUIDs.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use ib_model::Guid;
use ib_sim::demo::stats::Percentiles;
use kube_emulator::Resource;
use serde::{Deserialize, Serialize};

use super::{Bench, CONFIGURE_DEADLINE, ScenarioError, not_configured};
use crate::cluster::{ApiWrites, Cluster, NAMESPACE, pkey_of};
use crate::report::{Machine, mib, table};

const CONVERGE_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct ChurnOptions {
    pub alive: usize,
    /// Pods created (and as many deleted) per second.
    pub rate: f64,
    pub seconds: f64,
    pub pkeys: u16,
    /// Latency is reported per window of this many seconds; RSS is sampled this often too.
    pub window_seconds: f64,
}

impl Default for ChurnOptions {
    fn default() -> Self {
        ChurnOptions { alive: 20_000, rate: 200.0, seconds: 300.0, pkeys: 4, window_seconds: 10.0 }
    }
}

/// One window of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// Seconds since the churn began, at the end of the window.
    pub at_s: f64,
    /// Latency of the pods created in the window.
    pub latency: Percentiles,
    pub rss_bytes: u64,
    pub controller_cpu_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnReport {
    pub machine: Machine,
    pub alive: usize,
    pub rate_per_s: f64,
    pub seconds: f64,
    pub created: usize,
    pub deleted: usize,
    pub latency: Percentiles,
    pub windows: Vec<Window>,
    /// Mean RSS of the first and of the last fifth of the windows.
    pub rss_first_fifth_bytes: u64,
    pub rss_last_fifth_bytes: u64,
    pub rss_growth_percent: f64,
    /// UFM's memberships equal the live pods' GUIDs after the run.
    pub ufm_verified: bool,
    pub ufm_missing: usize,
    pub ufm_extra: usize,
    pub converged_after_s: f64,
    /// Writes to the API server during the churn: ownership record writes and pod patches.
    pub api_writes: ApiWrites,
}

struct Live {
    name: String,
    pkey_index: u16,
}

pub async fn run(bench: &Bench, options: &ChurnOptions) -> Result<ChurnReport, ScenarioError> {
    if !(options.rate.is_finite() && options.rate > 0.0) {
        return Err(ScenarioError::Option { option: "--rate", value: options.rate.to_string(), reason: "must be > 0" });
    }
    if !(options.window_seconds.is_finite() && options.window_seconds > 0.0) {
        return Err(ScenarioError::Option {
            option: "--window",
            value: options.window_seconds.to_string(),
            reason: "must be > 0",
        });
    }
    let cluster = Cluster::start(options.pkeys).await?;
    let (mut controller, observer) = bench.leading_controller(&cluster, "churn").await?;
    let pkeys = usize::from(options.pkeys);
    let api = cluster.api();

    let mut live: VecDeque<Live> = VecDeque::with_capacity(options.alive + 1);
    for i in 0..options.alive {
        let name = format!("fill-{i}");
        let pkey_index = (i % pkeys) as u16;
        cluster.create_ib_pod(&name, i, pkey_index)?;
        live.push_back(Live { name, pkey_index });
    }
    if !observer.wait_configured(options.alive + 1, CONFIGURE_DEADLINE).await {
        return Err(not_configured("the initial population", observer.configured_count(), options.alive, &controller));
    }
    // The warm-up pod goes as well, so that the population is exactly the live pods.
    let _ = api.delete(Resource::Pods, NAMESPACE, "warm-up");

    let total = (options.rate * options.seconds).round() as usize;
    let window = Duration::from_secs_f64(options.window_seconds);
    let mut created: Vec<(String, f64)> = Vec::with_capacity(total);
    let mut samples: Vec<(f64, u64, f64)> = Vec::new();
    let start = tokio::time::Instant::now();
    let started = Instant::now();
    let mut next_sample = window;
    let mut last_cpu = controller.usage()?.cpu_seconds;
    let mut deleted = 0;
    // The API server's request log holds fewer requests than a long run makes: its counts are taken
    // and the log emptied at every window.
    api.clear_requests();
    let mut api_writes = ApiWrites::default();
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / options.rate);
        tokio::time::sleep_until(start + due).await;
        if started.elapsed() >= next_sample {
            let u = controller.usage()?;
            samples.push((next_sample.as_secs_f64(), u.rss_bytes, u.cpu_seconds - last_cpu));
            last_cpu = u.cpu_seconds;
            next_sample += window;
            api_writes = api_writes.plus(cluster.api_writes());
            api.clear_requests();
        }
        let name = format!("churn-{i}");
        let pkey_index = (i % pkeys) as u16;
        observer.created(&name);
        cluster.create_ib_pod(&name, i, pkey_index)?;
        created.push((name.clone(), started.elapsed().as_secs_f64()));
        live.push_back(Live { name, pkey_index });
        if let Some(oldest) = live.pop_front() {
            let _ = api.delete(Resource::Pods, NAMESPACE, &oldest.name);
            deleted += 1;
        }
    }
    let churn_seconds = started.elapsed().as_secs_f64();
    if !observer.wait_configured(options.alive + 1 + total, CONFIGURE_DEADLINE).await {
        let done = created.iter().filter(|(n, _)| observer.is_configured(n)).count();
        return Err(not_configured("the churned pods", done, total, &controller));
    }

    // UFM must end with exactly the live pods' GUIDs in their partitions.
    let expected: BTreeSet<(u16, Guid)> = live
        .iter()
        .flat_map(|l| {
            let pkey = pkey_of(l.pkey_index);
            observer.configured(&l.name).map(|c| c.guids).unwrap_or_default().into_iter().map(move |g| (pkey, g))
        })
        .collect();
    let api_writes = api_writes.plus(cluster.api_writes());
    let converge_start = Instant::now();
    let deadline = tokio::time::Instant::now() + CONVERGE_DEADLINE;
    let mut actual = cluster.ufm_memberships();
    while actual != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        actual = cluster.ufm_memberships();
    }
    let converged_after_s = converge_start.elapsed().as_secs_f64();

    let windows = windows(&observer, &created, &samples, options.window_seconds);
    let fifth = (windows.len() / 5).max(1);
    let mean = |ws: &[Window]| {
        if ws.is_empty() { 0 } else { ws.iter().map(|w| w.rss_bytes).sum::<u64>() / ws.len() as u64 }
    };
    let first = mean(&windows[..fifth.min(windows.len())]);
    let last = mean(&windows[windows.len().saturating_sub(fifth)..]);
    let latencies: Vec<Duration> = created.iter().filter_map(|(n, _)| observer.latency(n)).collect();
    Ok(ChurnReport {
        machine: Machine::this(),
        alive: options.alive,
        rate_per_s: options.rate,
        seconds: churn_seconds,
        created: total,
        deleted,
        latency: Percentiles::of(&latencies),
        windows,
        rss_first_fifth_bytes: first,
        rss_last_fifth_bytes: last,
        rss_growth_percent: if first == 0 { 0.0 } else { 100.0 * (last as f64 - first as f64) / first as f64 },
        ufm_verified: actual == expected,
        ufm_missing: expected.difference(&actual).count(),
        ufm_extra: actual.difference(&expected).count(),
        converged_after_s,
        api_writes,
    })
}

/// Latency of the pods created in each window, beside the RSS sampled at its end.
fn windows(
    observer: &ib_sim::demo::observer::Observer,
    created: &[(String, f64)],
    samples: &[(f64, u64, f64)],
    window_seconds: f64,
) -> Vec<Window> {
    samples
        .iter()
        .map(|&(at_s, rss_bytes, cpu)| {
            let from = at_s - window_seconds;
            let latencies: Vec<Duration> = created
                .iter()
                .filter(|(_, t)| *t >= from && *t < at_s)
                .filter_map(|(n, _)| observer.latency(n))
                .collect();
            Window {
                at_s,
                latency: Percentiles::of(&latencies),
                rss_bytes,
                controller_cpu_percent: 100.0 * cpu / window_seconds,
            }
        })
        .collect()
}

impl ChurnReport {
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .windows
            .iter()
            .map(|w| {
                vec![
                    format!("{:.0}", w.at_s),
                    format!("{:.2}", w.latency.p50_ms),
                    format!("{:.2}", w.latency.p99_ms),
                    format!("{:.1}", w.latency.max_ms),
                    mib(w.rss_bytes),
                    format!("{:.0}%", w.controller_cpu_percent),
                ]
            })
            .collect();
        format!(
            "churn: {} pods alive, {}/s created and deleted for {:.0} s ({} created, {} deleted)\n{}\n{}\n\
             overall latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms\n\
             RSS first fifth {}, last fifth {} ({:+.1}%)\n\
             UFM verified: {} (missing {}, extra {}, after {:.1} s)\n\
             API writes: {} record writes ({:.2} per pod created), {} pod patches",
            self.alive,
            self.rate_per_s,
            self.seconds,
            self.created,
            self.deleted,
            self.machine.line(),
            table(&["t (s)", "p50 ms", "p99 ms", "max ms", "RSS", "ctrl CPU"], &rows),
            self.latency.p50_ms,
            self.latency.p99_ms,
            self.latency.max_ms,
            mib(self.rss_first_fifth_bytes),
            mib(self.rss_last_fifth_bytes),
            self.rss_growth_percent,
            self.ufm_verified,
            self.ufm_missing,
            self.ufm_extra,
            self.converged_after_s,
            self.api_writes.records,
            self.api_writes.records as f64 / self.created.max(1) as f64,
            self.api_writes.pod_patches,
        )
    }
}
