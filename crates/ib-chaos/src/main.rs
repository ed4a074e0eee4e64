//! `ib-chaos`: the long chaos soak. Build the controller first (`cargo build --release`), then
//! `cargo run --release -p ib-chaos -- --seeds 10 --pods 300`. Prints one line per seed and a JSON
//! report; exits 1 if any seed violated an invariant.
//!
//! Hostile tenants are on by default (`--hostile false` turns them off): a soak that only shows honest
//! pods would keep passing while any tenant can break isolation. Every `--small-pool-every`-th seed runs
//! with a pool of `--small-pool` GUIDs.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser};
use ib_chaos::hostile::Attack;
use ib_chaos::{HostileOptions, SoakOptions, run};

#[derive(Debug, Parser)]
#[command(name = "ib-chaos", about = "Chaos soak of ib-kubernetes on the emulated cluster")]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// The first seed; seeds run are first..first+seeds.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Honest pods created per seed.
    #[arg(long, default_value_t = 300)]
    pods: usize,
    /// Hostile tenants beside the faults (forged claims, oversized annotations, requested GUIDs,
    /// cross-namespace references).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    hostile: bool,
    /// Hostile pods per seed.
    #[arg(long, default_value_t = 30)]
    hostile_pods: usize,
    /// Size of the oversized hostile annotations, in KiB.
    #[arg(long, default_value_t = 200)]
    big_annotation_kib: usize,
    /// Elements of the many-element hostile annotations.
    #[arg(long, default_value_t = 2000)]
    many_elements: usize,
    /// Only these attacks (comma-separated labels, e.g. forged-missing-nad,squeeze); default: all.
    #[arg(long, value_delimiter = ',', value_parser = parse_attack)]
    attacks: Vec<Attack>,
    /// GUIDs in the pool of the small-pool seeds.
    #[arg(long, default_value_t = 8)]
    small_pool: u64,
    /// Seeds divisible by this run with the small pool; 0: none.
    #[arg(long, default_value_t = 3)]
    small_pool_every: u64,
    #[arg(long, default_value_t = 4)]
    pkeys: u32,
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Seconds of churn and faults per seed.
    #[arg(long, default_value_t = 30)]
    fault_seconds: u64,
    /// The ib-kubernetes binary; by default the one next to this program.
    #[arg(long)]
    controller: Option<PathBuf>,
    /// Where kubeconfigs and replica logs go.
    #[arg(long, default_value = "target/chaos")]
    work_dir: PathBuf,
    /// Write the reports as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Violations printed per invariant and seed; the JSON report has them all.
const SHOWN_PER_INVARIANT: usize = 8;

fn parse_attack(label: &str) -> Result<Attack, String> {
    Attack::from_label(label).ok_or_else(|| format!("unknown attack {label:?}; the attacks are {}", Attack::labels()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let controller = match ib_sim::binary::controller_binary(args.controller.clone()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("ib-chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ib-chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut reports = Vec::new();
    let mut failed = false;
    for seed in args.first_seed..args.first_seed + args.seeds {
        let options = SoakOptions {
            seed,
            pods: args.pods,
            pkeys: args.pkeys,
            replicas: args.replicas,
            fault_time: Duration::from_secs(args.fault_seconds),
            converge_deadline: Duration::from_secs(180),
            controller: controller.clone(),
            work_dir: args.work_dir.join(format!("seed-{seed}")),
            kills: true,
            hostile: args.hostile.then(|| HostileOptions {
                pods: args.hostile_pods,
                big_annotation_bytes: args.big_annotation_kib * 1024,
                many_elements: args.many_elements,
                only: args.attacks.clone(),
            }),
            small_pool: (args.small_pool_every > 0 && seed % args.small_pool_every == 0).then_some(args.small_pool),
        };
        match runtime.block_on(run(&options)) {
            Ok(report) => {
                let faults: usize = report.faults.values().sum();
                println!(
                    "seed {seed:>3}: pods {:>4} live {:>4} interfaces {:>4} | hostile {:>3} given {:>3}{} | faults {faults:>3} kills {:>2} | converged {} | violations {}",
                    report.pods_created,
                    report.pods_live,
                    report.interfaces_configured,
                    report.hostile_pods,
                    report.hostile_interfaces_given,
                    report.small_pool.map_or(String::new(), |n| format!(
                        " pool {n}{}",
                        if report.pool_exhausted { " (exhausted)" } else { "" }
                    )),
                    report.kills,
                    report.converge_seconds.map_or("never".to_owned(), |s| format!("{s:.1} s")),
                    report.violations.len()
                );
                for line in ib_chaos::invariants::summary(&report.violations, SHOWN_PER_INVARIANT) {
                    println!("    {line}");
                }
                failed |= !report.violations.is_empty();
                reports.push(report);
            }
            Err(e) => {
                eprintln!("seed {seed}: the soak itself failed: {e}");
                failed = true;
            }
        }
    }
    if let Some(path) = &args.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(text) => {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("ib-chaos: cannot write {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("ib-chaos: {e}"),
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
