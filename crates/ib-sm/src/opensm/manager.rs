//! The `opensm` subnet manager: our memberships in OpenSM's `partitions.conf`, then a reload.
//!
//! Group commit: calls arriving while a rewrite is under way wait, and the next rewrite applies all of
//! them at once, whatever their partitions: a burst of pods costs one rewrite and one reload, not one
//! per pod. The controller already sends at most one call per P_Key at a time; this joins the calls of
//! different P_Keys too. A batch whose changes leave the file as it is (GUIDs already members, removals
//! of non-members) writes nothing and reloads only if a reload is still owed: the first batch of a
//! process always reloads, since an earlier one may have written the file and died before its reload.
//!
//! Every call ends within the configured timeout. Errors say whether the change may have been applied:
//! anything refused before the rename (a missing file, a site part OpenSM would refuse, a block we did
//! not write, a pid file that does not lead to OpenSM) certainly was not; a reload that failed after the
//! rename is undone by restoring our previous block when the file still holds the one we wrote.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use ib_model::partition::{PartitionOptions, Qos};
use ib_model::{Guid, PKey};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::config::OpenSmConfig;
use super::file::{self, FileError, Lock};
use super::partitions::{self, PartitionsError};
use super::reload::{self, ReloadError};
use crate::manager::{BoxFuture, SmCall, SmError, SubnetManager};
use edit::apply;

/// How many times a rewrite is tried again when someone else changed the file between our read and
/// our rename; each try reads the file afresh.
const CHANGED_MEANWHILE_TRIES: usize = 3;

/// Why a batch, a listing or a validation failed, before it becomes an [`SmError`] naming the call.
#[derive(Debug, thiserror::Error)]
enum OpenSmError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {source}")]
    Partitions { path: String, source: PartitionsError },
    #[error("partitions file {path} was not changed: {source}")]
    CannotReload { path: String, source: ReloadError },
    #[error("{path} was rewritten but OpenSM was not reloaded ({source}); {restored}")]
    ReloadFailed { path: String, source: ReloadError, restored: String },
    #[error("the file work stopped unexpectedly: {0}")]
    Task(String),
}

impl OpenSmError {
    /// Whether the change may nevertheless be in effect on the fabric or in the file.
    fn outcome_unknown(&self) -> bool {
        match self {
            OpenSmError::ReloadFailed { source, restored, .. } => {
                source.maybe_reloaded() || !restored.starts_with(RESTORED)
            }
            OpenSmError::Task(_) => true,
            OpenSmError::File(_) | OpenSmError::Partitions { .. } | OpenSmError::CannotReload { .. } => false,
        }
    }
}

const RESTORED: &str = "our previous block was restored";

/// What every caller of one batch is told.
#[derive(Clone, Debug)]
struct Failure {
    reason: String,
    outcome_unknown: bool,
}

impl From<OpenSmError> for Failure {
    fn from(e: OpenSmError) -> Self {
        Failure { outcome_unknown: e.outcome_unknown(), reason: e.to_string() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `None`: the configuration's membership and flags (`OPENSM_MEMBERSHIP`, `OPENSM_PARTITION_FLAGS`).
    Add(Option<PartitionOptions>),
    Remove,
    /// The QoS flags of one of our partitions; refused when the block does not define it.
    SetQos(Qos),
}

struct Job {
    op: Op,
    pkey: PKey,
    guids: Vec<Guid>,
    done: oneshot::Sender<Result<(), Failure>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Job>,
    committing: bool,
    /// Calls in the batch under way.
    in_batch: usize,
}

/// Counters of the work done, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenSmStats {
    /// Batches of calls applied together.
    pub batches: u64,
    /// Times the file was replaced.
    pub rewrites: u64,
    /// Times OpenSM was told to reload.
    pub reloads: u64,
}

struct Inner {
    config: OpenSmConfig,
    queue: Mutex<Queue>,
    batches: AtomicU64,
    rewrites: AtomicU64,
    reloads: AtomicU64,
    /// A rewrite may not have been followed by a reload (at start: by an earlier process).
    reload_owed: AtomicBool,
}

/// OpenSM through its partitions file. Cheap to share; all calls of one value are committed in groups.
pub struct OpenSm {
    inner: Arc<Inner>,
}

impl OpenSm {
    /// The manager for `config`; nothing is read until the first call.
    pub fn new(config: OpenSmConfig) -> Self {
        OpenSm {
            inner: Arc::new(Inner {
                config,
                queue: Mutex::new(Queue::default()),
                batches: AtomicU64::new(0),
                rewrites: AtomicU64::new(0),
                reloads: AtomicU64::new(0),
                reload_owed: AtomicBool::new(true),
            }),
        }
    }

