//! `ib-kubernetes`: command line and wiring only; everything else lives in the crates.
#![forbid(unsafe_code)]

mod cli;
mod logging;
mod status;

use std::process::ExitCode;

use clap::Parser;
use tracing::{error, info, warn};

use anyhow::Context as _;
use cli::{Cli, Command, DemoArgs, ProgressArg, SimArgs, StatusArgs};
use ib_controller::Config;
use ib_sim::demo::DemoOptions;
use ib_sim::demo::progress::ProgressMode;
use ib_sim::{RunningSim, SimOptions};
use ib_sm::EnvMap;

/// jemalloc, with a background thread that returns freed pages to the system about a second after they
/// are freed (`.cargo/config.toml` sets that default at build time). With glibc's allocator the transient
/// buffers of a leader's start (the pod and record lists, the subnet manager's listing) stayed resident
/// beside the long-lived state, and the settled RSS was about three times the live heap (BENCHMARKS.md,
/// memory).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(cli::normalize_go_flags(std::env::args())) {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 2, like Go's flag package.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if cli.version {
        println!("{}", cli::version_line());
        return ExitCode::SUCCESS;
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.debug),
        Command::Demo(args) => demo(args, cli.debug),
        Command::Sim(args) => sim(args, cli.debug),
        Command::Status(args) => status(args, cli.debug),
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("ib-kubernetes: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Exit 0 only when the demo's verification passed.
fn demo(args: DemoArgs, debug: bool) -> ExitCode {
    ib_sim::logging::init("error", debug);
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    match runtime.block_on(run_demo(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ib-kubernetes demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<bool> {
    let progress = match args.progress {
        ProgressArg::Auto => ProgressMode::Auto,
        ProgressArg::Bars => ProgressMode::Bars,
        ProgressArg::Lines => ProgressMode::Lines,
        ProgressArg::Off => ProgressMode::Off,
    };
    let options = DemoOptions {
        pods: usize::try_from(args.pods)?,
        rate: args.rate,
        seed: args.seed,
        progress,
        opensm: args.opensm,
    };
    let demo = ib_sim::demo::run(options).await?;
    let table = demo.summary.render();
    let json_to_stdout = args.json.as_deref() == Some("-");
    if json_to_stdout {
        eprintln!("\n{table}");
    } else {
        println!("\n{table}");
    }
    if let Some(target) = &args.json {
        let json = serde_json::to_string_pretty(&demo.summary)?;
        if json_to_stdout {
            println!("{json}");
        } else {
            std::fs::write(target, json + "\n").with_context(|| format!("writing the JSON summary to {target}"))?;
        }
    }
    let passed = demo.summary.verification.passed;
    if args.keep_running {
        eprintln!(
            "The emulated cluster and the controller keep running; press Ctrl-C to stop.\n  \
             kubectl --kubeconfig {} get pods -n {}\n  \
             controller metrics: http://{}/metrics\n  UFM: {}",
            demo.kubeconfig_path().display(),
            ib_sim::workload::NAMESPACE,
            demo.admin_address(),
            demo.ufm_url(),
        );
        shutdown_signal().await;
    }
    demo.shutdown().await;
    Ok(passed)
}

fn sim(args: SimArgs, debug: bool) -> ExitCode {
    ib_sim::logging::init("warn", debug);
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let options = SimOptions {
        dir: args.dir,
        api_port: args.api_port,
        ufm_port: args.ufm_port,
        kubelet: args.kubelet,
        http: args.http,
    };
    let result = runtime.block_on(async {
        let sim = RunningSim::start(options).await?;
        println!("{}", sim.usage());
        shutdown_signal().await;
        sim.shutdown().await;
        Ok::<(), ib_sim::SimError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ib-kubernetes sim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 0 when the report was printed, 1 when the cluster could not be read.
fn status(args: StatusArgs, debug: bool) -> ExitCode {
    ib_sim::logging::init("error", debug);
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let options = status::StatusOptions {
        kubeconfig: args.kubeconfig,
        pool_start: args.pool_start,
        pool_end: args.pool_end,
        config_namespace: args.config_namespace,
        config_map: args.config_map,
        timeout: std::time::Duration::from_secs(args.timeout),
    };
    let report = match runtime.block_on(status::status(&options)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("ib-kubernetes status: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("ib-kubernetes status: encoding the report as JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", status::report::render(&report));
    }
    ExitCode::SUCCESS
}

fn run(debug: bool) -> ExitCode {
    let env: EnvMap = std::env::vars().collect();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned());
    let config = match Config::from_env(&env, hostname.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ib-kubernetes: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(config.log_format, debug);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(controller(config, env)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn controller(config: Config, env: EnvMap) -> anyhow::Result<()> {
    let mut controller = ib_controller::startup::start(config, &env).await?;
    tokio::select! {
        () = shutdown_signal() => {
            info!("signal received: releasing the lease and stopping");
            controller.shutdown().await;
            Ok(())
        }
        failure = controller.failed() => {
            // Exiting non-zero lets the container restart; staying up would look healthy and do nothing.
            drop(controller);
            anyhow::bail!("{failure}; exiting")
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
