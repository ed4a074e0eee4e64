//! The in-process control handle: seed and mutate objects, watch the change stream, read the
//! request log and inject faults, without going through HTTP.
//!
//! Writes made here go through the same store paths as HTTP writes, so they get resourceVersions
//! and emit watch events exactly like requests from a real client would. Only the `status`
//! restrictions are lifted (the handle plays the kubelet and other controllers).

use crate::config::EmulatorConfig;
use crate::faults::{FaultRule, Faults};
use crate::request_log::{RequestLog, RequestRecord};
use crate::resource::Resource;
use crate::selector::Filter;
use crate::status::ApiError;
use crate::store::{Change, DeleteOptions, Deleted, GracefulFinish, PodDeletion, Store};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// State shared by the HTTP server and the control handle.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    /// Bumped to end every open watch stream (handle `drop_watches`, shutdown).
    pub(crate) stop_watches: watch::Sender<u64>,
    pub(crate) active_watches: Arc<AtomicUsize>,
    pub(crate) config: EmulatorConfig,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Shared {
    pub(crate) fn new(config: EmulatorConfig, runtime: tokio::runtime::Handle) -> Shared {
        Shared {
            store: Store::new(crate::store::StoreConfig {
                history_capacity: config.history_capacity,
                watch_queue_capacity: config.watch_queue_capacity,
                list_snapshot_capacity: config.list_snapshot_capacity,
                pod_deletion: config.pod_deletion,
            }),
            faults: Faults::new(),
            log: RequestLog::new(config.request_log_capacity, config.sequence.clone()),
            stop_watches: watch::channel(0).0,
            active_watches: Arc::new(AtomicUsize::new(0)),
            config,
            runtime,
        }
    }

    /// Starts the stand-in kubelet's timer for a pod that just entered graceful deletion.
    pub(crate) fn after_delete(self: &Arc<Self>, namespace: &str, name: &str, deleted: &Deleted) {
        let Deleted::Terminating { grace: Some((grace, uid)), .. } = deleted else {
            return;
        };
        let grace = Duration::from_secs(u64::try_from(*grace).unwrap_or(0));
        let delay = match self.store.pod_deletion() {
            PodDeletion::Graceful { finish: GracefulFinish::AfterGracePeriod } => grace,
            PodDeletion::Graceful { finish: GracefulFinish::After(delay) } => delay.min(grace),
            _ => return,
        };
        // A Weak reference so a pending timer never keeps a shut-down emulator alive.
        let shared: Weak<Shared> = Arc::downgrade(self);
        let (namespace, name, uid) = (namespace.to_string(), name.to_string(), uid.clone());
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(shared) = shared.upgrade() {
                // The pod may be gone or re-created meanwhile; the uid check makes that a no-op.
                let _ = shared.store.finish_graceful(&namespace, &name, Some(&uid));
            }
        });
    }
}

/// An in-process stream of committed changes to one resource type.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Change>>,
}

/// Why a subscription yielded no change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The subscriber fell more than `watch_queue_capacity` changes behind and missed `0` of
    /// them; re-read state with `EmulatorHandle::list` and carry on.
    #[error("subscriber lagged and missed {0} changes")]
    Lagged(u64),
    /// The emulator is gone.
    #[error("emulator shut down")]
    Closed,
}

impl Subscription {
    /// The next change, in resourceVersion order.
    pub async fn recv(&mut self) -> Result<Arc<Change>, SubscriptionError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => SubscriptionError::Lagged(n),
            broadcast::error::RecvError::Closed => SubscriptionError::Closed,
        })
    }

    /// The next change if one is already queued.
    pub fn try_recv(&mut self) -> Result<Option<Arc<Change>>, SubscriptionError> {
        match self.rx.try_recv() {
            Ok(change) => Ok(Some(change)),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Err(SubscriptionError::Lagged(n)),
            Err(broadcast::error::TryRecvError::Closed) => Err(SubscriptionError::Closed),
        }
    }
}

/// What DELETE through the handle did.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// The object is gone; its final state, stamped with the deletion RV.
    Deleted(Arc<Value>),
    /// The object stays, terminating (finalizers or a pod grace period).
    Terminating(Arc<Value>),
}

/// A cheap, cloneable handle on a running emulator's state.
#[derive(Clone)]
pub struct EmulatorHandle {
    pub(crate) shared: Arc<Shared>,
}

/// The namespace `create` uses: `metadata.namespace` (default `default`), or none for a
/// cluster-scoped type.
fn namespace_of(resource: Resource, obj: &Value) -> String {
    if !resource.namespaced() {
        return String::new();
    }
    crate::meta::str_field(obj, "namespace").filter(|ns| !ns.is_empty()).unwrap_or("default").to_string()
}

impl EmulatorHandle {
    // === objects ===

    /// Creates an object in the namespace named by its `metadata.namespace` (default
    /// `default`; none for a cluster-scoped type, whose namespace argument elsewhere is `""`), with POST semantics except that a pod's `status` is kept as given.
    pub fn create(&self, resource: Resource, object: Value) -> Result<Arc<Value>, ApiError> {
        let namespace = namespace_of(resource, &object);
        self.shared.store.create(resource, &namespace, object, true)
    }

    /// Creates many objects; returns the resourceVersion after the last one.
    pub fn seed(&self, resource: Resource, objects: impl IntoIterator<Item = Value>) -> Result<u64, ApiError> {
        for object in objects {
            self.create(resource, object)?;
        }
        Ok(self.resource_version())
    }