    /// The settings it was made with.
    pub fn config(&self) -> &OpenSmConfig {
        &self.inner.config
    }

    /// How many batches, rewrites and reloads it has done so far.
    pub fn stats(&self) -> OpenSmStats {
        OpenSmStats {
            batches: self.inner.batches.load(Ordering::Relaxed),
            rewrites: self.inner.rewrites.load(Ordering::Relaxed),
            reloads: self.inner.reloads.load(Ordering::Relaxed),
        }
    }

    fn call_name(&self, what: &str) -> String {
        format!("{what} {}", self.inner.config.partitions_file.display())
    }

    async fn submit(&self, op: Op, pkey: PKey, guids: &[Guid]) -> Result<(), SmError> {
        let verb = match op {
            Op::Add(_) => "add to",
            Op::Remove => "remove from",
            Op::SetQos(_) => "set QoS in",
        };
        let call = match op {
            Op::SetQos(_) => format!("{} (pkey {pkey})", self.call_name(verb)),
            _ => format!("{} (pkey {pkey}, {} GUIDs)", self.call_name(verb), guids.len()),
        };
        if guids.is_empty() && !matches!(op, Op::SetQos(_)) {
            return Ok(());
        }
        let timeout = self.inner.config.timeout;
        let (done, outcome) = oneshot::channel();
        let start = {
            let mut queue = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.pending.push(Job { op, pkey, guids: guids.to_vec(), done });
            !std::mem::replace(&mut queue.committing, true)
        };
        if start {
            // Its own task: a caller that gives up must not cut a rewrite short between file and reload.
            tokio::spawn(commit_loop(Arc::clone(&self.inner)).instrument(tracing::Span::current()));
        }
        match tokio::time::timeout(timeout, outcome).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(failure))) => {
                Err(SmError::Local { call, reason: failure.reason, outcome_unknown: failure.outcome_unknown })
            }
            Ok(Err(_)) => Err(SmError::Local {
                call,
                reason: "the rewrite stopped without an answer".into(),
                outcome_unknown: true,
            }),
            Err(_) => Err(SmError::Timeout { call, timeout, sent: true }),
        }
    }

    /// Runs `work` on a blocking thread within the timeout.
    async fn blocking<T: Send + 'static>(
        &self,
        call: &str,
        work: impl FnOnce(&OpenSmConfig) -> Result<T, OpenSmError> + Send + 'static,
    ) -> Result<T, SmError> {
        let inner = Arc::clone(&self.inner);
        let timeout = inner.config.timeout;
        let task = tokio::task::spawn_blocking(move || work(&inner.config));
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => {
                Err(SmError::Local { call: call.to_owned(), outcome_unknown: false, reason: e.to_string() })
            }
            Ok(Err(e)) => Err(SmError::Local { call: call.to_owned(), outcome_unknown: false, reason: e.to_string() }),
            Err(_) => Err(SmError::Timeout { call: call.to_owned(), timeout, sent: false }),
        }
    }
}

async fn commit_loop(inner: Arc<Inner>) {
    loop {
        let jobs = {
            let mut queue = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.in_batch = queue.pending.len();
            if queue.pending.is_empty() {
                queue.committing = false;
                return;
            }
            std::mem::take(&mut queue.pending)
        };
        let changes: Vec<(Op, PKey, Vec<Guid>)> = jobs.iter().map(|j| (j.op, j.pkey, j.guids.clone())).collect();
        let span = tracing::info_span!("opensm_commit", calls = jobs.len());
        let started = Instant::now();
        let result = commit(&inner, changes).instrument(span.clone()).await.map_err(Failure::from);
        span.in_scope(|| match &result {
            Ok(_) => tracing::debug!(ms = started.elapsed().as_millis() as u64, "opensm batch committed"),
            Err(f) => tracing::warn!(error = %f.reason, outcome_unknown = f.outcome_unknown, "opensm batch failed"),
        });
        let path = inner.config.partitions_file.display().to_string();
        for job in jobs {
            let outcome = match &result {
                Ok(missing) if matches!(job.op, Op::SetQos(_)) && missing.contains(&job.pkey) => Err(Failure {
                    reason: format!("partition {} is not one of ib-kubernetes' partitions in {path}", job.pkey),
                    outcome_unknown: false,
                }),
                Ok(_) => Ok(()),
                Err(f) => Err(f.clone()),
            };
            let _ = job.done.send(outcome);
        }
    }
}

/// The outcome of the file part of a batch, with the lock still held for the reload.
struct Prepared {
    lock: Lock,
    /// Our block's content before and after, when the file was rewritten.
    rewritten: Option<(String, String)>,
}

