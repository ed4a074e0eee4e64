//! The executors of the state task: they carry out the subnet-manager requests, record writes, pod
//! patches, lists and timers it asks for, each as a task that reports back with one [`Input`].
//!
//! Every task lives in one [`JoinSet`] owned by the state task, so none outlives it: a stop aborts them
//! and waits for them, and dropping the state task aborts them too.
//!
//! Pod patches wait in a queue, not as tasks: at most `patch_concurrency` sender tasks take them one at
//! a time, and wait idle when it is empty. A burst plans thousands of patches at once; a task each
//! would hold thousands of futures at once (a few KiB each, with the HTTP call inside), and the task
//! set keeps ended tasks until reaped.
//!
//! Subnet-manager requests go through one lane per partition: while a request of a lane is in flight,
//! new GUIDs for it gather and leave together in the next request (group commit). Latency is one round
//! trip when quiet; batches grow under load. One change per partition at a time also keeps a second
//! change from racing the first on a subnet manager that applies changes after answering (UFM): there
//! a change counts as done only once reading the partition back shows it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::Client;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, error, info_span, warn};

use ib_model::{BlockId, PKey, PodPatch, RecordWrite, SmFailure, SmOp, SmRequest};
use ib_sm::SubnetManager;

use crate::call::{CallError, bounded};
use crate::events::EventSink;
use crate::input::Input;
use crate::leader::LeaseGate;
use crate::records::RecordsError;
use crate::{patcher, records, sm_change, watch};

/// Settings of the state task.
#[derive(Clone, Debug)]
pub struct TaskSettings {
    /// Longest wait before failed work is retried (`DAEMON_PERIODIC_UPDATE`).
    pub max_retry: Duration,
    /// After becoming leader, how long GUIDs nobody owns are left in their partitions: a previous leader
    /// may still have had a write in flight for them (the lease duration bounds that).
    pub drift_grace: Duration,
    /// Upper bound on one subnet-manager call, on top of the client's own timeouts.
    pub sm_timeout: Duration,
    /// Upper bound on one API call.
    pub api_timeout: Duration,
    /// Pod patches in flight at once.
    pub patch_concurrency: usize,
    /// `WATCH_NAMESPACE`: the fresh pod list of a new leader reads this namespace only.
    pub watch_namespace: Option<String>,
}

#[derive(Default, Debug)]
struct Lane {
    busy: bool,
    /// Changes waiting, each with every GUID gathered for it, in the order first asked for.
    queued: Vec<SmRequest>,
    /// When the oldest queued change was asked for.
    since: Option<Instant>,
}

/// The longest a join is held for the rest of its burst, however slow the subnet manager.
const MAX_BURST_HOLD: Duration = Duration::from_millis(250);
/// The longest a partition's first join waits for a second ([`burst_hold`]), and the shortest worth
/// having: below it, a subnet manager answers a second request about as fast.
const MAX_FIRST_WAIT: Duration = Duration::from_millis(25);
const MIN_FIRST_WAIT: Duration = Duration::from_millis(1);

/// The subnet manager's round trip after a change took `elapsed`: it rises to a slower answer at once
/// (one slow answer is what a slow subnet manager looks like) and falls back gradually (one quick answer
/// is not).
fn next_round_trip(current: Duration, elapsed: Duration) -> Duration {
    if elapsed >= current { elapsed } else { (current * 3 + elapsed) / 4 }
}

/// How long a partition's join may still wait, queued since `since`, for GUIDs about to join the same
/// partition: half the subnet manager's recent round trip (at most [`MAX_BURST_HOLD`]) while more
/// joins wait for their ownership record; else, in the first sixteenth of the round trip (at most
/// [`MAX_FIRST_WAIT`], and not at all below [`MIN_FIRST_WAIT`]), until that has passed.
///
/// A subnet manager that serves one request at a time (UFM) charges a whole round trip per request:
/// sending a burst's first GUIDs at once and the rest in a second request costs two round trips where
/// one would do. Waiting up to half a round trip for the rest saves a whole one; with a fast subnet
/// manager the wait is negligible. A burst's first pod can have its record written before the second
/// pod has been seen at all, when nothing waits for a record yet: the first moments after a join are
/// waited out for that, a sixteenth of what a second request would cost.
fn burst_hold(since: Instant, now: Instant, round_trip: Duration, more_coming: bool) -> Option<Duration> {
    let window = (round_trip / 2).min(MAX_BURST_HOLD);
    let held = now.saturating_duration_since(since);
    let left = window.checked_sub(held).filter(|left| !left.is_zero())?;
    if more_coming {
        return Some(left);
    }
    let first = (window / 8).min(MAX_FIRST_WAIT);
    if first < MIN_FIRST_WAIT {
        return None;
    }
    first.checked_sub(held).filter(|left| !left.is_zero())
}

