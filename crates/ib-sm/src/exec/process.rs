//! One run of a plugin process, and the guarantee that nothing of it outlives the call.
//!
//! The plugin is started as the leader of a new process group, so that whatever it starts (a shell
//! plugin's `curl`, a `sleep` in the background) is in that group too. When the plugin exits, when its
//! call is dropped (a timeout, a cancelled task) and when it prints too much, the whole group is killed
//! with `SIGKILL`, and every process of the group that is a child of ours is reaped. In the container the
//! daemon is PID 1, so a process the plugin started becomes our child when the plugin exits: without the
//! reaping it would stay a zombie for the life of the daemon.
//!
//! The leader is reaped only after its group was killed. Until it is reaped its process id, which is
//! also the group's id, cannot be reused, so the kill can never reach an unrelated process. That is why
//! the leader is a `std::process::Child`, whose exit can be awaited without reaping it (`waitid` with
//! `WNOWAIT`), rather than a Tokio child, which reaps as it reports the exit.
//!
//! A process that leaves the group (`setsid`, `setpgid`) escapes all this; `docs/plugins.md` forbids it.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ExitStatus, Stdio};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, WaitOptions};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tracing::warn;

/// Kills a plugin's process group. Copied into whatever needs to stop the plugin early.
#[derive(Clone, Copy, Debug)]
pub struct GroupKiller(Pid);

impl GroupKiller {
    pub fn kill(self) {
        // Already gone is fine: that is what we want.
        let _ = rustix::process::kill_process_group(self.0, Signal::KILL);
    }
}

/// The pipes of a run, ready for Tokio.
pub struct Pipes {
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// A running plugin. Dropped before [`Run::finish`], it kills the group and reaps it in the background.
pub struct Run {
    child: Option<Child>,
    group: Pid,
}

impl Run {
    /// Starts `command` with piped stdin, stdout and stderr, as the leader of a new process group.
    pub fn start(command: &mut std::process::Command) -> io::Result<Run> {
        let child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).spawn()?;
        let group = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
        let Some(group) = group else {
            // Cannot happen (a child's id is positive); the child is still stopped and reaped.
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the plugin's process id is not a valid process group id"));
        };
        Ok(Run { child: Some(child), group })
    }

    pub fn killer(&self) -> GroupKiller {
        GroupKiller(self.group)
    }

    /// The pipes, converted for Tokio. Must be called inside a Tokio runtime, once.
    pub fn pipes(&mut self) -> io::Result<Pipes> {
        let child = self.child.as_mut().ok_or_else(|| io::Error::other("the plugin was already reaped"))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("the plugin's pipes are missing"));
        };
        Ok(Pipes {
            stdin: ChildStdin::from_std(stdin)?,
            stdout: ChildStdout::from_std(stdout)?,
            stderr: ChildStderr::from_std(stderr)?,
        })
    }

    /// Resolves once the plugin (the group's leader) has exited, without reaping it. A blocking wait on
    /// a thread of the blocking pool: the plugin is killed at the latest when its call is dropped, which
    /// ends the wait.
    pub async fn exited(&self) -> io::Result<()> {
        let pid = self.group;
        let wait = tokio::task::spawn_blocking(move || {
            loop {
                match rustix::process::waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT) {
                    Err(Errno::INTR) => continue,
                    // ECHILD: reaped already, so it has exited.
                    Ok(_) | Err(Errno::CHILD) => return Ok(()),
                    Err(e) => return Err(io::Error::from(e)),
                }
            }
        });
        wait.await.map_err(io::Error::other)?
    }

    /// After [`Run::exited`]: kills what is left of the group, reaps the plugin and every process of its
    /// group that is our child, and returns the plugin's exit status.
    pub fn finish(mut self) -> io::Result<ExitStatus> {
        let mut child = self.child.take().ok_or_else(|| io::Error::other("the plugin was already reaped"))?;
        self.killer().kill();
        // The plugin has exited, so this returns at once.
        let status = child.wait();
        if !reap_group(self.group, false) {
            reap_in_background(None, self.group);
        }
        status
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.killer().kill();
            match child.try_wait() {
                Ok(Some(_)) | Err(_) if reap_group(self.group, false) => {}
                Ok(Some(_)) | Err(_) => reap_in_background(None, self.group),
                Ok(None) => reap_in_background(Some(child), self.group),
            }
        }
    }
}

/// Reaps the processes of `group` that are our children. With `block`, until there are none left;
/// otherwise only those that have already ended. Returns whether none is left.
fn reap_group(group: Pid, block: bool) -> bool {
    let options = if block { WaitOptions::empty() } else { WaitOptions::NOHANG };
    loop {
        match rustix::process::waitpgid(group, options) {
            Ok(Some(_)) | Err(Errno::INTR) => continue,
            // Children of ours in the group, still dying.
            Ok(None) => return false,
            // ECHILD: no child of ours is left in the group.
            Err(_) => return true,
        }
    }
}

/// Reaps `child` (when not yet reaped) and the rest of `group` on a thread of its own: they were just
/// sent `SIGKILL`, so the thread ends as soon as the kernel has finished them.
fn reap_in_background(child: Option<Child>, group: Pid) {
    let spawned = std::thread::Builder::new().name("ib-sm-plugin-reaper".into()).spawn(move || {
        if let Some(mut child) = child {
            let _ = child.wait();
        }
        reap_group(group, true);
    });
    if let Err(e) = spawned {
        warn!(error = %e, group = group.as_raw_nonzero().get(), "cannot start a thread to reap a killed exec plugin");
    }
}
