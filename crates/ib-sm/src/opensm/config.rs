//! The OpenSM backend's settings, from `OPENSM_*` variables (the prefix the exec host passes on to a
//! plugin named `opensm`, so the built-in and the plugin read the same ones).

use std::path::PathBuf;
use std::time::Duration;

use super::partitions::{Membership, check_flag};
use crate::env::{EnvError, EnvErrors, EnvMap};

/// Where OpenSM reads its partitions unless `OPENSM_PARTITIONS_FILE` says otherwise.
pub const DEFAULT_PARTITIONS_FILE: &str = "/etc/opensm/partitions.conf";
/// Where OpenSM writes its process id unless `OPENSM_PID_FILE` says otherwise.
pub const DEFAULT_PID_FILE: &str = "/run/opensm/opensm.pid";
/// The flags written after each of our P_Keys unless `OPENSM_PARTITION_FLAGS` says otherwise.
pub const DEFAULT_FLAGS: &str = "ipoib";
/// Reading and rewriting a local file and signalling a process take milliseconds; this bounds a call
/// that waits for another writer's lock or a slow reload command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How OpenSM is told to read `partitions.conf` again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// `SIGHUP` to the process whose id the file holds; the process must be `opensm`.
    PidFile(PathBuf),
    /// A program and its arguments, run without a shell; exit status 0 means reloaded.
    Command(Vec<String>),
}

/// How to reach OpenSM: its partitions file, how to make it reload, and what to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSmConfig {
    /// OpenSM's partitions file; only the ib-kubernetes block in it is ours.
    pub partitions_file: PathBuf,
    /// How OpenSM is told to read the file again.
    pub reload: Reload,
    /// The membership written for pod GUIDs.
    pub membership: Membership,
    /// Written after the P_Key of each of our partitions (`ipoib`, `mtu=4`).
    pub flags: Vec<String>,
    /// How long one call may take, waiting for the lock and the reload included.
    pub timeout: Duration,
}

