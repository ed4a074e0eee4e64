//! The one task that owns the decision state.
//!
//! Watch events, subnet-manager outcomes, patch outcomes, leadership changes and timers arrive as
//! [`Input`]s on one channel. After each batch of inputs the task asks the planner what to do and hands
//! the work to the executors, which run concurrently and report back by message; no lock is held across
//! I/O and nothing else touches the state.
//!
//! Subnet-manager requests go through one lane per (operation, pkey): while a request of a lane is in
//! flight, new GUIDs for it gather and leave together in the next request (group commit). Latency is
//! one round trip when quiet; batches grow under load.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::leader::LeaseGate;
use tracing::{Instrument, debug, info, info_span, warn};

use ib_model::annotation::{CONFIGURED_VALUE, NetworksAnnotation};
use ib_model::{
    Guid, NetworkRef, PKey, PatchOutcome, Plan, PodPatch, PodUid, PodView, RecordWrite, SmFailure, SmOp, SmRequest,
    State,
};
use ib_sm::{SmError, SubnetManager};

use crate::events::EventSink;
use crate::metrics::{Metrics, OperationLabels, OutcomeLabels, ReasonLabels, SmLabels};
use crate::{patcher, records};

/// Inputs handled per planning round: planning after every single watch event would waste work during
/// a re-list, planning after too many would delay the first pods of a burst.
const MAX_BATCH: usize = 1024;
/// Gauges are refreshed at most this often: counting pending pods by reason costs O(pending pods).
const GAUGE_INTERVAL: Duration = Duration::from_millis(250);
/// First retry delay after a failure; doubled per failure up to `DAEMON_PERIODIC_UPDATE`.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// How long record changes that can wait (`Member`, `Releasing`) wait at most for their block's next
/// write before they are written on their own.
const RECORD_FLUSH_DELAY: Duration = Duration::from_secs(1);

/// Everything that can change the state.
#[derive(Debug)]
pub enum Input {
    PodApplied(PodView),
    PodDeleted(PodUid),
    /// A complete re-list of pods (the watch's initial sync or a recovery from a gap).
    PodsReset(Vec<PodView>),
    NadApplied(NetworkRef, Option<String>),
    NadDeleted(NetworkRef),
    NadsReset(Vec<(NetworkRef, Option<String>)>),
    Leading(bool),
    Resync,
    /// The drift grace of the leadership `term` is over.
    DriftGraceOver(u64),
    /// Every pod, read afresh for the leadership `term`, with the list's resourceVersion.
    FreshPods {
        term: u64,
        result: Result<(Vec<PodView>, Option<String>), String>,
    },
    SmDone {
        term: u64,
        request: SmRequest,
        result: Result<(), SmFailure>,
        elapsed: Duration,
    },
    SmListed {
        term: u64,
        result: Result<Vec<(String, Guid)>, &'static str>,
    },
    /// Every ownership record, read for the leadership `term`: whether any block exists, and the records.
    RecordsListed {
        term: u64,
        result: Result<records::Listed, &'static str>,
    },
    RecordsWritten {
        term: u64,
        write: RecordWrite,
        ok: bool,
    },
    RetryRecords(u64),
    RetryRecordWrites,
    /// Write the record changes that waited for their block's next write.
    FlushRecords,
    PatchDone {
        term: u64,
        patch: PodPatch,
        outcome: PatchOutcome,
    },
    RetryGuids(Vec<Guid>),
    RetryPod(PodUid),
}

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
    queued: Vec<Guid>,
}

pub struct StateTask {
    state: State,
    rx: mpsc::Receiver<Input>,
    tx: mpsc::Sender<Input>,
    sm: Arc<dyn SubnetManager>,
    client: Client,
    gate: LeaseGate,
    leading: bool,
    /// Counts leaderships, so outcomes of work started in an earlier one are recognised.
    term: u64,
    lanes: HashMap<(SmOp, PKey), Lane>,
    patch_slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    events: EventSink,
    ready: watch::Sender<bool>,
    pods_synced: bool,
    nads_synced: bool,
    first_seen: HashMap<PodUid, Instant>,
    sm_failures: HashMap<Guid, u32>,
    patch_failures: HashMap<PodUid, u32>,
    gauges_updated: Instant,
    /// A [`Input::FlushRecords`] is on its way.
    flush_armed: bool,
    /// Failed attempts of the fresh pod list, of the subnet-manager listing and of the record list, each
    /// with its own backoff.
    list_failures: u32,
    sm_list_failures: u32,
    record_list_failures: u32,
    record_write_failures: u32,
    settings: TaskSettings,
}