/// Pod patches waiting to be sent, each with the leadership it was planned under, and how many sender
/// tasks there are.
#[derive(Default)]
struct PatchQueue {
    waiting: VecDeque<(u64, PodPatch)>,
    senders: usize,
}

/// The patch queue, shared by the executors (which add to it) and the sender tasks (which take from
/// it), and the signal that wakes an idle sender. The lock is never held across an await.
#[derive(Clone, Default)]
struct SharedPatches(Arc<(Mutex<PatchQueue>, Notify)>);

impl SharedPatches {
    fn lock(&self) -> std::sync::MutexGuard<'_, PatchQueue> {
        // A sender that panicked holding the lock left the queue consistent: every change is one call.
        self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a patch and wakes an idle sender; true when another sender should be started (fewer than
    /// `limit` exist).
    fn push(&self, term: u64, patch: PodPatch, limit: usize) -> bool {
        let start = {
            let mut queue = self.lock();
            queue.waiting.push_back((term, patch));
            let start = queue.senders < limit;
            if start {
                queue.senders += 1;
            }
            start
        };
        // Kept as a permit if no sender is waiting yet, so a sender about to wait still sees it.
        self.0.1.notify_one();
        start
    }

    /// The next patch, waiting while there is none.
    async fn next(&self) -> (u64, PodPatch) {
        loop {
            let next = self.lock().waiting.pop_front();
            match next {
                Some(next) => return next,
                None => self.0.1.notified().await,
            }
        }
    }
}

/// A sender's place in [`PatchQueue::senders`], given back when the sender ends (aborted at shutdown,
/// or the state task gone).
struct SenderSlot(SharedPatches);

impl Drop for SenderSlot {
    fn drop(&mut self) {
        self.0.lock().senders -= 1;
    }
}

/// The work the state task hands out, and the tasks doing it.
pub struct Executors {
    tasks: JoinSet<()>,
    tx: mpsc::Sender<Input>,
    sm: Arc<dyn SubnetManager>,
    client: Client,
    gate: LeaseGate,
    patches: SharedPatches,
    settings: TaskSettings,
    lanes: HashMap<PKey, Lane>,
    /// The subnet manager's recent round trip ([`next_round_trip`]).
    round_trip: Duration,
    /// When the earliest [`Input::FlushLanes`] on its way is due: a join held for a burst's first moments
    /// may need one earlier than a hold armed before it.
    lanes_armed: Option<Instant>,
}

impl Executors {
    /// Executors that report back on `tx` and do nothing that writes unless `gate` shows the Lease held.
    pub fn new(
        tx: mpsc::Sender<Input>,
        sm: Arc<dyn SubnetManager>,
        client: Client,
        gate: LeaseGate,
        settings: TaskSettings,
    ) -> Self {
        Executors {
            tasks: JoinSet::new(),
            tx,
            sm,
            client,
            gate,
            patches: SharedPatches::default(),
            settings,
            lanes: HashMap::new(),
            round_trip: Duration::ZERO,
            lanes_armed: None,
        }
    }

    /// The timeouts, limits and retry settings the tasks run with.
    pub fn settings(&self) -> &TaskSettings {
        &self.settings
    }

    /// Starts the Events sender among these tasks.
    pub fn start_events(&mut self, instance: String, dropped: Counter) -> EventSink {
        EventSink::start(self.client.clone(), instance, dropped, &mut self.tasks)
    }

    /// Forgets the tasks that have ended; one that panicked is logged (its outcome is lost).
    pub fn reap(&mut self) {
        while let Some(ended) = self.tasks.try_join_next() {
            if let Err(e) = ended
                && e.is_panic()
            {
                error!(error = %e, "an executor task panicked");
            }
        }
    }

    /// Aborts every task and waits until all have ended.
    pub async fn shutdown(&mut self) {
        self.tasks.shutdown().await;
    }

