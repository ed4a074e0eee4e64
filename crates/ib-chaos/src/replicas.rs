//! Controller replicas as child processes of the real binary, killed with SIGKILL and restarted.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use ib_sm::EnvMap;

#[derive(Clone, Debug)]
pub struct ReplicaSettings {
    pub binary: PathBuf,
    pub work_dir: PathBuf,
    /// The controller's whole environment but `POD_UID`, which each start sets anew.
    pub env: EnvMap,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("cannot start {binary}: {source}")]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("cannot create the log file {path}: {source}")]
    Log { path: PathBuf, source: std::io::Error },
}

pub struct ReplicaSet {
    settings: ReplicaSettings,
    /// Per slot: the running process and how many times the slot was started.
    slots: Vec<(Option<Child>, u32)>,
}

impl ReplicaSet {
    pub fn start(settings: ReplicaSettings, count: usize) -> Result<Self, ReplicaError> {
        let mut set = ReplicaSet { settings, slots: (0..count).map(|_| (None, 0)).collect() };
        for slot in 0..count {
            set.restart(slot)?;
        }
        Ok(set)
    }

    /// SIGKILL: the process gets no chance to release its lease or finish a request.
    pub fn kill(&mut self, slot: usize) {
        if let Some((Some(child), _)) = self.slots.get_mut(slot) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(s) = self.slots.get_mut(slot) {
            s.0 = None;
        }
    }

    /// Starts the slot again (after a kill) with a new pod uid, as a restarted container would have.
    pub fn restart(&mut self, slot: usize) -> Result<(), ReplicaError> {
        self.kill(slot);
        let generation = self.slots[slot].1 + 1;
        let s = &self.settings;
        let log = s.work_dir.join(format!("replica-{slot}-{generation}.log"));
        let file = File::create(&log).map_err(|source| ReplicaError::Log { path: log.clone(), source })?;
        let mut command = Command::new(&s.binary);
        command.env_clear().envs(s.env.iter()).env("POD_UID", format!("replica-{slot}-{generation}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|source| ReplicaError::Spawn { binary: s.binary.clone(), source })?;
        self.slots[slot] = (Some(child), generation);
        Ok(())
    }

    /// Restarts any slot whose process died on its own (it should not, but a crash must not hide).
    pub fn ensure_running(&mut self) -> Result<usize, ReplicaError> {
        let mut restarted = 0;
        for slot in 0..self.slots.len() {
            let alive = match self.slots[slot].0.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                None => false,
            };
            if !alive {
                self.restart(slot)?;
                restarted += 1;
            }
        }
        Ok(restarted)
    }

    pub fn stop_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.kill(slot);
        }
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        self.stop_all();
    }
}
