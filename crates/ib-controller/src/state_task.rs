//! The one task that owns the decision state.
//!
//! Watch events, subnet-manager outcomes, patch outcomes, leadership changes and timers arrive as
//! [`Input`]s on one channel. After each batch of inputs the task asks the planner what to do and hands
//! the work to its [`Executors`], which run concurrently and report back by message; no lock is held
//! across I/O and nothing else touches the state. How each outcome is taken in is in `outcomes`.

mod deleted;
mod outcomes;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use ib_model::annotation::CONFIGURED_VALUE;
use ib_model::{Guid, Plan, PodUid, PodView, State};
use ib_sm::SubnetManager;

use crate::events::EventSink;
pub use crate::executors::TaskSettings;
use crate::executors::{Executors, retry_delay};
use crate::input::Input;
use crate::leader::LeaseGate;
use crate::metrics::{Metrics, ReasonLabels};

/// Inputs handled per planning round: planning after every single watch event would waste work during
/// a re-list, planning after too many would delay the first pods of a burst.
const MAX_BATCH: usize = 1024;
/// Gauges are refreshed at most this often: counting pending pods by reason costs O(pending pods).
const GAUGE_INTERVAL: Duration = Duration::from_millis(250);
/// How long record changes that can wait (`Member`, `Releasing`) wait at most for their block's next
/// write before they are written on their own.
const RECORD_FLUSH_DELAY: Duration = Duration::from_secs(1);

/// What the state task works with besides its state and its input channel.
pub struct Dependencies {
    /// The subnet manager memberships are written to and read from.
    pub sm: Arc<dyn SubnetManager>,
    /// The Kubernetes API client for patches, records and Events.
    pub client: Client,
    /// Tells whether this replica may write, and for how long.
    pub gate: LeaseGate,
    /// Where the task reports what it does.
    pub metrics: Arc<Metrics>,
    /// The instance named in the Events this replica reports.
    pub event_instance: String,
    /// Counts Events dropped because their queue was full.
    pub events_dropped: Counter,
    /// Set once pods and NADs are synced.
    pub ready: watch::Sender<bool>,
    /// The controller is stopping: the task aborts its executors, waits for them and ends.
    pub stop: watch::Receiver<bool>,
    /// Timeouts, limits and retry settings.
    pub settings: TaskSettings,
}

/// The single task that owns the state: it applies every input and hands the resulting work to executors.
pub struct StateTask {
    state: State,
    rx: mpsc::Receiver<Input>,
    exec: Executors,
    stop: watch::Receiver<bool>,
    leading: bool,
    /// Counts leaderships, so outcomes of work started in an earlier one are recognised.
    term: u64,
    metrics: Arc<Metrics>,
    events: EventSink,
    ready: watch::Sender<bool>,
    pods_synced: bool,
    nads_synced: bool,
    first_seen: HashMap<PodUid, Instant>,
    /// Pods whose deletion was delivered: a view of them read earlier is dropped.
    deleted: deleted::Deleted,
    sm_failures: HashMap<Guid, u32>,
    patch_failures: HashMap<PodUid, u32>,
    gauges_updated: Instant,
    /// A [`Input::FlushRecords`] is on its way.
    flush_armed: bool,
    /// Pods the fresh list in progress has delivered so far, for its log line.
    fresh_listed: usize,
    /// Records the record list in progress has delivered so far, for its log line.
    records_read: usize,
    /// Failed attempts of the fresh pod list, of the subnet-manager listing and of the record list, each
    /// with its own backoff.
    list_failures: u32,
    sm_list_failures: u32,
    record_list_failures: u32,
    record_write_failures: u32,
}

impl StateTask {
    /// A state task reading `inputs`, whose sender is handed to its executors.
    pub fn new(state: State, inputs: (mpsc::Sender<Input>, mpsc::Receiver<Input>), deps: Dependencies) -> Self {
        let (tx, rx) = inputs;
        // A list, a patch and its re-read each end within the API timeout after they start.
        let deleted = deleted::Deleted::new(deps.settings.api_timeout * 4);
        let mut exec = Executors::new(tx, deps.sm, deps.client, deps.gate, deps.settings);
        let events = exec.start_events(deps.event_instance, deps.events_dropped);
        StateTask {
            state,
            rx,
            exec,
            stop: deps.stop,
            leading: false,
            term: 0,
            metrics: deps.metrics,
            events,
            ready: deps.ready,
            pods_synced: false,
            nads_synced: false,
            first_seen: HashMap::new(),
            deleted,
            sm_failures: HashMap::new(),
            patch_failures: HashMap::new(),
            gauges_updated: Instant::now(),
            flush_armed: false,
            fresh_listed: 0,
            records_read: 0,
            list_failures: 0,
            sm_list_failures: 0,
            record_list_failures: 0,
            record_write_failures: 0,
        }
    }

