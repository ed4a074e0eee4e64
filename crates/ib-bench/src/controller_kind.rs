//! Which daemon a benchmark runs: this project's controller, or another implementation of the same job
//! that reads the same deployment environment but is started differently. The Go `ib-kubernetes`
//! daemon takes no subcommand and loads its subnet-manager plugin as a shared object
//! (`<DAEMON_SM_PLUGIN_PATH>/<DAEMON_SM_PLUGIN>.so`), so it needs the directory holding `ufm.so`.

use std::path::{Path, PathBuf};

/// Environment variables that pass from the benchmark's own environment to a Go daemon, for
/// experiments: its polling period (seconds, default 5) and its Go runtime's knobs.
const GO_PASSTHROUGH: [&str; 3] = ["DAEMON_PERIODIC_UPDATE", "GOMAXPROCS", "GOGC"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerKind {
    /// This project's `ib-kubernetes`, started as `ib-kubernetes run`.
    Ours,
    /// The Go daemon, started with no arguments; `plugins` holds its `ufm.so`.
    Go { plugins: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerKindError {
    #[error("--controller-kind go needs the Go daemon's binary in --controller")]
    NoBinary,
    #[error("no UFM plugin at {0}: build the Go daemon's plugins, or name their directory with --go-plugins")]
    NoPlugin(PathBuf),
    #[error("unknown --controller-kind {0:?}: expected \"ours\" or \"go\"")]
    Unknown(String),
}

impl ControllerKind {
    /// The kind named on the command line. For `go`, the plugin directory is `plugins` if given, else
    /// `plugins/` beside the binary (where the Go Makefile's `build` and `plugins` targets put them).
    pub fn from_args(
        name: &str,
        binary: Option<&Path>,
        plugins: Option<PathBuf>,
    ) -> Result<ControllerKind, ControllerKindError> {
        match name {
            "ours" => Ok(ControllerKind::Ours),
            "go" => {
                let binary = binary.ok_or(ControllerKindError::NoBinary)?;
                let plugins = match plugins {
                    Some(dir) => dir,
                    None => binary.parent().unwrap_or(Path::new(".")).join("plugins"),
                };
                let ufm = plugins.join("ufm.so");
                if !ufm.is_file() {
                    return Err(ControllerKindError::NoPlugin(ufm));
                }
                Ok(ControllerKind::Go { plugins })
            }
            other => Err(ControllerKindError::Unknown(other.to_owned())),
        }
    }

    /// The arguments the binary is started with.
    pub fn args(&self) -> &'static [&'static str] {
        match self {
            ControllerKind::Ours => &["run"],
            ControllerKind::Go { .. } => &[],
        }
    }

    /// `env` (a deployment's environment for this project's controller) as this kind reads it.
    pub fn adapt_env(&self, mut env: Vec<(String, String)>) -> Vec<(String, String)> {
        let ControllerKind::Go { plugins } = self else {
            return env;
        };
        for (key, value) in &mut env {
            if key == "DAEMON_SM_PLUGIN_PATH" {
                *value = plugins.display().to_string();
            }
        }
        env.extend(GO_PASSTHROUGH.into_iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v))));
        env
    }

    /// A short name for tables and log files.
    pub fn label(&self) -> &'static str {
        match self {
            ControllerKind::Ours => "ours",
            ControllerKind::Go { .. } => "go",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![
            ("DAEMON_SM_PLUGIN".into(), "ufm".into()),
            ("DAEMON_SM_PLUGIN_PATH".into(), "/nowhere".into()),
            ("UFM_ADDRESS".into(), "127.0.0.1".into()),
        ]
    }

    #[test]
    fn ours_is_started_as_before() {
        let kind = ControllerKind::from_args("ours", None, None).unwrap();
        assert_eq!(kind.args(), ["run"]);
        assert_eq!(kind.adapt_env(env()), env());
    }

    #[test]
    fn go_loads_its_plugin_from_the_named_directory_and_takes_no_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ufm.so"), b"").unwrap();
        let kind = ControllerKind::from_args("go", Some(Path::new("/bin/true")), Some(dir.path().into())).unwrap();
        assert!(kind.args().is_empty());
        let adapted = kind.adapt_env(env());
        let path = adapted.iter().find(|(k, _)| k == "DAEMON_SM_PLUGIN_PATH").map(|(_, v)| v.clone());
        assert_eq!(path, Some(dir.path().display().to_string()));
        assert!(adapted.iter().any(|(k, v)| k == "UFM_ADDRESS" && v == "127.0.0.1"));
    }

    #[test]
    fn go_defaults_to_plugins_beside_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        std::fs::write(dir.path().join("plugins/ufm.so"), b"").unwrap();
        let binary = dir.path().join("ib-kubernetes");
        let kind = ControllerKind::from_args("go", Some(&binary), None).unwrap();
        assert_eq!(kind, ControllerKind::Go { plugins: dir.path().join("plugins") });
    }

    #[test]
    fn a_missing_plugin_or_binary_or_kind_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = ControllerKind::from_args("go", Some(Path::new("/bin/true")), Some(dir.path().into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ufm.so"), "{err}");
        let err = ControllerKind::from_args("go", None, None).unwrap_err().to_string();
        assert!(err.contains("--controller"), "{err}");
        let err = ControllerKind::from_args("rust", None, None).unwrap_err().to_string();
        assert!(err.contains("\"rust\""), "{err}");
    }
}
