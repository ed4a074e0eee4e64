//! The in-process control handle tests hold: read the fabric and the request log, inject
//! faults, flip switches, seed state, and wait for conditions without sleeping blindly.
//!
//! Everything sits behind one `std::sync::Mutex` that is only ever held for a synchronous
//! step, never across an `.await`; waiters are woken through a `Notify` on every change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::apply::{ApplyError, ApplyModel, ApplyState};
use crate::auth::{Credentials, TokenInfo};
use crate::config::{LastUpdatedFormat, UfmConfig, UnknownPkeyGet};
use crate::faults::{FaultId, FaultRule, Faults};
use crate::journal::{Journal, RequestRecord, Sequence};
use crate::routes::Endpoint;
use crate::service::{ServiceError, ServiceModel, ServiceState};
use crate::state::{Fabric, Member, Partition};
use crate::wire::Guid;

/// The mutable part: fabric, log, faults, logins and switches.
pub(crate) struct Inner {
    pub fabric: Fabric,
    pub journal: Journal,
    pub faults: Faults,
    pub credentials: Credentials,
    pub unknown_pkey_get: UnknownPkeyGet,
    /// Added to every request before fault rules apply, so it composes with them.
    pub latency: Duration,
    /// When the partition configuration last changed through the API; `None` until then.
    pub last_updated: Option<jiff::Timestamp>,
    /// Service time and slots.
    pub service: ServiceState,
    /// Changes accepted but not applied yet, and when they will be.
    pub apply: ApplyState,
    /// UFM's model with every accepted change in it, while some are not applied yet: writes are
    /// checked against it, so they are refused or accepted as UFM would. `None` when nothing waits
    /// (it is then the same as `fabric`).
    pub accepted: Option<Fabric>,
}

impl Inner {
    /// The visible fabric and, while changes wait, the accepted model: what the control handle
    /// changes must change in both.
    fn fabrics_mut(&mut self) -> impl Iterator<Item = &mut Fabric> {
        std::iter::once(&mut self.fabric).chain(self.accepted.as_mut())
    }
}

/// What the server task and every handle share.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
    release: watch::Sender<u64>,
    hung: AtomicUsize,
    /// Requests waiting for a service slot, and requests holding one.
    queued: AtomicUsize,
    serving: AtomicUsize,
    /// The number of changes waiting to be applied, kept next to the queue for lock-free reads.
    pending: AtomicUsize,
    pub sequence: Sequence,
    pub shutdown: CancellationToken,
    pub version: String,
    pub last_updated_format: LastUpdatedFormat,
    pub max_body_bytes: usize,
}

impl Shared {
    pub fn new(config: &UfmConfig, shutdown: CancellationToken) -> Self {
        let mut fabric = Fabric::new(config.management_membership);
        fabric.set_reject_unseen(config.reject_unseen_guids);
        let inner = Inner {
            fabric,
            journal: Journal::default(),
            faults: Faults::default(),
            credentials: Credentials::new(config.username.clone(), config.password.clone(), &config.tokens),
            unknown_pkey_get: config.unknown_pkey_get,
            latency: Duration::ZERO,
            last_updated: None,
            service: ServiceState::new(config.service),
            apply: ApplyState::new(config.apply),
            accepted: None,
        };
        Shared {
            inner: Mutex::new(inner),
            changed: Notify::new(),
            release: watch::Sender::new(0),
            hung: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            serving: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            sequence: Sequence::new(config.sequence.clone()),
            shutdown,
            version: config.version.clone(),
            last_updated_format: config.last_updated_format,
            max_body_bytes: config.max_body_bytes,
        }
    }

