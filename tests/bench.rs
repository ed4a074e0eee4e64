//! Every benchmark scenario at a small size against the real binary: each must run to the end and its
//! report must account for exactly the work it did. The figures themselves are not asserted (the
//! machines are shared and noisy); `cargo run --release -p ib-bench -- all` measures at scale.

use std::path::{Path, PathBuf};

use ib_bench::controller_kind::ControllerKind;
use ib_bench::plot;
use ib_bench::rails::Layout;
use ib_bench::scenarios::Bench;
use ib_bench::scenarios::churn::{self, ChurnOptions};
use ib_bench::scenarios::latency::{self, LatencyOptions};
use ib_bench::scenarios::leader_start::{self, LeaderStartOptions};
use ib_bench::scenarios::memory::{self, MemoryOptions};
use ib_bench::scenarios::throughput::{self, ThroughputOptions};
use ib_bench::scenarios::{efficiency, gang, gang_mix, gpu_start};
use ib_bench::ufm_service::UfmSweep;

fn bench(name: &str) -> Bench {
    let logs = std::env::temp_dir().join(format!("ib-bench-test-{}-{name}", std::process::id()));
    Bench { controller: PathBuf::from(env!("CARGO_BIN_EXE_ib-kubernetes")), logs, kind: ControllerKind::Ours }
}

