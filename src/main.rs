//! `ib-kubernetes`: command line and wiring only; everything else lives in the crates.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cli;
mod logging;
mod status;
#[cfg(feature = "testbed")]
mod testbed;

use std::process::ExitCode;

use clap::Parser;
use tracing::{error, info, warn};

use cli::{Cli, Command, StatusArgs};
use ib_controller::Config;
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
        #[cfg(feature = "testbed")]
        Command::Demo(args) => testbed::demo(args, cli.debug),
        #[cfg(feature = "testbed")]
        Command::Sim(args) => testbed::sim(args, cli.debug),
        #[cfg(not(feature = "testbed"))]
        Command::Demo(_) => without_testbed("demo"),
        #[cfg(not(feature = "testbed"))]
        Command::Sim(_) => without_testbed("sim"),
        Command::Status(args) => status(args, cli.debug),
    }
}

pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("ib-kubernetes: cannot start the async runtime: {e}");
            None
        }
    }
}

/// `demo` and `sim` in a binary built without them (the image's): say so and how to get them, with
/// the usage-error exit code, instead of leaving the user with an unknown subcommand.
#[cfg(not(feature = "testbed"))]
fn without_testbed(command: &str) -> ExitCode {
    eprintln!("ib-kubernetes {command}: {}", cli::WITHOUT_TESTBED);
    ExitCode::from(2)
}

/// Exit 0 when the report was printed, 1 when the cluster could not be read.
fn status(args: StatusArgs, debug: bool) -> ExitCode {
    logging::init_command(debug);
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

pub(crate) async fn shutdown_signal() {
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