    /// The stored object.
    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.shared.store.get(resource, namespace, name)
    }

    /// All objects of a type (in one namespace, or all), in (namespace, name) order, with the
    /// resourceVersion they reflect.
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> (u64, Vec<Arc<Value>>) {
        let filter = Filter { namespace: namespace.map(str::to_string), ..Filter::default() };
        self.shared.store.snapshot(resource, &filter)
    }

    /// Edits a copy of the stored object and commits it unconditionally. Any field may change
    /// (including a pod's `status`), except system metadata (uid, creationTimestamp,
    /// resourceVersion, generation, deletion fields), which the store maintains. Removing the
    /// last finalizer of a terminating object deletes it. A change that leaves the object
    /// unchanged is a no-op.
    pub fn mutate(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Arc<Value>, ApiError> {
        self.shared.store.mutate(resource, namespace, name, edit)
    }

    /// DELETE with default options: honours finalizers and graceful pod deletion (and starts the
    /// configured stand-in kubelet timer).
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> Result<DeleteOutcome, ApiError> {
        self.delete_with_grace(resource, namespace, name, None)
    }

    /// DELETE with an explicit `gracePeriodSeconds` (0 removes a pod at once unless finalizers
    /// remain).
    pub fn delete_with_grace(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        grace_period_seconds: Option<i64>,
    ) -> Result<DeleteOutcome, ApiError> {
        let options = DeleteOptions { grace_period_seconds, ..DeleteOptions::default() };
        let deleted = self.shared.store.delete(resource, namespace, name, &options)?;
        self.shared.after_delete(namespace, name, &deleted);
        Ok(outcome(deleted))
    }

    /// Completes a pod's graceful deletion, as the kubelet does once containers stopped: the pod
    /// is removed, or stays with a zero grace period while finalizers remain.
    pub fn finish_pod_deletion(&self, namespace: &str, name: &str) -> Result<DeleteOutcome, ApiError> {
        self.shared.store.finish_graceful(namespace, name, None).map(outcome)
    }

    /// The latest resourceVersion (global across resources).
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    // === change stream ===

    /// Live changes to `resource` from now on.
    pub fn subscribe(&self, resource: Resource) -> Subscription {
        Subscription { rx: self.shared.store.subscribe(resource) }
    }

    /// The current objects and a subscription starting exactly after them: no change is missed
    /// or seen twice.
    pub fn list_and_subscribe(&self, resource: Resource, namespace: Option<&str>) -> (Vec<Arc<Value>>, Subscription) {
        let filter = Filter { namespace: namespace.map(str::to_string), ..Filter::default() };
        match self.shared.store.watch(resource, &filter, crate::store::WatchFrom::InitialState) {
            Ok(start) => {
                let objects = match start.backlog {
                    crate::store::Backlog::Objects(objects) => objects,
                    crate::store::Backlog::Changes(_) => Vec::new(),
                };
                (objects, Subscription { rx: start.live })
            }
            // Starting from the current state cannot be too old; fall back to a plain pair.
            Err(_) => (self.list(resource, namespace).1, self.subscribe(resource)),
        }
    }

    /// Retained changes to `resource` after resourceVersion `rv`, in order; 410 Expired when
    /// history no longer reaches back that far. This is exactly what a watch from `rv` replays.
    pub fn changes_since(&self, resource: Resource, rv: u64) -> Result<Vec<Arc<Change>>, ApiError> {
        self.shared.store.changes_since(resource, rv)
    }

    // === request log ===

    /// The retained request log, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.snapshot()
    }

    /// How many HTTP requests the server has received since it started, whatever the request log's
    /// capacity (a count of a large run without keeping every request).
    pub fn request_count(&self) -> u64 {
        self.shared.log.count()
    }

    /// Empties the request log (sequence numbers keep increasing).
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    // === faults ===

    /// Adds a fault rule; rules apply in the order added.
    pub fn inject_fault(&self, rule: FaultRule) {
        self.shared.faults.add(rule);
    }

    /// Removes every fault rule (hung requests stay hung until released).
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Total budget left across fault rules.
    pub fn faults_remaining(&self) -> usize {
        self.shared.faults.remaining()
    }

    /// Lets every currently hung request proceed.
    pub fn release_hung(&self) {
        self.shared.faults.release_hung();
    }

    /// Requests currently held by a `Hang` fault.
    pub fn hung_requests(&self) -> usize {
        self.shared.faults.hung()
    }

    /// Makes the next PUT or PATCH (over HTTP) to this object answer 409 Conflict.
    pub fn force_conflict(&self, resource: Resource, namespace: &str, name: &str) {
        self.shared.store.force_conflict(resource, namespace, name);
    }

    // === watches and history ===

    /// Ends every open watch stream cleanly, as an apiserver restart does. Clients resume
    /// from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.shared.stop_watches.send_modify(|g| *g += 1);
    }

    /// Open watch streams.
    pub fn active_watches(&self) -> usize {
        self.shared.active_watches.load(Ordering::SeqCst)
    }

    /// Forgets all change history: a watch resuming from any resourceVersion older than the
    /// current one gets 410 Expired, and outstanding continue tokens expire.
    pub fn compact(&self) {
        self.shared.store.compact();
    }
}

fn outcome(deleted: Deleted) -> DeleteOutcome {
    match deleted {
        Deleted::Gone(obj) => DeleteOutcome::Deleted(obj),
        Deleted::Terminating { object, .. } => DeleteOutcome::Terminating(object),
    }
}
