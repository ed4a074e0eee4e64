//! Command-line flags: the Go daemon's `-debug` and `-version`/`-v` (single dash, as Go's flag package
//! writes them) plus subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ib-kubernetes",
    about = "InfiniBand GUIDs and partition keys for Kubernetes pods",
    disable_version_flag = true
)]
pub struct Cli {
    /// Log at debug level.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print the version and exit.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (the default).
    Run,
    /// Run the whole system on an emulated cluster and UFM, and verify the result.
    #[cfg(feature = "testbed")]
    Demo(DemoArgs),
    /// Start the emulated Kubernetes API server and UFM for use by hand, until interrupted.
    #[cfg(feature = "testbed")]
    Sim(SimArgs),
    /// Not in this binary: it was built without the test bed (cargo feature `testbed`).
    #[cfg(not(feature = "testbed"))]
    #[command(disable_help_flag = true)]
    Demo(WithoutTestbed),
    /// Not in this binary: it was built without the test bed (cargo feature `testbed`).
    #[cfg(not(feature = "testbed"))]
    #[command(disable_help_flag = true)]
    Sim(WithoutTestbed),
    /// Report, from a cluster, the GUID pool's use, each PKey's members and the pods waiting, with why.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Kubeconfig to use instead of KUBECONFIG, ~/.kube/config or the in-cluster account.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// First GUID of the pool (with --pool-end); without both, the controller's ConfigMap is read.
    #[arg(long, value_name = "GUID", requires = "pool_end")]
    pub pool_start: Option<String>,
    /// Last GUID of the pool (with --pool-start).
    #[arg(long, value_name = "GUID", requires = "pool_start")]
    pub pool_end: Option<String>,
    /// Namespace of the controller's ConfigMap.
    #[arg(long, default_value = "kube-system")]
    pub config_namespace: String,
    /// Name of the controller's ConfigMap.
    #[arg(long, default_value = "ib-kubernetes-config")]
    pub config_map: String,
    /// Seconds each API request may take.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Print the report as JSON (stable field names, for scripts).
    #[arg(long)]
    pub json: bool,
}

/// What `demo` and `sim` print in a binary built without the test bed.
#[cfg(not(feature = "testbed"))]
pub const WITHOUT_TESTBED: &str = "this binary was built without the test bed (the emulated cluster and UFM), \
     as `make build` and the container image are. From a source checkout, `cargo run --release -- demo` \
     builds and runs one that has it (cargo feature `testbed`, on by default).";

/// The arguments of `demo` or `sim` in a binary built without them, taken as they come so that the
/// command says what is missing instead of failing on a flag it does not know.
#[cfg(not(feature = "testbed"))]
#[derive(Debug, Args)]
pub struct WithoutTestbed {
    /// Ignored.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

#[cfg(feature = "testbed")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pods to create (at least 3: the demo always includes its special pods).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(3..))]
    pub pods: u64,
    /// Pods created per second.
    #[arg(long, default_value_t = 100.0, value_parser = positive_rate)]
    pub rate: f64,
    /// Seed of the workload (which pods, which nodes, which get deleted).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the summary as JSON to PATH; `-` writes it to standard output (the table then goes to
    /// standard error).
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,
    /// Leave the emulated cluster and the controller running after the summary, until interrupted.
    #[arg(long)]
    pub keep_running: bool,
    /// Progress display: bars on a terminal and plain lines otherwise (auto), or as chosen.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Use the opensm backend against a real OpenSM on a simulated fabric (ibsim) and verify the end
    /// state against the ports' P_Key tables; needs ibsim-utils, opensm and infiniband-diags, and at
    /// most about 60 pods.
    #[arg(long)]
    pub opensm: bool,
}

#[cfg(feature = "testbed")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Bars,
    Lines,
    Off,
}

#[cfg(feature = "testbed")]
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Directory for kubeconfig, ufm.env and ufm-ca.pem (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Serve the Kubernetes API on this loopback port instead of a free one.
    #[arg(long)]
    pub api_port: Option<u16>,
    /// Serve UFM on this loopback port instead of a free one.
    #[arg(long)]
    pub ufm_port: Option<u16>,
    /// Simulate the nodes: scheduled pods start once their InfiniBand networks are configured.
    #[arg(long)]
    pub kubelet: bool,
    /// Serve UFM over plain HTTP instead of HTTPS with a generated CA.
    #[arg(long)]
    pub http: bool,
}

#[cfg(feature = "testbed")]
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a positive number of pods per second")),
    }
}

/// Go's flag package accepts `-debug`, `--debug` and `-debug=true|false`; clap wants `--debug`.
pub fn normalize_go_flags<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    args.into_iter()
        .filter_map(|arg| {
            let bare = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')).unwrap_or(&arg);
            match bare {
                "debug" | "debug=true" => Some("--debug".to_owned()),
                "version" | "version=true" => Some("--version".to_owned()),
                "debug=false" | "version=false" => None,
                _ => Some(arg),
            }
        })
        .collect()
}

