//! `ib-kubernetes`: command line and wiring only; everything else lives in the crates.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

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

fn run(_debug: bool) -> ExitCode {
    let env: EnvMap = std::env::vars().collect();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned());
    match Config::from_env(&env, hostname.as_deref()) {
        Ok(config) => {
            eprintln!(
                "ib-kubernetes: configuration is valid (subnet manager {:?}, GUID range {}); the controller loop is not available in this version",
                cli::sm_name(&config),
                config.guid_range
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("ib-kubernetes: {e}");
            ExitCode::FAILURE
        }
    }
}