    /// A panic elsewhere while holding the lock must not take the emulator down with it: the
    /// data is plain values, still consistent at every unlock point.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one synchronous step on the state and wakes every waiter afterwards.
    pub fn update<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let result = {
            let mut inner = self.lock();
            let result = f(&mut inner);
            self.pending.store(inner.apply.pending.len(), Ordering::SeqCst);
            result
        };
        self.changed.notify_waiters();
        result
    }

    pub fn read<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        f(&self.lock())
    }

    /// How many changes wait, read without the caller holding the lock already.
    fn read_pending(&self) -> usize {
        // `wait_until` runs its condition under the lock: read the count from an atomic copy.
        self.pending.load(Ordering::SeqCst)
    }

    /// Holds the caller until the hang is released, `max` passes or the emulator stops.
    /// Returns false if it ended because of shutdown.
    pub async fn hang(&self, max: Option<Duration>) -> bool {
        let mut release = self.release.subscribe();
        let _counted = Gauge::enter(self, &self.hung);
        let deadline = async {
            match max {
                Some(max) => tokio::time::sleep(max).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = release.changed() => true,
            () = deadline => true,
            () = self.shutdown.cancelled() => false,
        }
    }
}

/// Counts a request in one of the gauges (hung, queued for a slot, being served) for as long as
/// it lives, and keeps the count right even when a client disconnects and the request future is
/// dropped mid-wait.
pub(crate) struct Gauge<'a> {
    shared: &'a Shared,
    counter: &'a AtomicUsize,
}

impl<'a> Gauge<'a> {
    fn enter(shared: &'a Shared, counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        shared.changed.notify_waiters();
        Gauge { shared, counter }
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
        self.shared.changed.notify_waiters();
    }
}

impl Shared {
    pub fn queued(&self) -> Gauge<'_> {
        Gauge::enter(self, &self.queued)
    }

    pub fn serving(&self) -> Gauge<'_> {
        Gauge::enter(self, &self.serving)
    }
}

/// A cheap, cloneable view of one running emulator for tests.
#[derive(Clone)]
pub struct UfmHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for UfmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UfmHandle").finish_non_exhaustive()
    }
}