/// Applies one batch; returns the partitions a QoS change named that the block does not define.
async fn commit(inner: &Arc<Inner>, changes: Vec<(Op, PKey, Vec<Guid>)>) -> Result<BTreeSet<PKey>, OpenSmError> {
    inner.batches.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + inner.config.timeout;
    // Half the time at most for another writer's lock: a call that could not get it ends with that
    // precise error (nothing written) rather than with its caller's timeout (outcome unknown).
    let lock_deadline = Instant::now() + inner.config.timeout / 2;
    let owed = inner.reload_owed.load(Ordering::Relaxed);
    let worker = Arc::clone(inner);
    let (prepared, missing) =
        tokio::task::spawn_blocking(move || prepare(&worker.config, &changes, lock_deadline, owed))
            .await
            .map_err(|e| OpenSmError::Task(e.to_string()))??;
    let Some(prepared) = prepared else { return Ok(missing) };
    if prepared.rewritten.is_some() {
        inner.rewrites.fetch_add(1, Ordering::Relaxed);
        inner.reload_owed.store(true, Ordering::Relaxed);
    }
    let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    match reload::reload(&inner.config.reload, remaining).await {
        Ok(()) => {
            inner.reloads.fetch_add(1, Ordering::Relaxed);
            inner.reload_owed.store(false, Ordering::Relaxed);
            drop(prepared.lock);
            Ok(missing)
        }
        Err(source) => {
            let path = inner.config.partitions_file.display().to_string();
            let restored = match prepared.rewritten {
                None => "nothing had been changed".to_owned(),
                Some((before, written)) => {
                    let worker = Arc::clone(inner);
                    let lock = prepared.lock;
                    tokio::task::spawn_blocking(move || {
                        let outcome = restore(&worker.config, &before, &written);
                        drop(lock);
                        outcome
                    })
                    .await
                    .map_err(|e| OpenSmError::Task(e.to_string()))?
                }
            };
            Err(OpenSmError::ReloadFailed { path, source, restored })
        }
    }
}