impl StateTask {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        state: State,
        rx: mpsc::Receiver<Input>,
        tx: mpsc::Sender<Input>,
        sm: Arc<dyn SubnetManager>,
        client: Client,
        gate: LeaseGate,
        metrics: Arc<Metrics>,
        events: EventSink,
        ready: watch::Sender<bool>,
        settings: TaskSettings,
    ) -> Self {
        StateTask {
            state,
            rx,
            tx,
            sm,
            client,
            gate,
            leading: false,
            term: 0,
            lanes: HashMap::new(),
            patch_slots: Arc::new(Semaphore::new(settings.patch_concurrency.max(1))),
            metrics,
            events,
            ready,
            pods_synced: false,
            nads_synced: false,
            first_seen: HashMap::new(),
            sm_failures: HashMap::new(),
            patch_failures: HashMap::new(),
            gauges_updated: Instant::now(),
            flush_armed: false,
            list_failures: 0,
            sm_list_failures: 0,
            record_list_failures: 0,
            record_write_failures: 0,
            settings,
        }
    }

    /// Runs until every sender of the input channel is gone.
    pub async fn run(mut self) {
        // The tick keeps gauges fresh while no input arrives.
        let mut tick = tokio::time::interval(GAUGE_INTERVAL * 4);
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
                _ = tick.tick() => {}
            }
            if self.gauges_updated.elapsed() >= GAUGE_INTERVAL {
                self.update_gauges();
                self.gauges_updated = Instant::now();
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::PodApplied(view) => {
                self.note_first_seen(&view);
                self.state.apply_pod(view);
            }
            Input::PodDeleted(uid) => {
                self.first_seen.remove(&uid);
                self.patch_failures.remove(&uid);
                self.state.delete_pod(&uid);
            }
            Input::PodsReset(views) => {
                for v in &views {
                    self.note_first_seen(v);
                }
                info!(pods = views.len(), "pods listed");
                self.state.reset_pods(views);
                self.state.pods_synced();
                self.pods_synced = true;
                self.publish_ready();
            }
            Input::NadApplied(network, config) => self.state.apply_nad(network, config.as_deref()),
            Input::NadDeleted(network) => self.state.delete_nad(&network),
            Input::NadsReset(nads) => {
                info!(nads = nads.len(), "network attachment definitions listed");
                self.state.reset_nads(nads.iter().map(|(n, c)| (n.clone(), c.as_deref())));
                self.state.nads_synced();
                self.nads_synced = true;
                self.publish_ready();
            }
            Input::Leading(leading) => self.set_leading(leading),
            Input::FreshPods { term, result } => self.fresh_pods(term, result),
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
            Input::RecordsListed { term, result } => self.records_listed(term, result),
            Input::RecordsWritten { term, write, ok } => self.records_written(term, write, ok),
            Input::RetryRecordWrites => self.state.retry_records(),
            Input::FlushRecords => {
                self.flush_armed = false;
                self.state.flush_records();
            }
            Input::RetryRecords(term) => {
                if term == self.term && self.leading {
                    self.spawn_record_list(0);
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
            self.lanes.clear();
            info!(term = self.term, "leading: reading the subnet manager, then reconciling every pod");
            self.state.begin_leading();
            // Records first: a pod that owns GUIDs by record must be kept even if its annotation is gone,
            // which is known only once the records are read.
            self.spawn_record_list(0);
            let (tx, term, grace) = (self.tx.clone(), self.term, self.settings.drift_grace);
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = tx.send(Input::DriftGraceOver(term)).await;
            });
        } else {
            warn!("no longer leading: stopping all writes");
        }
    }

    // === dispatch ===

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
        for write in plan.records {
            self.spawn_record_write(write);
        }
        if plan.list_sm {
            self.spawn_list();
        }
        for request in plan.sm {
            self.submit_sm(request);
        }
        for patch in plan.patches {
            self.spawn_patch(patch);
        }
        self.flush_lanes();
    }

    fn submit_sm(&mut self, request: SmRequest) {
        self.lanes.entry((request.op, request.pkey)).or_default().queued.extend(request.guids);
    }

    /// Sends what each idle lane has gathered as one request. Runs once per round of inputs, after the
    /// plan, so that a lane freed by an answer early in the round also carries what the rest of the
    /// round planned: under a burst that is many GUIDs per request, and no added wait.
    fn flush_lanes(&mut self) {
        let ready: Vec<SmRequest> = self
            .lanes
            .iter_mut()
            .filter(|(_, lane)| !lane.busy && !lane.queued.is_empty())
            .map(|((op, pkey), lane)| {
                lane.busy = true;
                SmRequest { op: *op, pkey: *pkey, guids: std::mem::take(&mut lane.queued) }
            })
            .collect();
        for request in ready {
            self.spawn_sm(request);
        }
    }

    fn spawn_sm(&self, request: SmRequest) {
        let (sm, tx, gate, term, limit) =
            (self.sm.clone(), self.tx.clone(), self.gate.clone(), self.term, self.settings.sm_timeout);
        let op = op_name(request.op);
        let span = info_span!("sm", operation = op, pkey = %request.pkey, guids = request.guids.len());
        tokio::spawn(
            async move {
                let started = Instant::now();
                // The one place subnet-manager writes are gated on leadership; the call may not outlive
                // the leadership it started under, whatever it waits for inside (a plugin slot, say).
                let result = match gate.time_left() {
                    None => Err(SmFailure { kind: "not_leader", unknown: false }),
                    Some(left) => {
                        let limit = limit.min(left);
                        let call = async {
                            match request.op {
                                SmOp::Add => sm.add_guids(request.pkey, &request.guids).await,
                                SmOp::Remove => sm.remove_guids(request.pkey, &request.guids).await,
                            }
                        };
                        match tokio::time::timeout(limit, call).await {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => {
                                warn!(error = %e, "subnet manager request failed");
                                Err(sm_failure(&e))
                            }
                            Err(_) => {
                                warn!(
                                    timeout_ms = limit.as_millis() as u64,
                                    "subnet manager request cut off: outcome unknown"
                                );
                                Err(SmFailure { kind: "timeout", unknown: true })
                            }
                        }
                    }
                };
                let elapsed = started.elapsed();
                if result.is_ok() {
                    debug!(ms = elapsed.as_millis() as u64, "subnet manager request done");
                }
                let _ = tx.send(Input::SmDone { term, request, result, elapsed }).await;
            }
            .instrument(span),
        );
    }

    fn spawn_list(&self) {
        let (sm, tx, term, limit) = (self.sm.clone(), self.tx.clone(), self.term, self.settings.sm_timeout);
        tokio::spawn(
            async move {
                let started = Instant::now();
                let result = match tokio::time::timeout(limit, sm.list_guids()).await {
                    Ok(Ok(list)) => Ok(list),
                    Ok(Err(e)) => {
                        warn!(error = %e, "listing the subnet manager failed");
                        Err(e.label())
                    }
                    Err(_) => {
                        warn!(timeout_s = limit.as_secs(), "listing the subnet manager timed out");
                        Err("timeout")
                    }
                };
                if let Ok(list) = &result {
                    debug!(guids = list.len(), ms = started.elapsed().as_millis() as u64, "listed");
                }
                let _ = tx.send(Input::SmListed { term, result }).await;
            }
            .instrument(info_span!("sm", operation = "list")),
        );
    }

    fn spawn_patch(&self, patch: PodPatch) {
        let ctx = patcher::PatchContext {
            client: self.client.clone(),
            gate: self.gate.clone(),
            slots: self.patch_slots.clone(),
            timeout: self.settings.api_timeout,
        };
        let (tx, term) = (self.tx.clone(), self.term);
        tokio::spawn(async move {
            let outcome = patcher::patch_pod(&ctx, &patch).await;
            let _ = tx.send(Input::PatchDone { term, patch, outcome }).await;
        });
    }

    /// Lists every pod for this leadership; `attempt` failed attempts so far set the delay.
    fn spawn_fresh_list(&self, attempt: u32) {
        let (client, tx, term, limit) = (self.client.clone(), self.tx.clone(), self.term, self.settings.api_timeout);
        let namespace = self.settings.watch_namespace.clone();
        let delay = if attempt == 0 { Duration::ZERO } else { retry_delay(attempt, self.settings.max_retry) };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let listing = crate::watch::list_pods(client, namespace.as_deref());
            let result = match tokio::time::timeout(limit, listing).await {
                Ok(Ok(views)) => Ok(views),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("timed out after {}s", limit.as_secs())),
            };
            let _ = tx.send(Input::FreshPods { term, result }).await;
        });
    }

    /// Reads every ownership record for this leadership; `attempt` failed attempts so far set the delay.
    fn spawn_record_list(&self, attempt: u32) {
        let (client, tx, term, limit) = (self.client.clone(), self.tx.clone(), self.term, self.settings.api_timeout);
        let delay = if attempt == 0 { Duration::ZERO } else { retry_delay(attempt, self.settings.max_retry) };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let result = records::list(client, limit).await.map_err(|e| {
                warn!(error = %e, "reading the ownership records failed; retrying");
                e.label()
            });
            let _ = tx.send(Input::RecordsListed { term, result }).await;
        });
    }

    fn spawn_record_write(&self, write: RecordWrite) {
        let (client, tx, gate, term) = (self.client.clone(), self.tx.clone(), self.gate.clone(), self.term);
        let (limit, anchor) = (self.settings.api_timeout, self.state.anchor_block());
        tokio::spawn(async move {
            // Record writes are gated like every other write, and bounded by the leadership's time left.
            let ok = match gate.time_left() {
                None => false,
                Some(left) => match records::write(client, &write, anchor, limit.min(left)).await {
                    Ok(()) => true,
                    Err(e) => {
                        warn!(block = %write.block, error = %e, "writing ownership records failed");
                        false
                    }
                },
            };
            let _ = tx.send(Input::RecordsWritten { term, write, ok }).await;
        });
    }

    fn records_listed(&mut self, term: u64, result: Result<records::Listed, &'static str>) {
        if term != self.term || !self.leading {
            return;
        }
        match result {
            Ok(listed) => {
                let (any, count) = (listed.any_block, listed.records.len());
                info!(records = count, blocks_exist = any, "ownership records read for this leadership");
                self.record_list_failures = 0;
                self.state.records_listed(any, listed.records);
                self.spawn_fresh_list(0);
            }
            Err(_) => {
                self.record_list_failures += 1;
                self.retry_later(Input::RetryRecords(term), self.record_list_failures);
            }
        }
    }

    fn records_written(&mut self, term: u64, write: RecordWrite, ok: bool) {
        let outcome = if ok { "success" } else { "failure" };
        self.metrics.record_writes.get_or_create(&OutcomeLabels { outcome }).inc();
        if term != self.term {
            return;
        }
        self.state.records_written(&write, ok);
        if ok {
            self.record_write_failures = 0;
        } else {
            self.record_write_failures += 1;
            self.retry_later(Input::RetryRecordWrites, self.record_write_failures);
        }
    }

    fn fresh_pods(&mut self, term: u64, result: Result<(Vec<PodView>, Option<String>), String>) {
        if term != self.term || !self.leading {
            return;
        }
        match result {
            Ok((views, list_rv)) => {
                info!(pods = views.len(), "pods read afresh for this leadership");
                self.state.refresh_pods(views, list_rv.as_deref());
                self.state.pods_synced();
                self.list_failures = 0;
            }
            Err(e) => {
                warn!(error = %e, "listing pods failed; retrying");
                self.list_failures += 1;
                self.spawn_fresh_list(self.list_failures);
            }
        }
    }

    /// Re-reads a pod whose patch conflicted, applies what was read, then lets it be planned again.
    fn spawn_refresh(&self, patch: PodPatch) {
        let (client, tx, timeout) = (self.client.clone(), self.tx.clone(), self.settings.api_timeout);
        tokio::spawn(async move {
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

    // === outcomes ===

    fn sm_done(&mut self, term: u64, request: SmRequest, result: Result<(), SmFailure>, elapsed: Duration) {
        let operation = op_name(request.op);
        let outcome = match &result {
            Ok(()) => "success",
            Err(f) if f.unknown => "unknown",
            Err(_) => "failure",
        };
        self.metrics.sm_requests.get_or_create(&SmLabels { operation, outcome }).inc();
        self.metrics.sm_request_seconds.get_or_create(&OperationLabels { operation }).observe(elapsed.as_secs_f64());
        self.metrics.sm_request_guids.get_or_create(&OperationLabels { operation }).observe(request.guids.len() as f64);
        self.state.sm_done(&request, result.clone());
        match result {
            Ok(()) => {
                for g in &request.guids {
                    self.sm_failures.remove(g);
                }
            }
            Err(_) => {
                let attempt = request
                    .guids
                    .iter()
                    .map(|g| {
                        let n = self.sm_failures.entry(*g).or_insert(0);
                        *n += 1;
                        *n
                    })
                    .max()
                    .unwrap_or(1);
                self.retry_later(Input::RetryGuids(request.guids.clone()), attempt);
            }
        }
        if term != self.term {
            return;
        }
        // What the lane gathered meanwhile goes out with the rest of this round (`flush_lanes`).
        if let Some(lane) = self.lanes.get_mut(&(request.op, request.pkey)) {
            lane.busy = false;
        }
    }

    fn sm_listed(&mut self, term: u64, result: Result<Vec<(String, Guid)>, &'static str>) {
        if term != self.term {
            return;
        }
        match result {
            Ok(list) => {
                self.metrics.sm_requests.get_or_create(&SmLabels { operation: "list", outcome: "success" }).inc();
                self.sm_list_failures = 0;
                self.state.sm_listed(list.iter().map(|(p, g)| (p.as_str(), *g)));
            }
            Err(_) => {
                self.metrics.sm_requests.get_or_create(&SmLabels { operation: "list", outcome: "failure" }).inc();
                self.state.sm_list_failed();
                // Its own count: the listing backs off to DAEMON_PERIODIC_UPDATE while the subnet manager
                // stays down, instead of retrying every 250 ms.
                self.sm_list_failures += 1;
                self.retry_later(Input::Resync, self.sm_list_failures);
            }
        }
    }

    fn patch_done(&mut self, term: u64, patch: PodPatch, outcome: PatchOutcome) {
        let label = match &outcome {
            PatchOutcome::Applied(_) => "applied",
            PatchOutcome::Conflict => "conflict",
            PatchOutcome::NotFound => "not_found",
            PatchOutcome::Failed(_) => "failed",
        };
        self.metrics.patches.get_or_create(&OutcomeLabels { outcome: label }).inc();
        let uid = patch.pod.uid.clone();
        match &outcome {
            PatchOutcome::Applied(_) => {
                self.patch_failures.remove(&uid);
                self.metrics.pods_configured.inc();
                if let Some(seen) = self.first_seen.remove(&uid) {
                    self.metrics.pod_configure_seconds.observe(seen.elapsed().as_secs_f64());
                }
                let guids: Vec<String> = patch.guids.iter().map(Guid::to_string).collect();
                info!(pod = %patch.pod, guids = %guids.join(","), "pod configured");
                self.events.normal(&patch.pod, "Configured", configured_note(&patch));
            }
            PatchOutcome::Conflict => {
                debug!(pod = %patch.pod, "pod changed meanwhile; re-reading it and planning again");
                self.spawn_refresh(patch.clone());
            }
            PatchOutcome::NotFound => debug!(pod = %patch.pod, "pod gone before it was configured"),
            PatchOutcome::Failed(e) => {
                warn!(pod = %patch.pod, error = %e, "patching the pod failed");
                let n = self.patch_failures.entry(uid.clone()).or_insert(0);
                *n += 1;
                let attempt = *n;
                self.retry_later(Input::RetryPod(uid.clone()), attempt);
            }
        }
        if term != self.term && !matches!(outcome, PatchOutcome::Applied(_)) {
            return;
        }
        self.state.patch_done(&uid, outcome);
    }

    /// Once record changes wait for their block's next write, they are written a moment later anyway,
    /// so stored states catch up in a quiet cluster too.
    fn arm_record_flush(&mut self) {
        if self.flush_armed || !self.state.records_waiting() {
            return;
        }
        self.flush_armed = true;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RECORD_FLUSH_DELAY).await;
            let _ = tx.send(Input::FlushRecords).await;
        });
    }

    /// Sends `input` back after an exponential backoff capped at `DAEMON_PERIODIC_UPDATE`.
    fn retry_later(&self, input: Input, attempt: u32) {
        let delay = retry_delay(attempt, self.settings.max_retry);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(input).await;
        });
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