impl UfmHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        UfmHandle { shared }
    }

    // ---- state inspection ----

    /// Every partition with its members and their attributes.
    pub fn partitions(&self) -> BTreeMap<u16, Partition> {
        self.shared.read(|i| i.fabric.partitions().clone())
    }

    pub fn partition(&self, pkey: u16) -> Option<Partition> {
        self.shared.read(|i| i.fabric.get(pkey).cloned())
    }

    /// Members of one partition; empty if it does not exist.
    pub fn members(&self, pkey: u16) -> BTreeMap<Guid, Member> {
        self.partition(pkey).map(|p| p.members).unwrap_or_default()
    }

    /// For every GUID, the partitions it belongs to (ascending).
    pub fn guid_pkeys(&self) -> BTreeMap<Guid, Vec<u16>> {
        self.shared.read(|i| {
            let mut map: BTreeMap<Guid, Vec<u16>> = BTreeMap::new();
            for (pkey, partition) in i.fabric.partitions() {
                for guid in partition.members.keys() {
                    map.entry(*guid).or_default().push(*pkey);
                }
            }
            map
        })
    }

    /// Read anything of the fabric in one consistent step.
    pub fn with_fabric<R>(&self, f: impl FnOnce(&Fabric) -> R) -> R {
        self.shared.read(|i| f(&i.fabric))
    }

    /// When the partition configuration last changed through the API.
    pub fn last_updated(&self) -> Option<jiff::Timestamp> {
        self.shared.read(|i| i.last_updated)
    }

    // ---- request log and counters ----

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.read(|i| i.journal.records().to_vec())
    }

    /// Requests to one endpoint, in arrival order.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RequestRecord> {
        self.shared.read(|i| i.journal.records().iter().filter(|r| r.endpoint == endpoint).cloned().collect())
    }

    pub fn count(&self, endpoint: Endpoint) -> u64 {
        self.shared.read(|i| i.journal.count(endpoint))
    }

    pub fn counts(&self) -> BTreeMap<Endpoint, u64> {
        self.shared.read(|i| i.journal.counts().clone())
    }

    /// Forgets the log and counters (not the fabric).
    pub fn clear_requests(&self) {
        self.shared.update(|i| i.journal.clear());
    }

    // ---- faults ----

    pub fn inject(&self, rule: FaultRule) -> FaultId {
        self.shared.update(|i| i.faults.inject(rule))
    }

    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.shared.update(|i| i.faults.remove(id))
    }

    pub fn clear_faults(&self) {
        self.shared.update(|i| i.faults.clear());
    }

    /// Rules still active, with what is left of their counts.
    pub fn faults(&self) -> Vec<(FaultId, FaultRule)> {
        self.shared.read(|i| i.faults.active())
    }

    /// Delays every request by `latency` (zero turns it off). Unlike a delay rule it does not
    /// stop other rules from matching.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.update(|i| i.latency = latency);
    }

    /// Serves requests as `model` says from now on; requests already waiting for a slot keep
    /// the slots they wait on. The generator restarts from the model's seed.
    pub fn set_service(&self, model: ServiceModel) -> Result<(), ServiceError> {
        model.validate()?;
        self.shared.update(|i| i.service = ServiceState::new(model));
        Ok(())
    }

    /// The service model in force.
    pub fn service(&self) -> ServiceModel {
        self.shared.read(|i| i.service.model())
    }

    /// Requests waiting for a service slot right now.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::SeqCst)
    }

    /// Requests holding a service slot right now.
    pub fn in_service(&self) -> usize {
        self.shared.serving.load(Ordering::SeqCst)
    }

    /// Waits until at least `queued` requests wait for a slot and `serving` hold one.
    pub async fn wait_service(&self, queued: usize, serving: usize, timeout: Duration) -> bool {
        let shared = &self.shared;
        self.wait_until(timeout, |_, _| {
            shared.queued.load(Ordering::SeqCst) >= queued && shared.serving.load(Ordering::SeqCst) >= serving
        })
        .await
    }

    /// How many requests are being held by a hang right now.
    pub fn hung(&self) -> usize {
        self.shared.hung.load(Ordering::SeqCst)
    }

    /// Lets every currently hung request go on.
    pub fn release_hung(&self) {
        self.shared.release.send_modify(|epoch| *epoch += 1);
    }

    // ---- switches ----

    /// When on, adds and sets naming a GUID not declared with [`UfmHandle::mark_seen`] fail
    /// whole with 404.
    pub fn set_reject_unseen_guids(&self, on: bool) {
        self.shared.update(|i| i.fabrics_mut().for_each(|f| f.set_reject_unseen(on)));
    }

    /// Declares GUIDs the fabric has discovered.
    pub fn mark_seen(&self, guids: impl IntoIterator<Item = Guid>) {
        let guids: Vec<Guid> = guids.into_iter().collect();
        self.shared.update(|i| i.fabrics_mut().for_each(|f| f.mark_seen(guids.iter().copied())));
    }

    pub fn set_unknown_pkey_get(&self, answer: UnknownPkeyGet) {
        self.shared.update(|i| i.unknown_pkey_get = answer);
    }

    pub fn set_password(&self, password: impl Into<String>) {
        let password = password.into();
        self.shared.update(|i| i.credentials.set_password(password));
    }

    pub fn add_token(&self, token: impl Into<String>) {
        let token = token.into();
        self.shared.update(|i| {
            i.credentials.add_token(token);
        });
    }

    pub fn revoke_token(&self, token: &str) -> bool {
        self.shared.update(|i| i.credentials.revoke(token))
    }

    pub fn tokens(&self) -> Vec<TokenInfo> {
        self.shared.read(|i| i.credentials.tokens())
    }

    // ---- seeding ----

    /// Puts a partition in place exactly as given (any PKey, the management one included).
    pub fn seed_partition(&self, pkey: u16, partition: Partition) {
        self.shared.update(|i| i.fabrics_mut().for_each(|f| f.seed(pkey, partition.clone())));
    }

    /// Adds members to a partition, creating it with UFM's defaults if needed.
    pub fn seed_members(&self, pkey: u16, members: impl IntoIterator<Item = (Guid, Member)>) {
        let members: Vec<(Guid, Member)> = members.into_iter().collect();
        self.shared.update(|i| {
            for fabric in i.fabrics_mut() {
                let mut partition = fabric.get(pkey).cloned().unwrap_or_else(|| Partition::new(pkey));
                partition.members.extend(members.iter().copied());
                fabric.seed(pkey, partition);
            }
        });
    }

    pub fn remove_partition(&self, pkey: u16) -> Option<Partition> {
        self.shared.update(|i| {
            if let Some(accepted) = i.accepted.as_mut() {
                accepted.unseed(pkey);
            }
            i.fabric.unseed(pkey)
        })
    }

    /// Back to a fresh fabric: only the management partition, no discovered GUIDs, no change
    /// waiting to be applied.
    pub fn clear_state(&self) {
        self.shared.update(|i| {
            i.fabric.reset();
            i.apply.pending.clear();
            i.accepted = None;
        });
    }

    // ---- asynchronous apply ----

    /// Applies partition changes as `model` says from now on; changes already waiting keep their
    /// times. The generator restarts from the model's seed.
    pub fn set_apply(&self, model: ApplyModel) -> Result<(), ApplyError> {
        model.validate()?;
        self.shared.update(|i| i.apply.set_model(model));
        Ok(())
    }

    pub fn apply_model(&self) -> ApplyModel {
        self.shared.read(|i| i.apply.model())
    }

    /// Changes accepted (answered) but not applied to the fabric yet.
    pub fn pending_changes(&self) -> usize {
        self.shared.read(|i| i.apply.pending.len())
    }

    /// Applies every waiting change now, in order, as if its time had come.
    pub fn apply_pending_now(&self) {
        let shared = &self.shared;
        let settings =
            crate::api::Settings { version: &shared.version, last_updated_format: shared.last_updated_format };
        shared.update(|i| {
            if let Some(last) = i.apply.pending.back().map(|c| c.due) {
                crate::api::apply_due(i, last, &settings);
            }
        });
    }

    /// Waits until every accepted change is applied; returns whether that happened within `timeout`.
    pub async fn wait_applied(&self, timeout: Duration) -> bool {
        let shared = &self.shared;
        self.wait_until(timeout, |_, _| shared.read_pending() == 0).await
    }

    // ---- waiting ----

    /// Waits until `condition` holds for the fabric and the log, or `timeout` passes; returns
    /// whether it held. Re-checked on every change, so no polling interval to tune.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&Fabric, &[RequestRecord]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Registered before checking, so a change between check and wait is not missed.
            notified.as_mut().enable();
            if self.shared.read(|i| condition(&i.fabric, i.journal.records())) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.shared.read(|i| condition(&i.fabric, i.journal.records()));
            }
        }
    }

    /// Waits until at least `n` requests hung at once.
    pub async fn wait_hung(&self, n: usize, timeout: Duration) -> bool {
        let hung = &self.shared.hung;
        self.wait_until(timeout, |_, _| hung.load(Ordering::SeqCst) >= n).await
    }

    /// Waits until `endpoint` has been answered at least `n` times.
    pub async fn wait_for_count(&self, endpoint: Endpoint, n: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |_, records| records.iter().filter(|r| r.endpoint == endpoint).count() as u64 >= n)
            .await
    }
}

/// Applies accepted changes when they are due, until the emulator shuts down. Wakes at the next due
/// time, or when anything changed (a new change may be due earlier than the one it slept for).
pub(crate) async fn apply_changes(shared: Arc<Shared>) {
    loop {
        let notified = shared.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = tokio::time::Instant::now();
        let next = shared.read(|i| i.apply.next_due());
        match next {
            Some(due) if due <= now.into_std() => {
                let settings =
                    crate::api::Settings { version: &shared.version, last_updated_format: shared.last_updated_format };
                shared.update(|i| crate::api::apply_due(i, due, &settings));
            }
            Some(due) => tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                () = &mut notified => {}
                () = shared.shutdown.cancelled() => return,
            },
            None => tokio::select! {
                () = &mut notified => {}
                () = shared.shutdown.cancelled() => return,
            },
        }
    }
}