/// The Go daemon's version line; the build may inject the three values.
pub fn version_line() -> String {
    format!(
        "ib-kubernetes version:{}, commit:{}, date:{}",
        option_env!("IB_KUBERNETES_VERSION").unwrap_or("master@git"),
        option_env!("IB_KUBERNETES_COMMIT").unwrap_or("unknown commit"),
        option_env!("IB_KUBERNETES_DATE").unwrap_or("unknown date"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let args = normalize_go_flags(args.iter().map(|s| s.to_string()));
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn go_style_flags() {
        assert!(parse(&["ibk", "-debug"]).debug);
        assert!(parse(&["ibk", "--debug"]).debug);
        assert!(parse(&["ibk", "-debug=true"]).debug);
        assert!(!parse(&["ibk", "-debug=false"]).debug);
        assert!(parse(&["ibk", "-version"]).version);
        assert!(parse(&["ibk", "-v"]).version);
        assert!(parse(&["ibk", "--version"]).version);
        assert!(matches!(parse(&["ibk", "demo"]).command, Some(Command::Demo(_))));
        assert!(matches!(parse(&["ibk", "sim", "--dir", "d"]).command, Some(Command::Sim(_))));
        assert!(parse(&["ibk"]).command.is_none());
    }

    #[cfg(feature = "testbed")]
    #[test]
    fn demo_flags_and_defaults() {
        let Some(Command::Demo(args)) = parse(&["ibk", "demo"]).command else { panic!("demo") };
        assert_eq!((args.pods, args.rate, args.seed), (500, 100.0, 1));
        assert!(args.json.is_none() && !args.keep_running && args.progress == ProgressArg::Auto);
        let cli = parse(&["ibk", "-debug", "demo", "--pods", "40", "--rate", "7.5", "--seed", "9", "--json", "-"]);
        let Some(Command::Demo(args)) = cli.command else { panic!("demo") };
        assert!(cli.debug);
        assert_eq!((args.pods, args.rate, args.seed, args.json.as_deref()), (40, 7.5, 9, Some("-")));
        assert!(parse(&["ibk", "demo", "--keep-running", "--progress", "lines"]).command.is_some());
        let Some(Command::Demo(args)) = parse(&["ibk", "demo", "--opensm", "--pods", "40"]).command else { panic!() };
        assert!(args.opensm && args.pods == 40);
        for bad in
            [&["ibk", "demo", "--pods", "2"][..], &["ibk", "demo", "--rate", "0"], &["ibk", "demo", "--rate", "x"]]
        {
            let args = normalize_go_flags(bad.iter().map(|s| s.to_string()));
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[cfg(feature = "testbed")]
    #[test]
    fn sim_flags() {
        let cli = parse(&["ibk", "sim", "--dir", "/tmp/x", "--api-port", "6443", "--kubelet"]);
        let Some(Command::Sim(args)) = cli.command else { panic!("sim") };
        assert_eq!(args.dir, PathBuf::from("/tmp/x"));
        assert_eq!((args.api_port, args.ufm_port, args.kubelet, args.http), (Some(6443), None, true, false));
        let args = normalize_go_flags(["ibk", "sim"].iter().map(|s| s.to_string()));
        assert!(Cli::try_parse_from(args).is_err(), "--dir is required");
    }

    #[test]
    fn status_flags() {
        let Some(Command::Status(args)) = parse(&["ibk", "status"]).command else { panic!("status") };
        assert!(args.kubeconfig.is_none() && args.pool_start.is_none() && !args.json);
        assert_eq!(
            (args.config_namespace.as_str(), args.config_map.as_str(), args.timeout),
            ("kube-system", "ib-kubernetes-config", 10)
        );
        let cli = parse(&["ibk", "status", "--kubeconfig", "/k", "--pool-start", "a", "--pool-end", "b", "--json"]);
        let Some(Command::Status(args)) = cli.command else { panic!("status") };
        assert_eq!(args.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!((args.pool_start.as_deref(), args.pool_end.as_deref(), args.json), (Some("a"), Some("b"), true));
        for bad in [
            &["ibk", "status", "--pool-start", "a"][..],
            &["ibk", "status", "--pool-end", "b"],
            &["ibk", "status", "--timeout", "0"],
        ] {
            let args = normalize_go_flags(bad.iter().map(|s| s.to_string()));
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    /// Without the test bed, `demo` and `sim` with any flags (even `--help`) reach the command, which
    /// explains what is missing.
    #[cfg(not(feature = "testbed"))]
    #[test]
    fn testbed_commands_parse_without_the_testbed() {
        for args in [&["ibk", "demo"][..], &["ibk", "demo", "--pods", "40", "--opensm"], &["ibk", "demo", "--help"]] {
            assert!(matches!(parse(args).command, Some(Command::Demo(_))), "{args:?}");
        }
        assert!(matches!(parse(&["ibk", "sim", "--dir", "/tmp/x", "--kubelet"]).command, Some(Command::Sim(_))));
        assert!(WITHOUT_TESTBED.contains("cargo run --release -- demo"));
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        let args = normalize_go_flags(["ibk", "-kubeconfig", "x"].iter().map(|s| s.to_string()));
        assert!(Cli::try_parse_from(args).is_err());
    }

    #[test]
    fn version_line_has_the_go_shape() {
        let line = version_line();
        assert!(line.starts_with("ib-kubernetes version:") && line.contains(", commit:") && line.contains(", date:"));
    }
}