    /// Runs until the controller stops or every sender of the input channel is gone; every executor
    /// task has ended when it returns.
    pub async fn run(mut self) {
        // The tick keeps gauges fresh while no input arrives.
        let mut tick = tokio::time::interval(GAUGE_INTERVAL * 4);
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                input = self.rx.recv() => {
                    let Some(input) = input else { break };
                    self.handle(input);
                    for _ in 1..MAX_BATCH {
                        match self.rx.try_recv() {
                            Ok(input) => self.handle(input),
                            Err(_) => break,
                        }
                    }
                    if self.leading {
                        let plan = self.state.plan();
                        self.dispatch(plan);
                        self.arm_record_flush();
                    }
                }
                _ = stop.wait_for(|stop| *stop) => break,
                _ = tick.tick() => {}
            }
            self.exec.reap();
            if self.gauges_updated.elapsed() >= GAUGE_INTERVAL {
                self.update_gauges();
                self.gauges_updated = Instant::now();
            }
        }
        self.exec.shutdown().await;
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::PodApplied(view) => {
                if self.deleted.contains(&view.uid) {
                    debug!(pod = %view.pod_ref(), "a view read before the pod's deletion is dropped");
                    return;
                }
                self.note_first_seen(&view);
                self.state.apply_pod(view);
            }
            Input::PodDeleted(uid) => {
                self.first_seen.remove(&uid);
                self.patch_failures.remove(&uid);
                self.state.delete_pod(&uid);
                self.deleted.insert(uid);
            }
            Input::PodsReset { first, done, views } => {
                for v in &views {
                    self.note_first_seen(v);
                }
                self.state.relist_pods_page(first, views);
                if done {
                    let pods = self.state.relist_pods_end();
                    info!(pods, "pods listed");
                    self.pods_synced = true;
                    self.publish_ready();
                }
            }
            Input::NadApplied(network, config) => self.state.apply_nad(network, config.as_deref()),
            Input::NadDeleted(network) => self.state.delete_nad(&network),
            Input::PKeyAllocations(allocated) => self.state.set_pkey_allocations(allocated),
            Input::PKeysClaimed { range, reply } => {
                // The allocator may have given up waiting; then nobody needs the answer.
                let _ = reply.send(self.state.pkeys_claimed(range));
            }
            Input::NadsReset(nads) => {
                info!(nads = nads.len(), "network attachment definitions listed");
                self.state.reset_nads(nads.iter().map(|(n, c)| (n.clone(), c.as_deref())));
                self.state.nads_synced();
                self.nads_synced = true;
                self.publish_ready();
            }
            Input::Leading(leading) => self.set_leading(leading),
            Input::FreshPodsPage { term, views, permit } => {
                self.fresh_pods_page(term, views);
                drop(permit);
            }
            Input::FreshPodsEnd { term, result } => self.fresh_pods_end(term, result),
            Input::DriftGraceOver(term) => {
                if term == self.term && self.leading {
                    debug!("drift grace over: unowned GUIDs may now be removed");
                    self.state.allow_drift_repair();
                }
            }
            Input::Resync => {
                if self.leading {
                    debug!("resync: reading the subnet manager to repair drift");
                    self.state.resync();
                }
            }
            Input::SmDone { term, request, result, elapsed } => self.sm_done(term, request, result, elapsed),
            Input::SmListed { term, result } => self.sm_listed(term, result),
            Input::RecordsPage { term, records } => self.records_page(term, records),
            Input::RecordsListed { term, result } => self.records_listed(term, result),
            Input::RecordsWritten { term, write, result } => self.records_written(term, write, result),
            Input::RetryRecordWrites => self.state.retry_records(),
            Input::FlushRecords => {
                self.flush_armed = false;
                self.state.flush_records();
            }
            Input::FlushLanes => self.exec.lanes_timer_fired(),
            Input::RetryRecords(term) => {
                if term == self.term && self.leading {
                    self.exec.list_records(term, Duration::ZERO);
                }
            }
            Input::PatchDone { term, patch, outcome } => self.patch_done(term, patch, outcome),
            Input::RetryGuids(guids) => self.state.retry_guids(&guids),
            Input::RetryPod(uid) => self.state.retry_pod(&uid),
        }
    }

    /// Remembers when a pod that may need configuration was first seen, for the configure-latency
    /// histogram. A pod whose annotation already mentions `configured` is taken as done: the metric can
    /// miss a pod that gains a second network later, which is cheaper than parsing every event.
    fn note_first_seen(&mut self, view: &PodView) {
        let waiting = view.networks.as_deref().is_some_and(|n| !n.contains(CONFIGURED_VALUE));
        if waiting && !view.is_finished() && !self.first_seen.contains_key(&view.uid) {
            self.first_seen.insert(view.uid.clone(), Instant::now());
        }
    }

    fn publish_ready(&self) {
        if self.pods_synced && self.nads_synced {
            self.ready.send_replace(true);
        }
    }

    fn set_leading(&mut self, leading: bool) {
        if leading == self.leading {
            return;
        }
        self.leading = leading;
        self.metrics.leader.set(i64::from(leading));
        if leading {
            self.term += 1;
            self.fresh_listed = 0;
            self.records_read = 0;
            self.exec.clear_lanes();
            info!(term = self.term, "leading: reading the subnet manager, then reconciling every pod");
            self.state.begin_leading();
            // Records first: a pod that owns GUIDs by record must be kept even if its annotation is gone,
            // which is known only once the records are read.
            self.exec.list_records(self.term, Duration::ZERO);
            let grace = self.exec.settings().drift_grace;
            self.exec.after(grace, Input::DriftGraceOver(self.term));
        } else {
            warn!("no longer leading: stopping all writes");
        }
    }

    fn dispatch(&mut self, plan: Plan) {
        for (guid, owner) in &plan.allocated {
            debug!(%guid, %owner, "GUID allocated");
        }
        for guid in &plan.released {
            debug!(%guid, "GUID released");
        }
        for guid in &plan.unrecorded {
            let partitions = self.state.sm_membership().partitions(*guid).map(|p| format!("{p:?}")).unwrap_or_default();
            warn!(%guid, partitions, "a pool GUID is in a partition that no ownership record explains; left alone unless REMOVE_UNRECORDED_MEMBERSHIPS=true");
        }
        for guid in &plan.drift {
            info!(%guid, "removing a membership no ownership record explains (REMOVE_UNRECORDED_MEMBERSHIPS=true)");
            self.metrics.drift_repairs.inc();
        }
        if let Some(imported) = &plan.imported {
            info!(
                interfaces = imported.interfaces,
                duplicates = imported.duplicates,
                "no ownership records yet: imported the configured interfaces of live pods from their annotations, once; from now on annotations are requests only"
            );
        }
        for pending in plan.pending {
            warn!(pod = %pending.pod, reason = pending.reason.label(), "{}", pending.reason);
            self.events.warning(&pending.pod, pending.reason.label(), pending.reason.to_string());
        }
        for notice in plan.notices {
            info!(pod = %notice.pod, reason = notice.reason, "{}", notice.message);
            self.events.normal(&notice.pod, notice.reason, notice.message);
        }
        let anchor = self.state.anchor_block();
        for write in plan.records {
            self.exec.write_records(self.term, write, anchor);
        }
        if plan.list_sm {
            self.exec.list_sm(self.term);
        }
        for request in plan.sm {
            self.exec.submit_sm(request);
        }
        for patch in plan.patches {
            self.exec.patch(self.term, patch);
        }
        let state = &self.state;
        self.exec.flush_lanes(self.term, &|pkey| state.joins_waiting_for_records(pkey));
    }

    /// Once record changes wait for their block's next write, they are written a moment later anyway,
    /// so stored states catch up in a quiet cluster too.
    fn arm_record_flush(&mut self) {
        if self.flush_armed || !self.state.records_waiting() {
            return;
        }
        self.flush_armed = true;
        self.exec.after(RECORD_FLUSH_DELAY, Input::FlushRecords);
    }

    /// Sends `input` back after an exponential backoff capped at `DAEMON_PERIODIC_UPDATE`.
    fn retry_later(&mut self, input: Input, attempt: u32) {
        let delay = retry_delay(attempt, self.exec.settings().max_retry);
        self.exec.after(delay, input);
    }

    fn update_gauges(&self) {
        let pool = self.state.pool();
        self.metrics.pool_used.set(i64::try_from(pool.allocated_count()).unwrap_or(i64::MAX));
        self.metrics.pool_capacity.set(i64::try_from(pool.capacity()).unwrap_or(i64::MAX));
        self.metrics.records.set(i64::try_from(self.state.record_count()).unwrap_or(i64::MAX));
        self.metrics.unrecorded.set(i64::try_from(self.state.unrecorded_count()).unwrap_or(i64::MAX));
        self.metrics.uncertain.set(i64::try_from(self.state.uncertain_count()).unwrap_or(i64::MAX));
        let counts = self.state.pending_by_reason();
        for reason in ib_model::PendingReason::LABELS {
            let n = counts.get(reason).copied().unwrap_or(0);
            self.metrics.pending_pods.get_or_create(&ReasonLabels { reason }).set(n as i64);
        }
    }
}
