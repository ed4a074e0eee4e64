//! Telling OpenSM to read `partitions.conf` again: `SIGHUP` to the process a pid file names, or a
//! command. The pid file is checked before anything is signalled: a stale file naming a process id
//! that now belongs to another program would otherwise make us send that program a signal whose default
//! action ends it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::AsyncReadExt;

use super::config::Reload;

/// The process name (`/proc/<pid>/comm`) a pid file must lead to.
pub const OPENSM_COMM: &str = "opensm";
/// Longest pid file read; a pid is a few digits.
const MAX_PID_FILE_BYTES: u64 = 64;
/// Part of a failing command's stderr kept in the error.
const STDERR_EXCERPT_BYTES: usize = 1024;

/// Why OpenSM could not be told to reload.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The pid file could not be read.
    #[error("pid file {path}: cannot read it: {source}")]
    PidFileUnreadable {
        /// The pid file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The pid file does not hold a process id.
    #[error("pid file {path}: {content:?} is not a process id (a whole number above 1)")]
    PidFileInvalid {
        /// The pid file.
        path: String,
        /// What the file holds.
        content: String,
    },
    /// No process has the id the pid file names.
    #[error("pid file {path}: process {pid} does not exist (OpenSM is not running, or the file is stale)")]
    NoProcess {
        /// The pid file.
        path: String,
        /// The process id.
        pid: i32,
    },
    /// The process the pid file names is not OpenSM, so it was not signalled.
    #[error("pid file {path}: process {pid} is {comm:?}, not {OPENSM_COMM}; it was not signalled")]
    NotOpenSm {
        /// The pid file.
        path: String,
        /// The process id.
        pid: i32,
        /// The process's command name.
        comm: String,
    },
    /// SIGHUP could not be sent.
    #[error("cannot send SIGHUP to OpenSM (process {pid}): {source}")]
    Signal {
        /// The process id.
        pid: i32,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The reload command could not be started.
    #[error("reload command {program:?}: cannot start it: {source}")]
    Spawn {
        /// The reload command.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The reload command exited non-zero.
    #[error("reload command {program:?}: exited with {status}: {stderr}")]
    Failed {
        /// The reload command.
        program: String,
        /// The HTTP status.
        status: String,
        /// An excerpt of its standard error.
        stderr: String,
    },
    /// The reload command overran its time and was killed.
    #[error("reload command {program:?}: did not end within {timeout:?}; it was killed")]
    Timeout {
        /// The reload command.
        program: String,
        /// The time allowed.
        timeout: Duration,
    },
}

impl ReloadError {
    /// Whether OpenSM may have been told to reload despite the error: a command that ran and failed
    /// or was killed may have done part of its work; a pid-file problem means nothing was signalled.
    pub fn maybe_reloaded(&self) -> bool {
        matches!(self, ReloadError::Failed { .. } | ReloadError::Timeout { .. })
    }
}

/// The OpenSM process a pid file names, checked to be OpenSM and alive. Blocking (small local reads).
pub fn opensm_pid(path: &Path) -> Result<Pid, ReloadError> {
    use std::io::Read;
    let shown = || path.display().to_string();
    let mut content = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PID_FILE_BYTES).read_to_string(&mut content))
        .map_err(|source| ReloadError::PidFileUnreadable { path: shown(), source })?;
    let invalid = || ReloadError::PidFileInvalid { path: shown(), content: content.trim().to_owned() };
    // 0 and 1 and negative ids would signal a process group, init, or every process we may signal.
    let raw: i32 = content.trim().parse().map_err(|_| invalid())?;
    let pid = if raw > 1 { Pid::from_raw(raw).ok_or_else(invalid)? } else { return Err(invalid()) };
    let comm = std::fs::read_to_string(format!("/proc/{raw}/comm"))
        .map_err(|_| ReloadError::NoProcess { path: shown(), pid: raw })?;
    let comm = comm.trim_end_matches('\n');
    if comm != OPENSM_COMM {
        return Err(ReloadError::NotOpenSm { path: shown(), pid: raw, comm: comm.to_owned() });
    }
    Ok(pid)
}

/// Checks that a reload could be attempted, without doing it: the pid file leads to a running OpenSM.
/// A command cannot be checked without running it.
pub fn check(reload: &Reload) -> Result<(), ReloadError> {
    match reload {
        Reload::PidFile(path) => opensm_pid(path).map(drop),
        Reload::Command(_) => Ok(()),
    }
}

