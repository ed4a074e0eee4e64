//! `ib-chaos`: the long chaos soak. Build the controller first (`cargo build --release`), then
//! `cargo run --release -p ib-chaos -- --seeds 20 --pods 500`. Prints one line per seed and a JSON
//! report; exits 1 if any seed violated an invariant.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ib_chaos::{SoakOptions, run};

#[derive(Debug, Parser)]
#[command(name = "ib-chaos", about = "Chaos soak of ib-kubernetes on the emulated cluster")]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// The first seed; seeds run are first..first+seeds.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    #[arg(long, default_value_t = 500)]
    pods: usize,
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
        };
        match runtime.block_on(run(&options)) {
            Ok(report) => {
                let faults: usize = report.faults.values().sum();
                println!(
                    "seed {seed:>3}: pods {:>4} live {:>4} interfaces {:>4} | faults {faults:>3} kills {:>2} | converged {} | violations {}",
                    report.pods_created,
                    report.pods_live,
                    report.interfaces_configured,
                    report.kills,
                    report.converge_seconds.map_or("never".to_owned(), |s| format!("{s:.1} s")),
                    report.violations.len()
                );
                for v in &report.violations {
                    println!("    {v}");
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