/// Lock, read, check, apply, write. `None`: nothing to write and no reload owed. With it, the
/// partitions a QoS change named that the block does not define.
fn prepare(
    config: &OpenSmConfig,
    changes: &[(Op, PKey, Vec<Guid>)],
    lock_deadline: Instant,
    owed: bool,
) -> Result<(Option<Prepared>, BTreeSet<PKey>), OpenSmError> {
    let path = file::resolve(&config.partitions_file)?;
    let lock = file::lock(&path, lock_deadline)?;
    let shown = || path.display().to_string();
    for attempt in 1..=CHANGED_MEANWHILE_TRIES {
        let snapshot = file::read(&path)?;
        let (layout, mut block) = partitions::read_block_full(&snapshot.bytes)
            .map_err(|source| OpenSmError::Partitions { path: shown(), source })?;
        partitions::check_site(&snapshot.bytes, &layout)
            .map_err(|source| OpenSmError::Partitions { path: shown(), source })?;
        let missing = apply(&mut block, changes, config);
        let before = layout.block.clone().map(|b| String::from_utf8_lossy(&snapshot.bytes[b]).into_owned());
        let after = partitions::render_block(&block);
        let unchanged = match &before {
            Some(before) => *before == after,
            None => after.is_empty(),
        };
        if unchanged {
            if !owed {
                return Ok((None, missing));
            }
            reload::check(&config.reload).map_err(|source| OpenSmError::CannotReload { path: shown(), source })?;
            return Ok((Some(Prepared { lock, rewritten: None }), missing));
        }
        // Nothing is written unless OpenSM can be told about it.
        reload::check(&config.reload).map_err(|source| OpenSmError::CannotReload { path: shown(), source })?;
        let bytes = partitions::replace_block(&snapshot.bytes, &layout, &after);
        match file::replace(&path, &snapshot, &bytes) {
            Ok(()) => {
                return Ok((Some(Prepared { lock, rewritten: Some((before.unwrap_or_default(), after)) }), missing));
            }
            Err(FileError::ChangedMeanwhile { .. }) if attempt < CHANGED_MEANWHILE_TRIES => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FileError::ChangedMeanwhile { path: shown() }.into())
}

/// Puts our previous block back if the file still holds the block we wrote; says what happened.
fn restore(config: &OpenSmConfig, before: &str, written: &str) -> String {
    let attempt = || -> Result<bool, OpenSmError> {
        let path = file::resolve(&config.partitions_file)?;
        let snapshot = file::read(&path)?;
        let layout = partitions::layout(&snapshot.bytes)
            .map_err(|source| OpenSmError::Partitions { path: path.display().to_string(), source })?;
        let Some(block) = layout.block.clone() else { return Ok(false) };
        if &snapshot.bytes[block] != written.as_bytes() {
            return Ok(false);
        }
        let bytes = partitions::replace_block(&snapshot.bytes, &layout, before);
        file::replace(&path, &snapshot, &bytes)?;
        Ok(true)
    };
    match attempt() {
        Ok(true) => RESTORED.to_owned(),
        Ok(false) => "our block had changed since, so it was left as it is".to_owned(),
        Err(e) => format!("restoring our previous block failed too: {e}"),
    }
}

impl SubnetManager for OpenSm {
    fn name(&self) -> &str {
        "opensm"
    }

    /// The file can be read and locked (so its directory is writable), holds nothing that stops a
    /// rewrite, and OpenSM can be told to reload. Nothing is written, nothing is signalled.
    fn validate(&self) -> SmCall<'_> {
        Box::pin(async move {
            let call = self.call_name("validate");
            let deadline = Instant::now() + self.inner.config.timeout / 2;
            self.blocking(&call, move |config| {
                let path = file::resolve(&config.partitions_file)?;
                let _lock = file::lock(&path, deadline)?;
                let snapshot = file::read(&path)?;
                let shown = || path.display().to_string();
                let (layout, _) = partitions::read_block(&snapshot.bytes)
                    .map_err(|source| OpenSmError::Partitions { path: shown(), source })?;
                partitions::check_site(&snapshot.bytes, &layout)
                    .map_err(|source| OpenSmError::Partitions { path: shown(), source })?;
                reload::check(&config.reload).map_err(|source| OpenSmError::CannotReload { path: shown(), source })
            })
            .await
        })
    }

    fn add_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a> {
        Box::pin(self.submit(Op::Add(None), pkey, guids))
    }

    /// Each member is written with the options' membership; the partition's definition gets `indx0`
    /// and `ipoib` as the options say and, with QoS, `mtu=`, `rate=` and `sl=` (OpenSM applies them to
    /// the partition's IPoIB broadcast group). Other configured flags are kept.
    fn add_guids_with<'a>(&'a self, pkey: PKey, guids: &'a [Guid], options: &'a PartitionOptions) -> SmCall<'a> {
        Box::pin(self.submit(Op::Add(Some(*options)), pkey, guids))
    }

    fn set_qos<'a>(&'a self, pkey: PKey, qos: Qos) -> SmCall<'a> {
        Box::pin(self.submit(Op::SetQos(qos), pkey, &[]))
    }

    fn remove_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a> {
        Box::pin(self.submit(Op::Remove, pkey, guids))
    }

    /// Our block only: the site's partitions are not ours to repair, and listing them would have the
    /// controller try to remove pool GUIDs the site put there, which it cannot.
    fn list_guids(&self) -> BoxFuture<'_, Result<Vec<(String, Guid)>, SmError>> {
        Box::pin(async move {
            let call = self.call_name("list");
            self.blocking(&call, |config| {
                let path = file::resolve(&config.partitions_file)?;
                let snapshot = file::read(&path)?;
                let (_, memberships) = partitions::read_block(&snapshot.bytes)
                    .map_err(|source| OpenSmError::Partitions { path: path.display().to_string(), source })?;
                Ok(memberships
                    .into_iter()
                    .flat_map(|(pkey, guids)| guids.into_iter().map(move |g| (pkey.to_string(), g)))
                    .collect())
            })
            .await
        })
    }

    /// A partition exists when our block has it or the site's part of the file defines it (the
    /// members listed are ours only, as in [`SubnetManager::list_guids`]).
    fn partition_members(&self, pkey: PKey) -> BoxFuture<'_, Result<Option<Vec<Guid>>, SmError>> {
        Box::pin(async move {
            let call = self.call_name("partition");
            self.blocking(&call, move |config| {
                let path = file::resolve(&config.partitions_file)?;
                let snapshot = file::read(&path)?;
                let (layout, mut memberships) = partitions::read_block(&snapshot.bytes)
                    .map_err(|source| OpenSmError::Partitions { path: path.display().to_string(), source })?;
                Ok(match memberships.remove(&pkey) {
                    Some(ours) => Some(ours.into_iter().collect()),
                    None => partitions::site_pkeys(&snapshot.bytes, &layout).contains(&pkey.get()).then(Vec::new),
                })
            })
            .await
        })
    }

    /// The configured timeout bounds every call, the wait for a batch under way included.
    fn call_timeout(&self) -> Duration {
        self.inner.config.timeout
    }
}

impl std::fmt::Debug for OpenSm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSm")
            .field("partitions_file", &self.inner.config.partitions_file)
            .field("reload", &self.inner.config.reload)
            .field("timeout", &self.inner.config.timeout)
            .finish_non_exhaustive()
    }
}

mod edit;

#[cfg(test)]
mod tests;
