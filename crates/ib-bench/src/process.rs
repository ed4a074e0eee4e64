//! The controller as a child process of the real binary, and what the kernel says it costs: resident
//! memory and CPU time read from /proc, so the emulators and the load generator in this process are
//! not counted.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Linux reports `utime`/`stime` in USER_HZ, which is 100 on every architecture Linux supports.
const USER_HZ: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start the controller {binary}: {source}")]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("cannot create the controller's log file {path}: {source}")]
    Log { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} has no readable {field}")]
    Field { path: String, field: &'static str },
    #[error("the controller exited early ({status}); its log is {log}")]
    Exited { status: std::process::ExitStatus, log: PathBuf },
}

/// Memory and CPU of one process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub rss_bytes: u64,
    /// The highest RSS so far (VmHWM).
    pub peak_rss_bytes: u64,
    /// User + system CPU time since the process started.
    pub cpu_seconds: f64,
}

impl Usage {
    pub fn rss_mib(&self) -> f64 {
        self.rss_bytes as f64 / (1024.0 * 1024.0)
    }
}

/// Reads `VmRSS` and `VmHWM` from /proc/PID/status and the CPU time of all the process's threads from
/// /proc/PID/stat (per-thread files such as schedstat would count the main thread only).
pub fn usage(pid: u32) -> Result<Usage, ProcessError> {
    let status_path = format!("/proc/{pid}/status");
    let status = read(&status_path)?;
    let kib = |field: &'static str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
            .ok_or(ProcessError::Field { path: status_path.clone(), field })
    };
    let rss_bytes = kib("VmRSS:")?;
    let peak_rss_bytes = kib("VmHWM:")?;
    Ok(Usage { rss_bytes, peak_rss_bytes, cpu_seconds: cpu_seconds(pid)? })
}

fn cpu_seconds(pid: u32) -> Result<f64, ProcessError> {
    let stat_path = format!("/proc/{pid}/stat");
    let stat = read(&stat_path)?;
    // The command name is in parentheses and may hold spaces; the fields after it are plain numbers.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, the 12th and 13th after "pid (comm)".
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / USER_HZ),
        _ => Err(ProcessError::Field { path: stat_path, field: "utime/stime" }),
    }
}

fn read(path: &str) -> Result<String, ProcessError> {
    std::fs::read_to_string(path).map_err(|source| ProcessError::Read { path: path.to_owned(), source })
}

/// A running controller process; killed when dropped.
pub struct ControllerProcess {
    child: Child,
    log: PathBuf,
}

impl ControllerProcess {
    /// Starts `binary args…` with exactly `env` (nothing inherited), stderr to `log`.
    pub fn spawn(binary: &Path, args: &[&str], env: &[(String, String)], log: PathBuf) -> Result<Self, ProcessError> {
        let file = File::create(&log).map_err(|source| ProcessError::Log { path: log.clone(), source })?;
        let child = Command::new(binary)
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|source| ProcessError::Spawn { binary: binary.to_owned(), source })?;
        Ok(ControllerProcess { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The process's usage now; an error if it has exited (a benchmark of a dead process means nothing).
    pub fn usage(&mut self) -> Result<Usage, ProcessError> {
        self.check_alive()?;
        usage(self.pid())
    }

    pub fn check_alive(&mut self) -> Result<(), ProcessError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(ProcessError::Exited { status, log: self.log.clone() }),
            _ => Ok(()),
        }
    }

    /// Samples RSS once a `period` until two samples in a row differ by less than `tolerance` (a
    /// fraction), or `max` has passed; returns the last sample. Memory after a burst settles as the
    /// allocator reuses freed pages, so one early sample would overstate the steady state.
    pub async fn settled_usage(
        &mut self,
        period: Duration,
        tolerance: f64,
        max: Duration,
    ) -> Result<Usage, ProcessError> {
        let deadline = tokio::time::Instant::now() + max;
        let mut last = self.usage()?;
        loop {
            tokio::time::sleep(period).await;
            let now = self.usage()?;
            let change = (now.rss_bytes as f64 - last.rss_bytes as f64).abs() / (last.rss_bytes.max(1) as f64);
            if change < tolerance || tokio::time::Instant::now() >= deadline {
                return Ok(now);
            }
            last = now;
        }
    }
}

impl ControllerProcess {
    /// SIGTERM (through kill(1): this crate has no unsafe code for a signal call), then SIGKILL if the
    /// process has not exited after `grace`. A terminated controller releases its lease, and a profiler
    /// wrapping it writes its output.
    pub async fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = tokio::time::Instant::now() + grace;
        while matches!(self.child.try_wait(), Ok(None)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        // Touch some memory and burn some CPU so both readings are clearly above zero.
        let block = vec![1u8; 8 * 1024 * 1024];
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i ^ u64::from(block[(i as usize) % block.len()]));
        }
        let u = usage(std::process::id()).unwrap();
        assert!(u.rss_bytes >= 8 * 1024 * 1024, "{u:?} ({x})");
        assert!(u.peak_rss_bytes >= u.rss_bytes, "{u:?}");
        assert!(u.cpu_seconds > 0.0, "{u:?}");
    }

    #[test]
    fn a_missing_process_is_an_error_naming_the_path() {
        // PIDs are below 2^22 on Linux, so this one cannot exist.
        let err = usage(u32::MAX).unwrap_err().to_string();
        assert!(err.contains("/proc/4294967295/status"), "{err}");
    }
}