    /// Runs `work` as a task and sends what it ends with to the state task.
    fn spawn(&mut self, work: impl Future<Output = Input> + Send + 'static) {
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let input = work.await;
            let _ = tx.send(input).await;
        });
    }

    /// Sends `input` to the state task after `delay`.
    pub fn after(&mut self, delay: Duration, input: Input) {
        self.spawn(async move {
            tokio::time::sleep(delay).await;
            input
        });
    }

    /// A new leadership: requests of the last one are not waited for.
    pub fn clear_lanes(&mut self) {
        self.lanes.clear();
    }

    /// Queues a subnet-manager request; requests of one partition are sent one at a time, and those
    /// asking for the same change are merged.
    pub fn submit_sm(&mut self, request: SmRequest) {
        let lane = self.lanes.entry(request.pkey).or_default();
        lane.since.get_or_insert_with(Instant::now);
        match lane.queued.iter_mut().find(|q| q.same_change(&request)) {
            Some(queued) => queued.guids.extend(request.guids),
            None => lane.queued.push(request),
        }
    }

    /// The request of a lane has answered after `elapsed`: what it gathered meanwhile may go.
    pub fn lane_done(&mut self, pkey: PKey, elapsed: Duration) {
        if let Some(lane) = self.lanes.get_mut(&pkey) {
            lane.busy = false;
        }
        self.round_trip = next_round_trip(self.round_trip, elapsed);
    }

    /// The timer of a held join has fired.
    pub fn lanes_timer_fired(&mut self) {
        self.lanes_armed = None;
    }

    /// Sends the first change each idle lane has gathered as one request. Runs once per round of
    /// inputs, after the plan, so that a lane freed by an answer early in the round also carries what
    /// the rest of the round planned: under a burst that is many GUIDs per request, and no added wait.
    /// A join whose partition has more joins waiting only for their record is held a moment
    /// ([`burst_hold`]); `more_coming` tells which partitions have.
    pub fn flush_lanes(&mut self, term: u64, more_coming: &dyn Fn(PKey) -> bool) {
        let now = Instant::now();
        let mut wake = None::<Duration>;
        let mut ready = Vec::new();
        for (pkey, lane) in &mut self.lanes {
            let Some(first) = lane.queued.first().filter(|_| !lane.busy) else { continue };
            let since = lane.since.unwrap_or(now);
            if first.op == SmOp::Add
                && let Some(left) = burst_hold(since, now, self.round_trip, more_coming(*pkey))
            {
                wake = Some(wake.map_or(left, |w| w.min(left)));
                continue;
            }
            lane.busy = true;
            ready.push(lane.queued.remove(0));
            lane.since = (!lane.queued.is_empty()).then_some(now);
        }
        if let Some(left) = wake.filter(|left| self.lanes_armed.is_none_or(|due| now + *left < due)) {
            self.lanes_armed = Some(now + left);
            self.after(left, Input::FlushLanes);
        }
        for request in ready {
            self.spawn_sm(term, request);
        }
    }

    fn spawn_sm(&mut self, term: u64, request: SmRequest) {
        let (sm, gate, limit) = (self.sm.clone(), self.gate.clone(), self.settings.sm_timeout);
        let span = info_span!("sm", operation = op_name(request.op), pkey = %request.pkey, guids = request.guids.len());
        self.spawn(async move {
            let started = Instant::now();
            // The one place subnet-manager writes are gated on leadership; the call may not outlive the
            // leadership it started under, whatever it waits for inside (a plugin slot, say).
            let result = match gate.time_left() {
                None => Err(SmFailure { kind: "not_leader", unknown: false }),
                Some(left) => {
                    let result = bounded(limit.min(left), span.clone(), sm_change::change(sm.as_ref(), &request)).await;
                    let result = match result {
                        Ok(()) if sm.applies_later() => {
                            let left = gate.time_left().unwrap_or_default();
                            bounded(limit.min(left), span.clone(), sm_change::confirm(sm.as_ref(), &request)).await
                        }
                        other => other,
                    };
                    let _entered = span.enter();
                    match result {
                        Ok(()) => {
                            debug!(ms = started.elapsed().as_millis() as u64, "subnet manager request done");
                            Ok(())
                        }
                        Err(CallError::Failed(e)) => {
                            warn!(error = %e, "subnet manager request failed");
                            Err(e.failure())
                        }
                        Err(CallError::TimedOut(limit)) => {
                            warn!(
                                timeout_ms = limit.as_millis() as u64,
                                "subnet manager request cut off: outcome unknown"
                            );
                            Err(SmFailure { kind: "timeout", unknown: true })
                        }
                    }
                }
            };
            Input::SmDone { term, request, result, elapsed: started.elapsed() }
        });
    }

    /// Reads every membership of the subnet manager.
    pub fn list_sm(&mut self, term: u64) {
        let (sm, limit) = (self.sm.clone(), self.settings.sm_timeout);
        self.spawn(async move {
            let started = Instant::now();
            let result = bounded(limit, info_span!("sm", operation = "list"), sm.list_partitions()).await;
            match &result {
                Ok(list) => debug!(guids = list.len(), ms = started.elapsed().as_millis() as u64, "listed"),
                Err(e) => warn!(error = %e, "listing the subnet manager failed"),
            }
            Input::SmListed { term, result }
        });
    }

    /// Patches a pod's annotations in the background for the leadership `term`; the outcome comes back as
    /// `PatchDone`. Patches are sent in the order queued, at most `patch_concurrency` at once.
    pub fn patch(&mut self, term: u64, patch: PodPatch) {
        if self.patches.push(term, patch, self.settings.patch_concurrency.max(1)) {
            self.spawn_patch_sender();
        }
    }

    /// A task sending queued patches one after another, for as long as the executors exist: senders
    /// wait idle rather than end, so there are never more of them than `patch_concurrency`, counting
    /// one that is ending.
    fn spawn_patch_sender(&mut self) {
        let ctx = patcher::PatchContext {
            client: self.client.clone(),
            gate: self.gate.clone(),
            timeout: self.settings.api_timeout,
        };
        let (queue, tx) = (self.patches.clone(), self.tx.clone());
        // Made here, not inside the task: a task aborted before its first poll drops it all the same.
        let slot = SenderSlot(queue.clone());
        self.tasks.spawn(async move {
            let _slot = slot;
            loop {
                let (term, patch) = queue.next().await;
                let outcome = patcher::patch_pod(&ctx, &patch).await;
                if tx.send(Input::PatchDone { term, patch, outcome }).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Re-reads a pod whose patch conflicted, applies what was read, then lets it be planned again.
    pub fn refresh(&mut self, patch: PodPatch) {
        let (client, tx, timeout) = (self.client.clone(), self.tx.clone(), self.settings.api_timeout);
        self.tasks.spawn(async move {
            let uid = patch.pod.uid.clone();
            let input = match patcher::refresh(&client, &patch, timeout).await {
                patcher::Refreshed::Current(view) => Some(Input::PodApplied(view)),
                patcher::Refreshed::Gone => Some(Input::PodDeleted(uid.clone())),
                patcher::Refreshed::Unknown => None,
            };
            if let Some(input) = input {
                let _ = tx.send(input).await;
            }
            let _ = tx.send(Input::RetryPod(uid)).await;
        });
    }

    /// Lists every pod for the leadership `term`, after `delay`: its pages as they are read, then its
    /// end. The whole list is bounded by the API timeout, as one call was: a page read long after a
    /// deletion was delivered could otherwise bring the pod back (see `state_task::deleted`).
    pub fn list_pods(&mut self, term: u64, delay: Duration) {
        let (client, limit) = (self.client.clone(), self.settings.api_timeout);
        let namespace = self.settings.watch_namespace.clone();
        let tx = self.tx.clone();
        self.spawn(async move {
            tokio::time::sleep(delay).await;
            let listing = watch::list_pods(client, namespace.as_deref(), term, &tx);
            let result = bounded(limit, info_span!("api", operation = "list_pods"), listing).await;
            Input::FreshPodsEnd { term, result }
        });
    }

    /// Reads every ownership record for the leadership `term`, after `delay`.
    pub fn list_records(&mut self, term: u64, delay: Duration) {
        let (client, limit) = (self.client.clone(), self.settings.api_timeout);
        let tx = self.tx.clone();
        self.spawn(async move {
            tokio::time::sleep(delay).await;
            let result = records::list_pages(client, limit, term, &tx).await;
            if let Err(e) = &result {
                warn!(error = %e, "reading the ownership records failed; retrying");
            }
            Input::RecordsListed { term, result }
        });
    }

    /// Writes a change to the ownership records in the background; the outcome comes back as `RecordsWritten`.
    pub fn write_records(&mut self, term: u64, write: RecordWrite, anchor: BlockId) {
        let (client, gate, limit) = (self.client.clone(), self.gate.clone(), self.settings.api_timeout);
        self.spawn(async move {
            // Record writes are gated like every other write, and bounded by the leadership's time left.
            let result = match gate.time_left() {
                None => Err(RecordsError::NotLeader),
                Some(left) => records::write(client, &write, anchor, limit.min(left)).await,
            };
            if let Err(e) = &result
                && !matches!(e, RecordsError::NotLeader)
            {
                warn!(block = %write.block, error = %e, "writing ownership records failed");
            }
            Input::RecordsWritten { term, write, result }
        });
    }
}

/// The word naming a subnet-manager operation in metrics and logs.
pub fn op_name(op: SmOp) -> &'static str {
    match op {
        SmOp::Add => "add",
        SmOp::Remove => "remove",
    }
}

/// First retry delay after a failure; doubled per failure up to `DAEMON_PERIODIC_UPDATE`.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// 250 ms, 500 ms, 1 s, … up to `cap`.
pub fn retry_delay(attempt: u32, cap: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    (FIRST_RETRY * factor).min(cap)
}

#[cfg(test)]
mod tests;
