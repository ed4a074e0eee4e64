//! `ib-bench`: benchmarks of ib-kubernetes at scale. Build the controller first (`cargo build --release`),
//! then e.g. `cargo run --release -p ib-bench -- latency`. Every scenario prints a table and writes
//! `<out>/<scenario>.json`; `plot` turns those into PNGs.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ib_bench::compare::{self, CompareOptions};
use ib_bench::controller_kind::ControllerKind;
use ib_bench::plot::{self, DEFAULT_FONT};
use ib_bench::rails::Layout;
use ib_bench::report::{read_json, write_json};
use ib_bench::scenarios::churn::ChurnOptions;
use ib_bench::scenarios::efficiency::EfficiencyOptions;
use ib_bench::scenarios::gang::GangOptions;
use ib_bench::scenarios::gang_mix::GangMixOptions;
use ib_bench::scenarios::gpu_start::GpuStartOptions;
use ib_bench::scenarios::latency::LatencyOptions;
use ib_bench::scenarios::leader_start::LeaderStartOptions;
use ib_bench::scenarios::memory::MemoryOptions;
use ib_bench::scenarios::throughput::ThroughputOptions;
use ib_bench::scenarios::{Bench, churn, latency, leader_start, memory, throughput};
use ib_bench::scenarios::{efficiency, gang, gang_mix, gpu_start};
use ib_bench::ufm_service::UfmSweep;