/// Tells OpenSM to reload, within `timeout` for a command.
pub async fn reload(reload: &Reload, timeout: Duration) -> Result<(), ReloadError> {
    match reload {
        Reload::PidFile(path) => {
            let pid = opensm_pid(path)?;
            rustix::process::kill_process(pid, Signal::HUP)
                .map_err(|e| ReloadError::Signal { pid: pid.as_raw_nonzero().get(), source: e.into() })
        }
        Reload::Command(argv) => run(argv, timeout).await,
    }
}

async fn run(argv: &[String], timeout: Duration) -> Result<(), ReloadError> {
    let program = argv.first().cloned().unwrap_or_default();
    let mut child = tokio::process::Command::new(&program)
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ReloadError::Spawn { program: program.clone(), source })?;
    let mut stderr = child.stderr.take();
    let outcome = tokio::time::timeout(timeout, async {
        let mut text = Vec::new();
        if let Some(err) = stderr.as_mut() {
            // Bounded: a command that prints without end is cut off by the timeout.
            let _ = err.take(64 * 1024).read_to_end(&mut text).await;
        }
        (child.wait().await, text)
    })
    .await;
    match outcome {
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), text)) => Err(ReloadError::Failed {
            program,
            status: status.to_string(),
            stderr: crate::manager::excerpt(String::from_utf8_lossy(&text).trim(), STDERR_EXCERPT_BYTES),
        }),
        Ok((Err(e), _)) => {
            Err(ReloadError::Failed { program, status: format!("no status ({e})"), stderr: String::new() })
        }
        Err(_) => {
            // kill_on_drop ends it; wait for it so no zombie is left.
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Err(ReloadError::Timeout { program, timeout })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_that_would_signal_the_wrong_processes_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("opensm.pid");
        for content in ["", "abc", "0", "1", "-1", "-42", "99999999999"] {
            std::fs::write(&path, content).unwrap();
            let err = opensm_pid(&path).unwrap_err();
            assert!(matches!(err, ReloadError::PidFileInvalid { .. }), "{content:?}: {err}");
        }
        // This test process is alive but is not OpenSM: never signalled.
        std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        let err = opensm_pid(&path).unwrap_err();
        assert!(matches!(err, ReloadError::NotOpenSm { .. }), "{err}");
        assert!(err.to_string().contains("not opensm"), "{err}");
        let missing = d.path().join("missing.pid");
        assert!(matches!(opensm_pid(&missing), Err(ReloadError::PidFileUnreadable { .. })));
        assert!(check(&Reload::PidFile(missing)).is_err());
    }

    #[tokio::test]
    async fn a_process_that_is_not_opensm_survives_a_reload_attempt() {
        let mut sleeper = tokio::process::Command::new("sleep").arg("600").kill_on_drop(true).spawn().unwrap();
        let pid = sleeper.id().unwrap();
        // Until exec, the child still carries the test thread's name.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n" {
            assert!(std::time::Instant::now() < deadline, "sleep did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("opensm.pid");
        std::fs::write(&path, pid.to_string()).unwrap();
        let err = reload(&Reload::PidFile(path), Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, ReloadError::NotOpenSm { ref comm, .. } if comm == "sleep"), "{err}");
        assert!(!err.maybe_reloaded());
        assert!(sleeper.try_wait().unwrap().is_none(), "the sleeper is still running");
        sleeper.kill().await.unwrap();
    }

    #[tokio::test]
    async fn commands_succeed_fail_with_their_stderr_or_time_out() {
        let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        reload(&Reload::Command(argv(&["true"])), Duration::from_secs(30)).await.unwrap();
        let err =
            reload(&Reload::Command(argv(&["sh", "-c", "echo no opensm here >&2; exit 3"])), Duration::from_secs(30))
                .await
                .unwrap_err();
        assert!(err.to_string().contains("no opensm here") && err.to_string().contains("3"), "{err}");
        assert!(err.maybe_reloaded());
        let err = reload(&Reload::Command(argv(&["/nonexistent/reload"])), Duration::from_secs(30)).await.unwrap_err();
        assert!(matches!(err, ReloadError::Spawn { .. }) && !err.maybe_reloaded(), "{err}");
        let err = reload(&Reload::Command(argv(&["sleep", "600"])), Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, ReloadError::Timeout { .. }), "{err}");
    }
}
