//! `ib-kubernetes`: command line and wiring only; everything else lives in the crates.
#![forbid(unsafe_code)]

mod cli;
mod logging;

use std::process::ExitCode;

use clap::Parser;
use tracing::{error, info, warn};

use cli::{Cli, Command};
use ib_controller::Config;
use ib_sm::EnvMap;

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
        Command::Demo => {
            eprintln!(
                "ib-kubernetes demo: not yet available in this version (the emulated cluster and the controller are still being built; see README)"
            );
            ExitCode::from(2)
        }
    }
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
    let controller = ib_controller::startup::start(config, &env).await?;
    shutdown_signal().await;
    info!("signal received: releasing the lease and stopping");
    controller.shutdown().await;
    Ok(())
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