#[derive(Debug, Parser)]
#[command(name = "ib-bench", about = "Benchmarks of ib-kubernetes: the controller in its own process")]
struct Args {
    /// The ib-kubernetes binary; by default the one next to this program.
    #[arg(long, global = true)]
    controller: Option<PathBuf>,
    /// Which daemon --controller is: `ours`, or `go` for the Go ib-kubernetes daemon (started with no
    /// arguments, its UFM plugin loaded from --go-plugins).
    #[arg(long, global = true, default_value = "ours")]
    controller_kind: String,
    /// The Go daemon's plugin directory (holding `ufm.so`); by default `plugins/` beside its binary.
    #[arg(long, global = true)]
    go_plugins: Option<PathBuf>,
    /// Where the JSON reports (read by `plot`) and the controller logs (`logs/`) are written.
    #[arg(long, global = true, default_value = "target/ib-bench")]
    out: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Pod-to-configured latency at fixed creation rates, against the floor.
    Latency {
        #[arg(long, value_delimiter = ',', default_values_t = [10.0, 100.0, 1000.0])]
        rates: Vec<f64>,
        /// Seconds of creation per rate.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
    },
    /// A burst of pods on a few partitions: time to configure all, UFM batching.
    Throughput {
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        #[arg(long, default_value_t = 4)]
        pkeys: u16,
    },
    /// A controller starting among many configured pods: time until a new pod is configured.
    LeaderStart {
        #[arg(long, default_value_t = 100_000)]
        pods: usize,
    },
    /// Controller RSS by pods watched.
    Memory {
        #[arg(long, value_delimiter = ',', default_values_t = [0, 10_000, 100_000])]
        steps: Vec<usize>,
    },
    /// Sustained create/delete with a steady population: latency and RSS over time, UFM verified.
    Churn {
        #[arg(long, default_value_t = 20_000)]
        alive: usize,
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long, default_value_t = 300.0)]
        seconds: f64,
        /// Seconds per reported window (latency and RSS).
        #[arg(long, default_value_t = 10.0)]
        window: f64,
    },
    /// A gang job of 8-rail pods created at once, for each layout and UFM service time: job-ready time
    /// against the job floor.
    Gang {
        /// Also run every job with the Go daemon (this binary), each job with both daemons in turn,
        /// and pair their job-ready times.
        #[arg(long)]
        go_controller: Option<PathBuf>,
        #[arg(long, default_value_t = 512)]
        pods: usize,
        #[arg(long, default_value_t = 8)]
        rails: usize,
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Layout::OnePkey, Layout::PerRail])]
        layouts: Vec<Layout>,
        #[command(flatten)]
        ufm: UfmArgs,
    },
    /// Gang jobs of 8-rail pods starting and ending at a steady pace, for each UFM service time.
    GangMix {
        /// Pods of each job, in turn.
        #[arg(long, value_delimiter = ',', default_values_t = [16, 64, 128])]
        job_pods: Vec<usize>,
        #[arg(long, default_value_t = 8)]
        rails: usize,
        #[arg(long, default_value_t = 4)]
        tenants: u16,
        /// Seconds between job starts.
        #[arg(long, default_value_t = 10.0)]
        interval: f64,
        /// Seconds from a job's start to its end.
        #[arg(long, default_value_t = 30.0)]
        lifetime: f64,
        /// Jobs start for this many seconds.
        #[arg(long, default_value_t = 120.0)]
        seconds: f64,
        #[command(flatten)]
        ufm: UfmArgs,
    },
    /// A leader starting among GPU pods (all InfiniBand, a share 8-rail): new pod configured, peak and
    /// settled RSS.
    GpuStart {
        #[arg(long, value_delimiter = ',', default_values_t = [0, 10_000, 100_000])]
        steps: Vec<usize>,
        /// Share of the pods with --rails interfaces; the rest have one.
        #[arg(long, default_value_t = 0.25)]
        multi_share: f64,
        #[arg(long, default_value_t = 8)]
        rails: usize,
    },
    /// Controller CPU per configured pod at fixed rates.
    Efficiency {
        #[arg(long, value_delimiter = ',', default_values_t = [100.0, 1000.0])]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Interfaces per pod.
        #[arg(long, default_value_t = 1)]
        rails: usize,
    },
    /// The GPU scenarios (gang, gang-mix, gpu-start, efficiency) with their defaults, then the plots.
    Gpu {
        #[arg(long, default_value = DEFAULT_FONT)]
        font: PathBuf,
        #[arg(long, default_value = "docs/benchmarks")]
        plots: PathBuf,
    },
    /// This controller (--controller) and the Go daemon (--go-controller) through latency, the burst and
    /// a leader start, one after the other in one run: one table with a column each.
    Compare {
        /// The Go daemon's binary.
        #[arg(long)]
        go_controller: PathBuf,
        #[arg(long, value_delimiter = ',', default_values_t = [10.0, 100.0])]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        #[arg(long, default_value_t = 10_000)]
        burst: usize,
        #[arg(long, default_value_t = 100_000)]
        leader_pods: usize,
    },
    /// Every scenario with its defaults, then the plots.
    All {
        #[arg(long, default_value = DEFAULT_FONT)]
        font: PathBuf,
        /// Where the PNGs go.
        #[arg(long, default_value = "docs/benchmarks")]
        plots: PathBuf,
    },
    /// PNG plots from the JSON reports in --out.
    Plot {
        #[arg(long, default_value = DEFAULT_FONT)]
        font: PathBuf,
        #[arg(long, default_value = "docs/benchmarks")]
        plots: PathBuf,
    },
}

/// The emulated UFM's service settings for the GPU scenarios.
#[derive(Debug, Clone, clap::Args)]
struct UfmArgs {
    /// UFM service time per request in milliseconds; one run each.
    #[arg(long = "ufm-ms", value_delimiter = ',', default_values_t = [0.1, 200.0, 1000.0])]
    ufm_ms: Vec<f64>,
    /// Each request's time is drawn uniformly within ± this fraction of the service time.
    #[arg(long = "ufm-spread", default_value_t = 0.25)]
    ufm_spread: f64,
    /// Requests UFM serves at once: a number, or `unlimited`.
    #[arg(long = "ufm-concurrency", default_value = "1", value_parser = parse_concurrency)]
    ufm_concurrency: Concurrency,
    /// Seed of the service-time generator, so that runs repeat.
    #[arg(long = "ufm-seed", default_value_t = 1)]
    ufm_seed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Concurrency(Option<usize>);

fn parse_concurrency(value: &str) -> Result<Concurrency, String> {
    if value == "unlimited" {
        return Ok(Concurrency(None));
    }
    match value.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("--ufm-concurrency {value:?}: a number of at least 1, or `unlimited`")),
        Ok(n) => Ok(Concurrency(Some(n))),
    }
}

