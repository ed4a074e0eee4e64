//! Subnet managers as executables: the CNI-style exec plugin protocol (see `docs/plugins.md`).
//!
//! The Go daemon loaded Go plugins (`.so` built with its exact toolchain); here a plugin is any executable
//! in `DAEMON_SM_PLUGIN_PATH`, run once per call with the command in `argv[1]`, a JSON request on stdin and
//! a JSON result or error on stdout. A plugin cannot crash the daemon: everything it prints is checked,
//! it is killed with everything it started when it overruns its time, it sees only the environment it
//! needs ([`environment`]), and every failure is an ordinary [`crate::SmError`] that the
//! controller retries like any other subnet-manager failure.
//!
//! - [`protocol`]: the JSON types and constants, shared by both sides.
//! - [`ExecPlugin`]: the daemon's side, a [`crate::SubnetManager`].
//! - [`plugin`]: the plugin's side, so that a subnet manager written in Rust becomes a plugin in one line
//!   (`plugins/noop`, `plugins/ufm`).

pub mod environment;
mod host;
pub mod plugin;
mod process;
pub mod protocol;

use std::path::{Path, PathBuf};

pub use host::{DEFAULT_TIMEOUT, ExecConfig, ExecPlugin, MAX_CONCURRENT_CALLS};

/// `dir/name` when it is an executable file (symbolic links followed, as Kubernetes volume mounts are
/// links); `None` otherwise, so the caller can fall back to a built-in.
pub fn find_plugin(dir: &Path, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    // A name with a separator would escape the plugin directory.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_executable_files_are_plugins() {
        let dir = std::env::temp_dir().join(format!("ib-sm-find-plugin-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("subdir")).unwrap();
        std::fs::write(dir.join("exe"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.join("exe"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("plain"), "").unwrap();
        std::fs::set_permissions(dir.join("plain"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(find_plugin(&dir, "exe"), Some(dir.join("exe")));
        assert_eq!(find_plugin(&dir, "plain"), None);
        assert_eq!(find_plugin(&dir, "subdir"), None);
        assert_eq!(find_plugin(&dir, "missing"), None);
        assert_eq!(find_plugin(&dir, "../exe"), None);
        assert_eq!(find_plugin(&dir, ""), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