/// The font the plots use; plots are checked only where it is installed.
fn font() -> Option<&'static Path> {
    let path = Path::new(plot::DEFAULT_FONT);
    if path.is_file() {
        return Some(path);
    }
    println!("SKIP plot checks: no font at {} (install fonts-dejavu-core)", path.display());
    None
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000, "{} is not a PNG", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_counts_every_pod_and_measures_the_floor() {
    let options = LatencyOptions { rates: vec![20.0, 100.0], seconds: 1.0, pkeys: 2 };
    let report = latency::run(&bench("latency"), &options).await.expect("latency runs");
    assert!(report.floor.total_ms > 0.0 && report.floor.samples > 0, "{:?}", report.floor);
    assert_eq!(report.steps.iter().map(|s| s.pods).collect::<Vec<_>>(), [20, 100]);
    for step in &report.steps {
        assert_eq!(step.latency.samples, step.pods, "{step:?}");
        assert!(step.latency.p50_ms > 0.0 && step.latency.p50_ms <= step.latency.max_ms, "{step:?}");
        // Every pod's GUID was added to UFM, each exactly once.
        assert_eq!(step.ufm_adds.guids, step.pods as u64, "{step:?}");
    }
    assert!(report.controller_at_end.rss_bytes > 0);
    if let Some(font) = font() {
        let dir = tempfile::tempdir().unwrap();
        plot::load_font(font).unwrap();
        let path = dir.path().join("latency.png");
        plot::latency_vs_rate(&report, &path).unwrap();
        assert_png(&path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_configures_the_whole_burst_in_batches() {
    let report = throughput::run(&bench("throughput"), &ThroughputOptions { pods: 400, pkeys: 2 }).await.unwrap();
    assert_eq!(report.latency.samples, 400);
    assert_eq!(report.ufm_adds.guids, 400);
    assert!(report.ufm_adds.requests >= 2 && report.ufm_adds.requests <= 400, "{:?}", report.ufm_adds);
    assert!(report.all_configured_seconds > 0.0 && report.pods_per_second > 0.0);
    assert!(report.controller_cpu_seconds > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_start_keeps_every_held_guid() {
    let report = leader_start::run(&bench("leader"), &LeaderStartOptions { pods: 2_000, pkeys: 4 }).await.unwrap();
    assert!(report.new_guid_unique, "the new pod was given a GUID a seeded pod holds");
    // Only the new pod's GUID is added; nothing the seeded pods hold is touched.
    assert_eq!((report.ufm_adds.requests, report.ufm_adds.guids), (1, 1));
    assert!(report.lease_seconds <= report.new_pod_configured_seconds);
    assert!(report.controller_cpu_seconds > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_reports_every_step() {
    let report = memory::run(&bench("memory"), &MemoryOptions { steps: vec![0, 2_000], pkeys: 2 }).await.unwrap();
    assert_eq!(report.steps.len(), 2);
    assert_eq!((report.steps[1].pods, report.steps[1].ib_pods), (2_000, 1_000));
    assert!(report.steps.iter().all(|s| s.usage.rss_bytes > 0 && s.usage.peak_rss_bytes >= s.usage.rss_bytes));
    assert!(report.steps[0].bytes_per_pod.is_none() && report.steps[1].bytes_per_pod.is_some());
    if let Some(font) = font() {
        let dir = tempfile::tempdir().unwrap();
        plot::load_font(font).unwrap();
        let path = dir.path().join("rss.png");
        plot::rss_vs_pods(&report, &path).unwrap();
        assert_png(&path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_ends_with_ufm_equal_to_the_live_pods() {
    let options = ChurnOptions { alive: 200, rate: 50.0, seconds: 3.0, pkeys: 2, window_seconds: 1.0 };
    let report = churn::run(&bench("churn"), &options).await.unwrap();
    assert_eq!((report.created, report.deleted), (150, 150));
    assert!(report.ufm_verified, "missing {} extra {}", report.ufm_missing, report.ufm_extra);
    assert_eq!(report.latency.samples, 150);
    assert!(!report.windows.is_empty());
    if let Some(font) = font() {
        let dir = tempfile::tempdir().unwrap();
        plot::load_font(font).unwrap();
        let path = dir.path().join("churn.png");
        plot::churn(&report, &path).unwrap();
        assert_png(&path);
    }
}

/// A UFM sweep small enough for the suite: the fast emulator and a slow one, one request at a time.
fn small_sweep() -> UfmSweep {
    UfmSweep { service_ms: vec![0.1, 50.0], spread: 0.25, concurrency: Some(1), seed: 7 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gang_jobs_configure_every_rail_and_report_the_floor() {
    let options =
        gang::GangOptions { pods: 6, rails: 8, layouts: vec![Layout::OnePkey, Layout::PerRail], ufm: small_sweep() };
    let report = gang::run(&bench("gang"), &options).await.unwrap();
    assert_eq!(report.runs.len(), 4);
    for run in &report.runs {
        assert!(run.ufm_verified, "every rail's GUID is in its partition: {run:?}");
        assert_eq!(run.latency.samples, 6);
        // Each of the 48 GUIDs was added once, in as many requests as the partitions need at least.
        assert_eq!(run.ufm_adds.guids, 48, "{run:?}");
        let partitions = if run.layout == Layout::OnePkey { 1 } else { 8 };
        assert!(run.ufm_adds.requests >= partitions, "{run:?}");
        assert_eq!((run.floor.sm_requests, run.floor.sm_guids, run.floor.patches), (partitions as usize, 48, 6));
        assert_eq!(run.floor.total_ms, run.floor.sm_ms + run.floor.apply_delay_ms + run.floor.patches_ms);
        assert!(run.job_ready_seconds > 0.0 && run.over_floor > 0.0);
        // About one patch per pod with all its rails in it (a conflict may cost a retry), not one per rail.
        assert!((6..12).contains(&run.api_writes.pod_patches), "{run:?}");
    }
    // At 50 ms a request, served one at a time, the floor holds at least one service time: the
    // setting reached the emulator the controller used.
    let slow = report.runs.iter().find(|r| r.ufm.service_ms == 50.0 && r.layout == Layout::PerRail).unwrap();
    assert!(slow.floor.sm_ms >= 8.0 * 50.0 * 0.75, "eight adds one at a time: {:?}", slow.floor);
    if let Some(font) = font() {
        let dir = tempfile::tempdir().unwrap();
        plot::load_font(font).unwrap();
        let path = dir.path().join("gang.png");
        plot::job_ready_vs_ufm(&report, &path).unwrap();
        assert_png(&path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_of_gang_jobs_ends_with_ufm_equal_to_the_running_jobs() {
    let options = gang_mix::GangMixOptions {
        job_pods: vec![2, 4],
        rails: 8,
        tenants: 2,
        interval_seconds: 0.5,
        lifetime_seconds: 1.0,
        seconds: 2.0,
        ufm: UfmSweep { service_ms: vec![20.0], ..small_sweep() },
    };
    let report = gang_mix::run(&bench("gang-mix"), &options).await.unwrap();
    let run = &report.runs[0];
    assert_eq!(run.jobs.len(), 4);
    assert_eq!(run.jobs.iter().map(|j| j.pods).collect::<Vec<_>>(), [2, 4, 2, 4]);
    assert!(run.ufm_verified, "missing {} extra {}", run.ufm_missing, run.ufm_extra);
    assert!(run.ufm_removes >= 1, "the ended jobs' GUIDs were removed: {run:?}");
    assert_eq!(run.floors.keys().copied().collect::<Vec<_>>(), [2, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_leader_start_reports_memory_per_pod() {
    let options = gpu_start::GpuStartOptions { steps: vec![0, 800], multi_share: 0.25, rails: 8, pkeys: 2 };
    let report = gpu_start::run(&bench("gpu-start"), &options).await.unwrap();
    let step = &report.steps[1];
    assert_eq!((step.pods, step.multi_rail_pods, step.guids), (800, 200, 600 + 200 * 8));
    assert!(step.new_pod_configured_seconds > 0.0);
    assert!(step.at_configured.peak_rss_bytes >= step.settled.rss_bytes.min(step.at_configured.rss_bytes));
    assert!(report.steps[0].bytes_per_pod.is_none() && step.bytes_per_pod.is_some() && step.bytes_per_guid.is_some());
    if let Some(font) = font() {
        let dir = tempfile::tempdir().unwrap();
        plot::load_font(font).unwrap();
        let path = dir.path().join("gpu.png");
        plot::rss_vs_pods_gpu(&report, &path).unwrap();
        assert_png(&path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn efficiency_counts_cpu_per_configured_pod() {
    let options = efficiency::EfficiencyOptions { rates: vec![50.0], seconds: 1.0, rails: 8, pkeys: 2 };
    let report = efficiency::run(&bench("efficiency"), &options).await.unwrap();
    let step = &report.steps[0];
    assert_eq!(step.pods, 50);
    assert!(step.controller_cpu_seconds > 0.0 && step.cpu_us_per_pod > 0.0, "{step:?}");
    assert!(step.cpu_us_per_pod_over_idle <= step.cpu_us_per_pod);
}

/// The Go ib-kubernetes daemon, for the side-by-side runs: its binary in `IB_BENCH_GO_CONTROLLER`,
/// its `ufm.so` in `plugins/` beside it. It is built from its own repository, so a fresh machine does
/// not have it.
fn go_bench(name: &str) -> Option<Bench> {
    let Some(binary) = std::env::var_os("IB_BENCH_GO_CONTROLLER").map(PathBuf::from) else {
        println!("SKIP: the Go daemon is not on this machine (set IB_BENCH_GO_CONTROLLER to its binary)");
        return None;
    };
    let kind = ControllerKind::from_args("go", Some(&binary), None)
        .unwrap_or_else(|e| panic!("IB_BENCH_GO_CONTROLLER={}: {e}", binary.display()));
    let logs = std::env::temp_dir().join(format!("ib-bench-test-{}-{name}", std::process::id()));
    Some(Bench { controller: binary, logs, kind })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gang_jobs_side_by_side_pair_each_job_of_both_daemons() {
    let Some(go) = go_bench("gang-go") else { return };
    let options = gang::GangOptions {
        pods: 3,
        rails: 2,
        layouts: vec![Layout::OnePkey, Layout::PerRail],
        ufm: UfmSweep { service_ms: vec![0.1], ..small_sweep() },
    };
    let report = gang::run_each(&[bench("gang-ours"), go], &options).await.unwrap();
    assert_eq!(report.daemons(), ["ours", "go"]);
    // Job by job, each daemon in turn.
    let order: Vec<(&str, Layout)> = report.runs.iter().map(|r| (r.daemon.as_str(), r.layout)).collect();
    assert_eq!(
        order,
        [("ours", Layout::OnePkey), ("go", Layout::OnePkey), ("ours", Layout::PerRail), ("go", Layout::PerRail)]
    );
    for run in &report.runs {
        assert!(run.unfinished.is_none() && run.ufm_verified, "every rail's GUID is in its partition: {run:?}");
        // This controller adds each GUID once. The Go daemon queues a pod once per interface on a network,
        // so with both rails on one it sends each GUID (and patches each pod) once per rail again.
        let once = if run.daemon == "ours" || run.layout == Layout::PerRail { 6 } else { 12 };
        assert_eq!(run.ufm_adds.guids, once, "{run:?}");
    }
    let paired = report.paired("go");
    assert_eq!(paired.len(), 2);
    assert!(paired.iter().all(|p| p.other_finished && p.ratio > 0.0), "{paired:?}");
    if let Some(font) = font() {
        let dir = tempfile::tempdir().unwrap();
        plot::load_font(font).unwrap();
        let path = dir.path().join("gang-go.png");
        plot::job_ready_vs_ufm(&report, &path).unwrap();
        assert_png(&path);
    }
}