impl UfmArgs {
    fn sweep(&self) -> UfmSweep {
        UfmSweep {
            service_ms: self.ufm_ms.clone(),
            spread: self.ufm_spread,
            concurrency: self.ufm_concurrency.0,
            seed: self.ufm_seed,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Scenario::Plot { font, plots } = &args.scenario {
        return report_result(plot_all(&args.out, font, plots));
    }
    let kind =
        match ControllerKind::from_args(&args.controller_kind, args.controller.as_deref(), args.go_plugins.clone()) {
            Ok(kind) => kind,
            Err(e) => {
                eprintln!("ib-bench: {e}");
                return ExitCode::from(2);
            }
        };
    let controller = match ib_sim::binary::controller_binary(args.controller.clone()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("ib-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let logs = args.out.join("logs");
    if let Scenario::Compare { go_controller, rates, seconds, burst, leader_pods } = &args.scenario {
        if kind != ControllerKind::Ours {
            eprintln!(
                "ib-bench: compare runs --controller as this project's controller; name the Go one with --go-controller"
            );
            return ExitCode::from(2);
        }
        let go = match ControllerKind::from_args("go", Some(go_controller), args.go_plugins.clone()) {
            Ok(kind) => kind,
            Err(e) => {
                eprintln!("ib-bench: {e}");
                return ExitCode::from(2);
            }
        };
        let benches = [
            Bench { controller, logs: logs.join("ours"), kind },
            Bench { controller: go_controller.clone(), logs: logs.join("go"), kind: go },
        ];
        let options =
            CompareOptions { rates: rates.clone(), seconds: *seconds, burst: *burst, leader_pods: *leader_pods };
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("ib-bench: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        return report_result(runtime.block_on(async {
            let r = compare::run(&benches, &options).await?;
            emit(&args.out, "compare", &r, r.table())
        }));
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ib-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bench = Bench { controller, logs, kind };
    report_result(runtime.block_on(run(&bench, &args.out, args.go_plugins, args.scenario)))
}

fn report_result(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ib-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(bench: &Bench, out: &Path, go_plugins: Option<PathBuf>, scenario: Scenario) -> anyhow::Result<()> {
    match scenario {
        Scenario::Latency { rates, seconds } => {
            let r = latency::run(bench, &LatencyOptions { rates, seconds, ..LatencyOptions::default() }).await?;
            emit(out, "latency", &r, r.table())
        }
        Scenario::Throughput { pods, pkeys } => {
            let r = throughput::run(bench, &ThroughputOptions { pods, pkeys }).await?;
            emit(out, "throughput", &r, r.table())
        }
        Scenario::LeaderStart { pods } => {
            let r = leader_start::run(bench, &LeaderStartOptions { pods, ..LeaderStartOptions::default() }).await?;
            emit(out, "leader-start", &r, r.table())
        }
        Scenario::Memory { steps } => {
            let r = memory::run(bench, &MemoryOptions { steps, ..MemoryOptions::default() }).await?;
            emit(out, "memory", &r, r.table())
        }
        Scenario::Churn { alive, rate, seconds, window } => {
            let options = ChurnOptions { alive, rate, seconds, window_seconds: window, ..ChurnOptions::default() };
            let r = churn::run(bench, &options).await?;
            emit(out, "churn", &r, r.table())
        }
        Scenario::Gang { go_controller, pods, rails, layouts, ufm } => {
            let mut benches = vec![bench.clone()];
            if let Some(go) = go_controller {
                if bench.kind != ControllerKind::Ours {
                    anyhow::bail!("with --go-controller, --controller is this project's controller");
                }
                let kind = ControllerKind::from_args("go", Some(&go), go_plugins)?;
                benches.push(Bench { controller: go, logs: bench.logs.join("go"), kind });
            }
            let r = gang::run_each(&benches, &GangOptions { pods, rails, layouts, ufm: ufm.sweep() }).await?;
            emit(out, "gang", &r, r.table())
        }
        Scenario::GangMix { job_pods, rails, tenants, interval, lifetime, seconds, ufm } => {
            let options = GangMixOptions {
                job_pods,
                rails,
                tenants,
                interval_seconds: interval,
                lifetime_seconds: lifetime,
                seconds,
                ufm: ufm.sweep(),
            };
            let r = gang_mix::run(bench, &options).await?;
            emit(out, "gang-mix", &r, r.table())
        }
        Scenario::GpuStart { steps, multi_share, rails } => {
            let options = GpuStartOptions { steps, multi_share, rails, ..GpuStartOptions::default() };
            let r = gpu_start::run(bench, &options).await?;
            emit(out, "gpu-start", &r, r.table())
        }
        Scenario::Efficiency { rates, seconds, rails } => {
            let options = EfficiencyOptions { rates, seconds, rails, ..EfficiencyOptions::default() };
            let r = efficiency::run(bench, &options).await?;
            emit(out, "efficiency", &r, r.table())
        }
        Scenario::Gpu { font, plots } => {
            let r = gang::run(bench, &GangOptions::default()).await?;
            emit(out, "gang", &r, r.table())?;
            let r = gang_mix::run(bench, &GangMixOptions::default()).await?;
            emit(out, "gang-mix", &r, r.table())?;
            let r = gpu_start::run(bench, &GpuStartOptions::default()).await?;
            emit(out, "gpu-start", &r, r.table())?;
            let r = efficiency::run(bench, &EfficiencyOptions::default()).await?;
            emit(out, "efficiency", &r, r.table())?;
            plot_all(out, &font, &plots)
        }
        Scenario::All { font, plots } => {
            let r = latency::run(bench, &LatencyOptions::default()).await?;
            emit(out, "latency", &r, r.table())?;
            let r = throughput::run(bench, &ThroughputOptions::default()).await?;
            emit(out, "throughput", &r, r.table())?;
            let r = leader_start::run(bench, &LeaderStartOptions::default()).await?;
            emit(out, "leader-start", &r, r.table())?;
            let r = memory::run(bench, &MemoryOptions::default()).await?;
            emit(out, "memory", &r, r.table())?;
            let r = churn::run(bench, &ChurnOptions::default()).await?;
            emit(out, "churn", &r, r.table())?;
            plot_all(out, &font, &plots)
        }
        Scenario::Plot { font, plots } => plot_all(out, &font, &plots),
        Scenario::Compare { .. } => anyhow::bail!("compare is run before the other scenarios"),
    }
}

fn emit<T: serde::Serialize>(out: &Path, name: &str, report: &T, table: String) -> anyhow::Result<()> {
    let path = write_json(out, name, report)?;
    println!("{table}\n(JSON: {})\n", path.display());
    Ok(())
}

/// Plots whichever reports exist in `out`; an error if none does.
fn plot_all(out: &Path, font: &Path, plots: &Path) -> anyhow::Result<()> {
    plot::load_font(font)?;
    std::fs::create_dir_all(plots).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", plots.display()))?;
    let mut drawn = Vec::new();
    let latency = out.join("latency.json");
    if latency.is_file() {
        let path = plots.join("latency-vs-rate.png");
        plot::latency_vs_rate(&read_json(&latency)?, &path)?;
        drawn.push(path);
    }
    let memory = out.join("memory.json");
    if memory.is_file() {
        let path = plots.join("rss-vs-pods.png");
        plot::rss_vs_pods(&read_json(&memory)?, &path)?;
        drawn.push(path);
    }
    let churn = out.join("churn.json");
    if churn.is_file() {
        let path = plots.join("churn.png");
        plot::churn(&read_json(&churn)?, &path)?;
        drawn.push(path);
    }
    let gang = out.join("gang.json");
    if gang.is_file() {
        let path = plots.join("job-ready-vs-ufm.png");
        plot::job_ready_vs_ufm(&read_json(&gang)?, &path)?;
        drawn.push(path);
    }
    let gpu_start = out.join("gpu-start.json");
    if gpu_start.is_file() {
        let path = plots.join("rss-vs-pods-gpu.png");
        plot::rss_vs_pods_gpu(&read_json(&gpu_start)?, &path)?;
        drawn.push(path);
    }
    if drawn.is_empty() {
        anyhow::bail!(
            "no latency, memory, churn, gang or gpu-start report (.json) in {}: run a scenario first",
            out.display()
        );
    }
    for path in drawn {
        println!("wrote {}", path.display());
    }
    Ok(())
}