/// What decisions need of a subnet-manager error; its text stays in the controller's log.
fn sm_failure(e: &SmError) -> SmFailure {
    SmFailure { kind: e.label(), unknown: e.outcome_unknown() }
}

fn op_name(op: SmOp) -> &'static str {
    match op {
        SmOp::Add => "add",
        SmOp::Remove => "remove",
    }
}

/// 250 ms, 500 ms, 1 s, … up to `cap`.
pub fn retry_delay(attempt: u32, cap: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    (FIRST_RETRY * factor).min(cap)
}

fn configured_note(patch: &PodPatch) -> String {
    let networks = NetworksAnnotation::parse(&patch.annotation, &patch.pod.namespace)
        .map(|a| {
            a.selections()
                .iter()
                .filter(|s| {
                    s.guid.as_ref().and_then(|(t, _)| Guid::parse(t).ok()).is_some_and(|g| patch.guids.contains(&g))
                })
                .map(|s| {
                    let guid = s.guid.as_ref().map(|(t, _)| t.as_str()).unwrap_or_default();
                    let pkey = s.pkey.as_deref().filter(|p| !p.is_empty()).unwrap_or("none");
                    format!("{} {} GUID {guid} pkey {pkey}", s.network, s.interface)
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    format!("InfiniBand configured: {networks}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let cap = Duration::from_secs(5);
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n, cap).as_millis() as u64).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(retry_delay(u32::MAX, cap), cap);
    }
}