impl OpenSmConfig {
    /// A configuration with the defaults for the file at `partitions_file`, reloaded by `reload`.
    pub fn new(partitions_file: impl Into<PathBuf>, reload: Reload) -> Self {
        OpenSmConfig {
            partitions_file: partitions_file.into(),
            reload,
            membership: Membership::Full,
            flags: vec![DEFAULT_FLAGS.to_owned()],
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Reads and validates every `OPENSM_*` variable, reporting all problems at once.
    pub fn from_env(env: &EnvMap) -> Result<Self, EnvErrors> {
        let mut errors = Vec::new();
        let path = |key: &'static str, default: &str, errors: &mut Vec<EnvError>| {
            let value = env.get(key).unwrap_or(default);
            if !value.starts_with('/') {
                errors.push(EnvError::new(key, value, "must be an absolute path"));
            }
            PathBuf::from(value)
        };
        let partitions_file = path("OPENSM_PARTITIONS_FILE", DEFAULT_PARTITIONS_FILE, &mut errors);
        // A reload command, when set, is how OpenSM is reloaded and the pid file is not read: the
        // ConfigMap lists every key with its default, the pid file's included.
        let reload = match env.get("OPENSM_RELOAD_COMMAND") {
            Some(command) => {
                let argv: Vec<String> = command.split_ascii_whitespace().map(str::to_owned).collect();
                if argv.is_empty() {
                    errors.push(EnvError::new("OPENSM_RELOAD_COMMAND", command, "names no program"));
                }
                Reload::Command(argv)
            }
            None => Reload::PidFile(path("OPENSM_PID_FILE", DEFAULT_PID_FILE, &mut errors)),
        };
        let membership = match env.get("OPENSM_MEMBERSHIP").map(str::trim) {
            None | Some("full") => Membership::Full,
            Some("limited") => Membership::Limited,
            Some(other) => {
                errors.push(EnvError::new("OPENSM_MEMBERSHIP", other, "must be full or limited"));
                Membership::Full
            }
        };
        let flags_text = env.get("OPENSM_PARTITION_FLAGS").unwrap_or(DEFAULT_FLAGS);
        let flags: Vec<String> = if flags_text.trim() == "none" {
            Vec::new()
        } else {
            flags_text.split(',').map(|f| f.trim().to_owned()).collect()
        };
        for flag in &flags {
            if let Err(reason) = check_flag(flag) {
                errors.push(EnvError::new(
                    "OPENSM_PARTITION_FLAGS",
                    flags_text,
                    format!("flag {flag:?}: {reason} (or none for no flags)"),
                ));
            }
        }
        let timeout = match env.u64("OPENSM_TIMEOUT", DEFAULT_TIMEOUT.as_secs()) {
            Ok(0) => {
                errors.push(EnvError::new("OPENSM_TIMEOUT", "0", "must be at least 1 second"));
                DEFAULT_TIMEOUT
            }
            Ok(s) if s > 3600 => {
                errors.push(EnvError::new("OPENSM_TIMEOUT", s.to_string(), "must be at most 3600 seconds"));
                DEFAULT_TIMEOUT
            }
            Ok(s) => Duration::from_secs(s),
            Err(e) => {
                errors.push(e);
                DEFAULT_TIMEOUT
            }
        };
        if errors.is_empty() {
            Ok(OpenSmConfig { partitions_file, reload, membership, flags, timeout })
        } else {
            Err(EnvErrors(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn defaults() {
        let c = OpenSmConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c, OpenSmConfig::new(DEFAULT_PARTITIONS_FILE, Reload::PidFile(DEFAULT_PID_FILE.into())));
        assert_eq!(c.flags, ["ipoib"]);
        assert_eq!(c.membership, Membership::Full);
    }

    #[test]
    fn every_variable_is_read() {
        let c = OpenSmConfig::from_env(&env(&[
            ("OPENSM_PARTITIONS_FILE", "/shared/partitions.conf"),
            ("OPENSM_RELOAD_COMMAND", "  /usr/bin/systemctl  reload opensm "),
            ("OPENSM_MEMBERSHIP", "limited"),
            ("OPENSM_PARTITION_FLAGS", "ipoib, mtu=4,rate=7"),
            ("OPENSM_TIMEOUT", "5"),
        ]))
        .unwrap();
        assert_eq!(c.partitions_file, PathBuf::from("/shared/partitions.conf"));
        assert_eq!(c.reload, Reload::Command(vec!["/usr/bin/systemctl".into(), "reload".into(), "opensm".into()]));
        assert_eq!(
            (c.membership, c.flags.clone(), c.timeout),
            (Membership::Limited, vec!["ipoib".into(), "mtu=4".into(), "rate=7".into()], Duration::from_secs(5))
        );
        let none = OpenSmConfig::from_env(&env(&[("OPENSM_PARTITION_FLAGS", "none")])).unwrap();
        assert!(none.flags.is_empty());
    }

    #[test]
    fn bad_values_name_the_variable_and_value_all_at_once() {
        let e = OpenSmConfig::from_env(&env(&[
            ("OPENSM_PARTITIONS_FILE", "partitions.conf"),
            ("OPENSM_RELOAD_COMMAND", " \t "),
            ("OPENSM_MEMBERSHIP", "both"),
            ("OPENSM_PARTITION_FLAGS", "ipoib,defmember=full"),
            ("OPENSM_TIMEOUT", "0"),
        ]))
        .unwrap_err();
        let vars: Vec<&str> = e.0.iter().map(|e| e.variable).collect();
        assert_eq!(
            vars,
            [
                "OPENSM_PARTITIONS_FILE",
                "OPENSM_RELOAD_COMMAND",
                "OPENSM_MEMBERSHIP",
                "OPENSM_PARTITION_FLAGS",
                "OPENSM_TIMEOUT"
            ]
        );
        let text = e.to_string();
        for words in ["\"partitions.conf\": must be an absolute path", "names no program", "\"both\"", "defmember"] {
            assert!(text.contains(words), "{words}: {text}");
        }
        // A flag that would break out of the partition definition.
        let e = OpenSmConfig::from_env(&env(&[("OPENSM_PARTITION_FLAGS", "ipoib : ALL=full ;")])).unwrap_err();
        assert!(e.to_string().contains("OPENSM_PARTITION_FLAGS"), "{e}");
        let e = OpenSmConfig::from_env(&env(&[("OPENSM_PID_FILE", "run/x.pid")])).unwrap_err();
        assert!(e.to_string().contains("OPENSM_PID_FILE"), "{e}");
    }

    /// The ConfigMap lists the pid file's default: a reload command set beside it is what is used.
    #[test]
    fn a_reload_command_wins_over_the_pid_file() {
        let c = OpenSmConfig::from_env(&env(&[
            ("OPENSM_RELOAD_COMMAND", "/usr/bin/systemctl reload opensm"),
            ("OPENSM_PID_FILE", "/run/opensm/opensm.pid"),
        ]))
        .unwrap();
        assert_eq!(c.reload, Reload::Command(vec!["/usr/bin/systemctl".into(), "reload".into(), "opensm".into()]));
    }
}
