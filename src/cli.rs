//! Command-line flags: the Go daemon's `-debug` and `-version`/`-v` (single dash, as Go's flag package
//! writes them) plus subcommands.

use clap::{Parser, Subcommand};

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
    Demo,
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
        assert!(matches!(parse(&["ibk", "demo"]).command, Some(Command::Demo)));
        assert!(parse(&["ibk"]).command.is_none());
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
