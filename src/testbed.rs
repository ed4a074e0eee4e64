//! The test bed's commands, `demo` and `sim`: the controller on an emulated cluster and UFM. Only in a
//! binary built with the `testbed` feature (the default of `cargo run`; `make build` and the image
//! leave it out).

use std::process::ExitCode;

use anyhow::Context as _;
use ib_sim::demo::DemoOptions;
use ib_sim::demo::progress::ProgressMode;
use ib_sim::{RunningSim, SimOptions};

use crate::cli::{DemoArgs, ProgressArg, SimArgs};
use crate::{runtime, shutdown_signal};

/// Exit 0 only when the demo's verification passed.
pub(crate) fn demo(args: DemoArgs, debug: bool) -> ExitCode {
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

pub(crate) fn sim(args: SimArgs, debug: bool) -> ExitCode {
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
