//! The object store: one global resourceVersion, per-resource tables, history and fan-out.
//!
//! Everything sits behind one `std::sync::Mutex`, held only for in-memory work and never across
//! an `.await`, so writes are serialised and linearisable exactly like etcd's single revision
//! counter. Each write, while still holding the lock, bumps the counter, updates the table,
//! appends the change to that resource's bounded history ring and hands it to the resource's
//! broadcast channel. Registering a watcher happens under the same lock, so a watcher's backlog
//! (initial objects or replayed history) and its live feed meet with no gap and no overlap.
//!
//! ```text
//!  write ──► Inner { rv, tables[resource] { objects: BTreeMap<(ns,name)>, history ring, floor } }
//!                                   │
//!                                   └─► broadcast (bounded ring shared by watchers; a watcher
//!                                       that falls a full ring behind is closed and resumes by RV)
//! ```
//!
//! Per event the store does O(log n) map work plus one O(1) broadcast send, whatever the number
//! of watchers; the watchers match selectors in their own tasks.
//!
//! Paged LIST consistency uses copy-on-read snapshots: the first page of a LIST that needs more
//! than one page collects the matching `Arc`s in key order (the O(n) scan a LIST does anyway, but
//! copying only pointers, never objects) and parks that vector in a small LRU cache under an id
//! that the continue token names. Later pages are O(limit) slices of that immutable vector, so a
//! full paged LIST is O(n) in total and every page reflects the snapshot RV. We chose this over
//! keeping per-key version history because it costs nothing when nobody is paging, its memory is
//! bounded by the cache size, and its consistency argument is trivial: the vector never changes.
//! A token whose snapshot was evicted answers 410 Expired, as the apiserver does for a compacted
//! continue token, and clients restart the LIST.

use crate::event_views;
use crate::meta;

/// Changes of `guidblocks` kept for watches to resume from.
const GUIDBLOCK_HISTORY: usize = 1024;
use crate::patch::{self, PatchKind};
use crate::resource::Resource;
use crate::selector::Filter;
use crate::status::ApiError;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::broadcast;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Updated (including gaining a deletionTimestamp).
    Modified,
    /// Removed from the store.
    Deleted,
}

/// One committed write, as watchers and in-process subscribers see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resource type written.
    pub resource: Resource,
    /// What happened.
    pub kind: ChangeKind,
    /// The resourceVersion this write produced.
    pub resource_version: u64,
    /// The object after the write; for `Deleted`, its final state stamped with the deletion RV.
    pub object: Arc<Value>,
    /// The object before the write (`None` for `Added`), used for selector transitions.
    pub previous: Option<Arc<Value>>,
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The main resource: a pod's `status` is kept from the stored object.
    Main,
    /// The `status` subresource: a pod's `spec` and owner references are kept.
    Status,
    /// The control handle: any field except system metadata.
    Unrestricted,
}

/// `DeleteOptions` fields the emulator honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// How pod DELETE behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodDeletion {
    /// Every pod is removed at once, as if none were scheduled.
    Immediate,
    /// Apiserver semantics: a scheduled pod that has not finished gets `deletionTimestamp` and
    /// `deletionGracePeriodSeconds` and stays until the kubelet confirms. `finish` says who
    /// plays the kubelet. Unscheduled and finished pods are still removed at once.
    Graceful {
        /// When the emulator itself completes the deletion.
        finish: GracefulFinish,
    },
}

/// Who completes a graceful pod deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GracefulFinish {
    /// Only the control handle (`EmulatorHandle::finish_pod_deletion`) or a second DELETE with
    /// `gracePeriodSeconds=0`.
    Manual,
    /// Automatically once the grace period has elapsed.
    AfterGracePeriod,
    /// Automatically after this delay, or the grace period if that is shorter: a fast kubelet.
    After(std::time::Duration),
}

/// The outcome of DELETE.
#[derive(Debug, Clone)]
pub(crate) enum Deleted {
    /// Removed; the final state stamped with the deletion RV.
    Gone(Arc<Value>),
    /// Still present with a deletionTimestamp (finalizers or a grace period).
    Terminating {
        object: Arc<Value>,
        /// Set when a new grace period started: seconds and the pod's uid.
        grace: Option<(i64, String)>,
    },
}

/// Query parameters of a LIST.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub filter: Filter,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// One page of a LIST.
#[derive(Debug, Clone)]
pub(crate) struct ListPage {
    pub resource_version: u64,
    pub items: Vec<Arc<Value>>,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<usize>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchFrom {
    /// Only changes after now (`sendInitialEvents=false`).
    Now,
    /// Synthetic ADDED for every current object, then changes.
    InitialState,
    /// Every retained change after this resourceVersion, then live changes.
    Version(u64),
}

/// What a watcher must send before its live feed.
#[derive(Debug)]
pub(crate) enum Backlog {
    Objects(Vec<Arc<Value>>),
    Changes(Vec<Arc<Change>>),
}

/// A registered watcher: its backlog and its live feed, joined without a gap.
#[derive(Debug)]
pub(crate) struct WatchStart {
    pub backlog: Backlog,
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The store RV at registration: every change up to it is in the backlog or not selected.
    pub resource_version: u64,
}

/// Store sizing.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    pub history_capacity: usize,
    pub watch_queue_capacity: usize,
    pub list_snapshot_capacity: usize,
    pub pod_deletion: PodDeletion,
}

type Key = (String, String);

struct Table {
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Arc<Change>>,
    /// Resuming from any RV at or above `floor` replays without a gap; below it answers 410.
    floor: u64,
    sender: broadcast::Sender<Arc<Change>>,
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    snapshot: u64,
    start: usize,
}

struct Snapshot {
    id: u64,
    /// Selected by a label or field selector: the apiserver then omits `remainingItemCount`.
    filtered: bool,
    resource: Resource,
    resource_version: u64,
    items: Arc<Vec<Arc<Value>>>,
}

struct Inner {
    rv: u64,
    tables: Vec<Table>,
    snapshots: VecDeque<Snapshot>,
    next_snapshot: u64,
    forced_conflicts: HashSet<(Resource, Key)>,
}

/// The emulator's state. Cheap operations only while locked.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    config: StoreConfig,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

fn bad_body(resource: Resource, what: &str) -> ApiError {
    ApiError::BadRequest(format!("the object provided is unrecognized (must be of type {}): {what}", resource.kind()))
}

impl Store {
    pub(crate) fn new(config: StoreConfig) -> Store {
        let tables = Resource::ALL
            .iter()
            .map(|_| Table {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                floor: 0,
                sender: broadcast::channel(config.watch_queue_capacity.max(1)).0,
            })
            .collect();
        Store {
            inner: Mutex::new(Inner {
                rv: 0,
                tables,
                snapshots: VecDeque::new(),
                next_snapshot: 1,
                forced_conflicts: HashSet::new(),
            }),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write: every write mutates
        // the table last, after all fallible steps. So a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn pod_deletion(&self) -> PodDeletion {
        self.config.pod_deletion
    }

    /// The latest resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub(crate) fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.lock().tables[resource.index()].objects.get(&key(namespace, name)).cloned()
    }

    /// Every object matching `filter`, in (namespace, name) order, and the RV they reflect.
    pub(crate) fn snapshot(&self, resource: Resource, filter: &Filter) -> (u64, Vec<Arc<Value>>) {
        let inner = self.lock();
        let items = matching(&inner.tables[resource.index()], filter);
        (inner.rv, items)
    }

    pub(crate) fn force_conflict(&self, resource: Resource, namespace: &str, name: &str) {
        self.lock().forced_conflicts.insert((resource, key(namespace, name)));
    }

    /// Forgets all history: resuming a watch from any RV older than the current one answers 410.
    pub(crate) fn compact(&self) {
        let mut inner = self.lock();
        let rv = inner.rv;
        for table in &mut inner.tables {
            table.history.clear();
            table.floor = rv;
        }
        inner.snapshots.clear();
    }

    pub(crate) fn subscribe(&self, resource: Resource) -> broadcast::Receiver<Arc<Change>> {
        self.lock().tables[resource.index()].sender.subscribe()
    }

    /// Retained changes after `rv`, or 410 when some were already dropped.
    pub(crate) fn changes_since(&self, resource: Resource, rv: u64) -> Result<Vec<Arc<Change>>, ApiError> {
        let inner = self.lock();
        changes_after(&inner.tables[resource.index()], rv)
    }

    /// The RV a BOOKMARK may carry for a watcher whose live queue is `live`: the store RV if the
    /// watcher has consumed every change up to it, otherwise `None` (it has events to send first).
    pub(crate) fn bookmark_version(&self, live: &broadcast::Receiver<Arc<Change>>) -> Option<u64> {
        let inner = self.lock();
        live.is_empty().then_some(inner.rv)
    }

    // === LIST and WATCH ===

    pub(crate) fn list(&self, resource: Resource, query: &ListQuery) -> Result<ListPage, ApiError> {
        let limit = query.limit.filter(|l| *l > 0);
        if let Some(token) = &query.continue_token {
            if query.resource_version.as_deref().is_some_and(|rv| !rv.is_empty()) {
                return Err(ApiError::BadRequest(
                    "specifying resource version is not allowed when using continue".into(),
                ));
            }
            return self.continue_list(resource, token, limit);
        }
        let mut inner = self.lock();
        let current = inner.rv;
        let mut limit = limit;
        match query.resource_version.as_deref().filter(|s| !s.is_empty()) {
            None => {
                if query.resource_version_match.is_some() {
                    return Err(ApiError::BadRequest(
                        "resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                    ));
                }
            }
            // "Any" semantics: served from the watch cache, which ignores limit.
            Some("0") => limit = None,
            Some(rv) => {
                let requested: u64 =
                    rv.parse().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))?;
                if requested > current {
                    return Err(ApiError::Timeout {
                        message: format!("Too large resource version: {requested}, current: {current}"),
                        retry_after_seconds: Some(1),
                    });
                }
                match query.resource_version_match.as_deref() {
                    None | Some("NotOlderThan") | Some("") => {}
                    Some("Exact") if requested == current => {}
                    // History is kept as changes, not as whole states, so an older exact state
                    // cannot be rebuilt: answer as a compacted etcd would.
                    Some("Exact") => return Err(ApiError::too_old(requested, current)),
                    Some(other) => {
                        return Err(ApiError::BadRequest(format!("unsupported resourceVersionMatch {other:?}")));
                    }
                }
            }
        }
        let items = matching(&inner.tables[resource.index()], &query.filter);
        let Some(limit) = limit.filter(|l| *l < items.len()) else {
            return Ok(ListPage { resource_version: current, items, continue_token: None, remaining_item_count: None });
        };
        let items = Arc::new(items);
        let id = inner.next_snapshot;
        inner.next_snapshot += 1;
        inner.snapshots.push_back(Snapshot {
            id,
            filtered: query.filter.has_selectors(),
            resource,
            resource_version: current,
            items: Arc::clone(&items),
        });
        while inner.snapshots.len() > self.config.list_snapshot_capacity.max(1) {
            inner.snapshots.pop_front();
        }
        drop(inner);
        Ok(page(id, current, &items, 0, limit, query.filter.has_selectors()))
    }

    fn continue_list(&self, resource: Resource, token: &str, limit: Option<usize>) -> Result<ListPage, ApiError> {
        let invalid = |why: String| ApiError::BadRequest(format!("continue key is not valid: {why}"));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|e| invalid(e.to_string()))?;
        let token: ContinueToken = serde_json::from_slice(&raw).map_err(|e| invalid(e.to_string()))?;
        if token.v != "meta.k8s.io/v1" {
            return Err(invalid(format!("unknown version {:?}", token.v)));
        }
        let mut inner = self.lock();
        let Some(pos) = inner.snapshots.iter().position(|s| s.id == token.snapshot) else {
            return Err(ApiError::Expired(
                "The provided continue parameter is too old to display a consistent list \
                 result. You can start a new list without the continue parameter."
                    .into(),
            ));
        };
        let Some(snapshot) = inner.snapshots.remove(pos) else {
            return Err(ApiError::Internal("snapshot cache changed under lock".into()));
        };
        if snapshot.resource != resource || snapshot.resource_version != token.rv {
            inner.snapshots.insert(pos, snapshot);
            return Err(invalid("token belongs to a different list".into()));
        }
        let items = Arc::clone(&snapshot.items);
        let filtered = snapshot.filtered;
        let limit = limit.unwrap_or(items.len());
        let done = token.start.saturating_add(limit) >= items.len();
        if !done {
            // Most recently used at the back, so eviction drops abandoned lists first.
            inner.snapshots.push_back(snapshot);
        }
        drop(inner);
        Ok(page(token.snapshot, token.rv, &items, token.start, limit, filtered))
    }

    /// Registers a watcher. A start RV older than retained history is `Err(Expired)`.
    pub(crate) fn watch(&self, resource: Resource, filter: &Filter, from: WatchFrom) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        let table = &inner.tables[resource.index()];
        let backlog = match from {
            WatchFrom::Now => Backlog::Changes(Vec::new()),
            WatchFrom::InitialState => Backlog::Objects(matching(table, filter)),
            WatchFrom::Version(rv) => Backlog::Changes(changes_after(table, rv)?),
        };
        Ok(WatchStart { backlog, live: table.sender.subscribe(), resource_version: inner.rv })
    }

    // === writes ===

    /// POST semantics. `unrestricted` keeps a client-supplied pod status (control handle seeding).
    pub(crate) fn create(
        &self,
        resource: Resource,
        namespace: &str,
        mut obj: Value,
        unrestricted: bool,
    ) -> Result<Arc<Value>, ApiError> {
        check_type(resource, &mut obj)?;
        meta::normalize(&mut obj);
        let meta = meta::meta_mut(&mut obj).ok_or_else(|| bad_body(resource, "not an object"))?;
        // A cluster-scoped object has no namespace; the apiserver drops one sent in the body.
        let namespace = if resource.namespaced() { namespace } else { "" };
        if !resource.namespaced() {
            meta.remove("namespace");
        }
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request"
                        .into(),
                ));
            }
            _ => {}
        }
        if meta.get("resourceVersion").and_then(Value::as_str).is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::Internal("resourceVersion should not be set on objects to be created".into()));
        }
        let explicit = meta.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_string);
        let prefix = meta.get("generateName").and_then(Value::as_str).unwrap_or("").to_string();
        if explicit.is_none() && prefix.is_empty() {
            return Err(ApiError::Invalid {
                resource,
                name: String::new(),
                field: "metadata.name".into(),
                detail: "Required value: name or generateName is required".into(),
            });
        }
        if resource.namespaced() {
            meta.insert("namespace".into(), json!(namespace));
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(meta::now()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        if resource.tracks_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if resource == Resource::Pods && !unrestricted {
            // The apiserver resets a new pod's status; only the kubelet fills it in.
            if let Some(map) = obj.as_object_mut() {
                map.insert("status".into(), json!({ "phase": "Pending" }));
            }
        }

        let mut inner = self.lock();
        let table_index = resource.index();
        let name = match explicit {
            Some(name) => name,
            None => {
                // Retry like the apiserver's name generator would on a rare collision.
                let mut candidate = format!("{prefix}{}", meta::random_suffix());
                for _ in 0..8 {
                    if !inner.tables[table_index].objects.contains_key(&key(namespace, &candidate)) {
                        break;
                    }
                    candidate = format!("{prefix}{}", meta::random_suffix());
                }
                candidate
            }
        };
        if !meta::valid_name(&name) {
            return Err(ApiError::Invalid {
                resource,
                detail: meta::invalid_name_detail(&name),
                name,
                field: "metadata.name".into(),
            });
        }
        let k = key(namespace, &name);
        if inner.tables[table_index].objects.contains_key(&k) {
            return Err(ApiError::AlreadyExists { resource, name });
        }
        if let Some(meta) = meta::meta_mut(&mut obj) {
            meta.insert("name".into(), json!(name));
        }
        Ok(self.commit(&mut inner, resource, k, ChangeKind::Added, obj, None))
    }

    /// PUT semantics.
    pub(crate) fn update(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        new: Value,
        target: Target,
        honour_forced_conflict: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let current = current(&inner, resource, namespace, name)?;
        if honour_forced_conflict {
            take_forced_conflict(&mut inner, resource, namespace, name)?;
        }
        self.commit_update(&mut inner, resource, &current, new, target)
    }

    /// PATCH semantics. The patch is applied to the stored object; a `metadata.resourceVersion`
    /// left in the result is a precondition, as on the apiserver.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        target: Target,
        honour_forced_conflict: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let current = current(&inner, resource, namespace, name)?;
        let mut new = Value::clone(&current);
        patch::apply(kind, &mut new, body).map_err(|e| match e {
            patch::PatchError::UnsupportedMediaType => ApiError::UnsupportedMediaType(e.to_string()),
            patch::PatchError::Undecodable(_) | patch::PatchError::UnsupportedDirective(_) => {
                ApiError::BadRequest(e.to_string())
            }
            patch::PatchError::Apply(_) => ApiError::Unprocessable(e.to_string()),
        })?;
        if honour_forced_conflict {
            take_forced_conflict(&mut inner, resource, namespace, name)?;
        }
        self.commit_update(&mut inner, resource, &current, new, target)
    }

    /// Server-side apply onto the stored object: `merge` edits a copy, which is committed through
    /// the same checks as a PATCH (a `metadata.resourceVersion` left in it is a precondition).
    pub(crate) fn apply(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        target: Target,
        merge: impl FnOnce(&mut Value),
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let current = current(&inner, resource, namespace, name)?;
        let mut new = Value::clone(&current);
        merge(&mut new);
        take_forced_conflict(&mut inner, resource, namespace, name)?;
        self.commit_update(&mut inner, resource, &current, new, target)
    }

    /// Applies `mutate` to a copy of the stored object and commits it unconditionally.
    pub(crate) fn mutate(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        mutate: impl FnOnce(&mut Value),
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let current = current(&inner, resource, namespace, name)?;
        let mut new = Value::clone(&current);
        mutate(&mut new);
        if let Some(meta) = meta::meta_mut(&mut new) {
            meta.remove("resourceVersion");
        }
        self.commit_update(&mut inner, resource, &current, new, Target::Unrestricted)
    }

    /// DELETE semantics, including finalizers and graceful pod deletion.
    pub(crate) fn delete(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let mut inner = self.lock();
        let current = current(&inner, resource, namespace, name)?;
        let uid = meta::str_field(&current, "uid").unwrap_or("").to_string();
        if let Some(want) = &options.precondition_uid
            && *want != uid
        {
            return Err(ApiError::Conflict {
                resource,
                name: name.to_string(),
                detail: format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
            });
        }
        let current_rv = meta::str_field(&current, "resourceVersion").unwrap_or("");
        if let Some(want) = &options.precondition_resource_version
            && want != current_rv
        {
            return Err(ApiError::Conflict {
                resource,
                name: name.to_string(),
                detail: format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, \
                     ResourceVersion in object meta: {current_rv}"
                ),
            });
        }
        let grace = self.grace_period(resource, &current, options);
        let k = key(namespace, name);
        if grace > 0 {
            if meta::is_terminating(&current) && meta::grace_seconds(&current).is_some_and(|g| g <= grace) {
                return Ok(Deleted::Terminating { object: current, grace: None });
            }
            let mut new = Value::clone(&current);
            if let Some(meta) = meta::meta_mut(&mut new) {
                meta.insert("deletionTimestamp".into(), json!(meta::now_plus(grace)));
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            let object = self.commit(&mut inner, resource, k, ChangeKind::Modified, new, Some(current));
            return Ok(Deleted::Terminating { object, grace: Some((grace, uid)) });
        }
        Ok(self.delete_now(&mut inner, resource, k, current))
    }

    /// The kubelet's final word on a terminating pod: grace period over. Removes it unless
    /// finalizers remain. `uid` guards against finishing a re-created pod of the same name.
    pub(crate) fn finish_graceful(&self, namespace: &str, name: &str, uid: Option<&str>) -> Result<Deleted, ApiError> {
        let resource = Resource::Pods;
        let mut inner = self.lock();
        let current = current(&inner, resource, namespace, name)?;
        if uid.is_some_and(|u| Some(u) != meta::str_field(&current, "uid")) {
            return Err(ApiError::NotFound { resource, name: name.to_string() });
        }
        if !meta::is_terminating(&current) {
            return Err(ApiError::BadRequest(format!("pod {namespace}/{name} is not being deleted")));
        }
        Ok(self.delete_now(&mut inner, resource, key(namespace, name), current))
    }

    fn grace_period(&self, resource: Resource, pod: &Value, options: &DeleteOptions) -> i64 {
        if resource != Resource::Pods {
            return 0;
        }
        if self.config.pod_deletion == PodDeletion::Immediate {
            return 0;
        }
        let scheduled = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let finished = matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
        // Like the pod strategy: nothing runs an unscheduled or finished pod, so no grace.
        if !scheduled || finished {
            return 0;
        }
        options
            .grace_period_seconds
            .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30)
            .max(0)
    }

    /// Removes `current` now, or parks it behind its finalizers with a zero grace period.
    fn delete_now(&self, inner: &mut Inner, resource: Resource, k: Key, current: Arc<Value>) -> Deleted {
        if !meta::finalizers(&current).is_empty() {
            if meta::is_terminating(&current) && meta::grace_seconds(&current) == Some(0) {
                return Deleted::Terminating { object: current, grace: None };
            }
            let mut new = Value::clone(&current);
            let keep_timestamp = meta::is_terminating(&current);
            if let Some(meta) = meta::meta_mut(&mut new) {
                if !keep_timestamp {
                    meta.insert("deletionTimestamp".into(), json!(meta::now()));
                }
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            let object = self.commit(inner, resource, k, ChangeKind::Modified, new, Some(current));
            return Deleted::Terminating { object, grace: None };
        }
        let new = Value::clone(&current);
        Deleted::Gone(self.commit(inner, resource, k, ChangeKind::Deleted, new, Some(current)))
    }

    /// The shared tail of PUT, PATCH and handle mutations.
    fn commit_update(
        &self,
        inner: &mut Inner,
        resource: Resource,
        current: &Arc<Value>,
        mut new: Value,
        target: Target,
    ) -> Result<Arc<Value>, ApiError> {
        let name = meta::str_field(current, "name").unwrap_or("").to_string();
        let namespace = meta::str_field(current, "namespace").unwrap_or("").to_string();
        check_type(resource, &mut new)?;
        let current_rv = meta::str_field(current, "resourceVersion").unwrap_or("").to_string();
        let meta = meta::meta_mut(&mut new).ok_or_else(|| bad_body(resource, "not an object"))?;
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != name => {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {
                meta.insert("name".into(), json!(name));
            }
        }
        if !resource.namespaced() {
            meta.remove("namespace");
        }
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request"
                        .into(),
                ));
            }
            _ if !resource.namespaced() => {}
            _ => {
                meta.insert("namespace".into(), json!(namespace));
            }
        }
        if let Some(requested) = meta.get("resourceVersion").and_then(Value::as_str)
            && !requested.is_empty()
            && requested != current_rv
        {
            return Err(ApiError::stale(resource, &name));
        }
        let old_uid = meta::str_field(current, "uid").unwrap_or("");
        match meta.get("uid").and_then(Value::as_str) {
            Some(uid) if !uid.is_empty() && uid != old_uid => {
                return Err(ApiError::Invalid {
                    resource,
                    name,
                    field: "metadata.uid".into(),
                    detail: format!("Invalid value: {uid:?}: field is immutable"),
                });
            }
            _ => {}
        }
        // Like the apiserver's BeforeUpdate, system fields are silently restored rather than
        // rejected: creationTimestamp changes are ignored, and a client can neither set nor
        // clear a deletion.
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            meta::copy_from(&mut new, current, field);
        }
        if meta::is_terminating(current) {
            let old: HashSet<&str> = meta::finalizers(current).into_iter().collect();
            let added: Vec<&str> = meta::finalizers(&new).into_iter().filter(|f| !old.contains(f)).collect();
            if !added.is_empty() {
                return Err(ApiError::Invalid {
                    resource,
                    name,
                    field: "metadata.finalizers".into(),
                    detail: format!(
                        "Forbidden: no new finalizers can be added if the object is being \
                         deleted, found new finalizers {added:?}"
                    ),
                });
            }
        }
        if resource.has_status_subresource() {
            match target {
                Target::Main => copy_top(&mut new, current, "status"),
                Target::Status => {
                    copy_top(&mut new, current, "spec");
                    meta::copy_from(&mut new, current, "ownerReferences");
                }
                Target::Unrestricted => {}
            }
        }
        if resource.tracks_generation() && spec_changed(resource, current, &new) {
            let generation = meta::field(current, "generation").and_then(Value::as_i64).unwrap_or(0);
            if let Some(meta) = meta::meta_mut(&mut new) {
                meta.insert("generation".into(), json!(generation + 1));
            }
        }
        meta::normalize(&mut new);
        if new == **current {
            // No-op writes keep the RV and emit nothing; controllers that patch in a loop rely
            // on this to settle.
            return Ok(Arc::clone(current));
        }
        let k = key(&namespace, &name);
        let finalized = meta::is_terminating(&new)
            && meta::finalizers(&new).is_empty()
            && meta::grace_seconds(&new).unwrap_or(0) == 0;
        let kind = if finalized { ChangeKind::Deleted } else { ChangeKind::Modified };
        Ok(self.commit(inner, resource, k, kind, new, Some(Arc::clone(current))))
    }

    /// Stamps the next RV on `obj`, applies it to the table, records and broadcasts the change.
    fn commit(
        &self,
        inner: &mut Inner,
        resource: Resource,
        k: Key,
        kind: ChangeKind,
        mut obj: Value,
        previous: Option<Arc<Value>>,
    ) -> Arc<Value> {
        inner.rv += 1;
        let rv = inner.rv;
        if let Some(meta) = meta::meta_mut(&mut obj) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let object = Arc::new(obj);
        // An Event is one object with two views: the other view is written in the same step, under
        // the same resourceVersion, so a watcher of either sees every change exactly once.
        if let Some(other) = event_views::mirror(resource) {
            let mirrored = Arc::new(event_views::convert(resource, other, &object));
            let previous = inner.tables[other.index()].objects.get(&k).cloned();
            self.record(inner, other, k.clone(), kind, rv, mirrored, previous);
        }
        self.record(inner, resource, k, kind, rv, Arc::clone(&object), previous);
        object
    }

    /// Applies one committed change to `resource`'s table, history and watchers.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        inner: &mut Inner,
        resource: Resource,
        k: Key,
        kind: ChangeKind,
        rv: u64,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        // Ownership records are large objects (up to 64 entries), rewritten by every allocation and
        // watched by nobody at scale: like a compacted etcd, their history is short, and a watch
        // resuming from before it answers 410. A full history of them would hold gigabytes.
        let capacity = match resource {
            Resource::GuidBlocks => self.config.history_capacity.min(GUIDBLOCK_HISTORY),
            _ => self.config.history_capacity,
        };
        let table = &mut inner.tables[resource.index()];
        match kind {
            ChangeKind::Deleted => {
                table.objects.remove(&k);
            }
            ChangeKind::Added | ChangeKind::Modified => {
                table.objects.insert(k, Arc::clone(&object));
            }
        }
        let change = Arc::new(Change { resource, kind, resource_version: rv, object, previous });
        if capacity == 0 {
            table.floor = rv;
        } else {
            while table.history.len() >= capacity {
                if let Some(evicted) = table.history.pop_front() {
                    table.floor = evicted.resource_version;
                }
            }
            table.history.push_back(Arc::clone(&change));
        }
        // An error only means nobody is listening right now.
        let _ = table.sender.send(change);
    }
}

fn current(inner: &Inner, resource: Resource, namespace: &str, name: &str) -> Result<Arc<Value>, ApiError> {
    inner.tables[resource.index()]
        .objects
        .get(&key(namespace, name))
        .cloned()
        .ok_or_else(|| ApiError::NotFound { resource, name: name.to_string() })
}

fn take_forced_conflict(inner: &mut Inner, resource: Resource, namespace: &str, name: &str) -> Result<(), ApiError> {
    if inner.forced_conflicts.remove(&(resource, key(namespace, name))) {
        return Err(ApiError::stale(resource, name));
    }
    Ok(())
}

/// Rejects a body of another type and fills in `kind`/`apiVersion`.
fn check_type(resource: Resource, obj: &mut Value) -> Result<(), ApiError> {
    let map = obj.as_object_mut().ok_or_else(|| bad_body(resource, "the body is not a JSON object"))?;
    if let Some(kind) = map.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != resource.kind()
    {
        return Err(bad_body(resource, &format!("kind {kind:?}")));
    }
    if let Some(api_version) = map.get("apiVersion").and_then(Value::as_str)
        && !api_version.is_empty()
        && api_version != resource.api_version()
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version \
             ({})",
            resource.api_version()
        )));
    }
    map.insert("kind".into(), json!(resource.kind()));
    map.insert("apiVersion".into(), json!(resource.api_version()));
    crate::openapi::check_json_types(resource, obj)?;
    check_custom_resource_shape(resource, obj)
}

/// The fields of the Prometheus Operator's kinds that their CRDs' schemas type, with that type:
/// the emulator serves them schemaless, but an object the real CRD would refuse is refused here
/// too, naming the field, so that a chart that only works against the emulator cannot pass.
fn check_custom_resource_shape(resource: Resource, obj: &Value) -> Result<(), ApiError> {
    let typed: &[(&str, &str)] = match resource {
        Resource::ServiceMonitors => &[("spec", "object"), ("spec.endpoints", "array"), ("spec.selector", "object")],
        Resource::PrometheusRules => &[("spec", "object"), ("spec.groups", "array")],
        _ => return Ok(()),
    };
    for (field, expected) in typed {
        let pointer = format!("/{}", field.replace('.', "/"));
        let Some(value) = obj.pointer(&pointer) else { continue };
        let got = match value {
            Value::Null => continue,
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "boolean",
        };
        if got != *expected {
            return Err(ApiError::Invalid {
                resource,
                name: meta::str_field(obj, "name").unwrap_or("").to_string(),
                field: (*field).to_string(),
                detail: format!("Invalid value: \"{got}\": {field} in body must be of type {expected}: \"{got}\""),
            });
        }
    }
    Ok(())
}

fn copy_top(new: &mut Value, old: &Value, field: &str) {
    if let Some(map) = new.as_object_mut() {
        match old.get(field) {
            Some(v) => {
                map.insert(field.to_string(), v.clone());
            }
            None => {
                map.remove(field);
            }
        }
    }
}

/// Pods, Deployments, CRDs, admission policies and NetworkPolicies bump `generation` on spec changes; a custom
/// resource without a status subresource (NADs, GuidBlocks) on any change outside `metadata`.
fn spec_changed(resource: Resource, old: &Value, new: &Value) -> bool {
    match resource {
        Resource::Pods
        | Resource::Deployments
        | Resource::CustomResourceDefinitions
        | Resource::ValidatingAdmissionPolicies
        | Resource::ValidatingAdmissionPolicyBindings
        | Resource::NetworkPolicies => old.get("spec") != new.get("spec"),
        _ => {
            let strip = |v: &Value| {
                v.as_object().map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.as_str() != "metadata")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<BTreeMap<_, _>>()
                })
            };
            strip(old) != strip(new)
        }
    }
}

fn matching(table: &Table, filter: &Filter) -> Vec<Arc<Value>> {
    let select = |obj: &&Arc<Value>| filter.labels.matches(obj) && filter.fields.matches(obj);
    match &filter.namespace {
        Some(ns) => table
            .objects
            .range((Bound::Included((ns.clone(), String::new())), Bound::Unbounded))
            .take_while(|((n, _), _)| n == ns)
            .map(|(_, v)| v)
            .filter(select)
            .cloned()
            .collect(),
        None => table.objects.values().filter(select).cloned().collect(),
    }
}

fn changes_after(table: &Table, rv: u64) -> Result<Vec<Arc<Change>>, ApiError> {
    if rv < table.floor {
        return Err(ApiError::too_old(rv, table.floor));
    }
    let start = table.history.partition_point(|c| c.resource_version <= rv);
    Ok(table.history.range(start..).cloned().collect())
}

fn page(snapshot: u64, rv: u64, items: &[Arc<Value>], start: usize, limit: usize, filtered: bool) -> ListPage {
    let start = start.min(items.len());
    let end = start.saturating_add(limit).min(items.len());
    let continue_token = (end < items.len()).then(|| {
        let token = ContinueToken { v: "meta.k8s.io/v1".into(), rv, snapshot, start: end };
        let raw = serde_json::to_vec(&token).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    });
    // The apiserver reports a remaining count only for unfiltered lists.
    let remaining_item_count = (continue_token.is_some() && !filtered).then(|| items.len() - end);
    ListPage { resource_version: rv, items: items[start..end].to_vec(), continue_token, remaining_item_count }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(history: usize) -> Store {
        Store::new(StoreConfig {
            history_capacity: history,
            watch_queue_capacity: 64,
            list_snapshot_capacity: 4,
            pod_deletion: PodDeletion::Graceful { finish: GracefulFinish::Manual },
        })
    }

    fn pod(name: &str) -> Value {
        json!({ "metadata": { "name": name, "labels": { "app": "x" } }, "spec": { "nodeName": "n1" } })
    }

    #[test]
    fn create_stamps_system_fields() {
        let s = store(16);
        let p = s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        assert_eq!(p["metadata"]["resourceVersion"], "1");
        assert_eq!(p["metadata"]["generation"], 1);
        assert_eq!(p["metadata"]["namespace"], "ns");
        assert_eq!(p["kind"], "Pod");
        assert_eq!(p["status"]["phase"], "Pending");
        assert!(p["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
        let err = s.create(Resource::Pods, "ns", pod("a"), false).unwrap_err();
        assert_eq!(err.reason(), "AlreadyExists");
        let lease = s.create(Resource::Leases, "ns", json!({ "metadata": { "name": "l" } }), false).unwrap();
        assert!(lease["metadata"].get("generation").is_none());
        assert_eq!(lease["metadata"]["resourceVersion"], "2");
    }

    #[test]
    fn create_rejects_client_rv_and_bad_names() {
        let s = store(16);
        let mut p = pod("a");
        p["metadata"]["resourceVersion"] = json!("5");
        assert_eq!(s.create(Resource::Pods, "ns", p, false).unwrap_err().code(), 500);
        let err = s.create(Resource::Pods, "ns", pod("Bad_Name"), false).unwrap_err();
        assert_eq!(err.reason(), "Invalid");
        let generated = s.create(Resource::Pods, "ns", json!({ "metadata": { "generateName": "w-" } }), false).unwrap();
        let name = generated["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("w-") && name.len() == 7, "{name}");
    }

    #[test]
    fn no_op_patch_keeps_rv_and_emits_nothing() {
        let s = store(16);
        s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        let mut rx = s.subscribe(Resource::Pods);
        let p = s
            .patch(
                Resource::Pods,
                "ns",
                "a",
                PatchKind::Merge,
                br#"{"metadata":{"labels":{"app":"x"}}}"#,
                Target::Main,
                true,
            )
            .unwrap();
        assert_eq!(p["metadata"]["resourceVersion"], "1");
        assert!(rx.try_recv().is_err());
        assert_eq!(s.resource_version(), 1);
    }

    #[test]
    fn stale_rv_in_patch_conflicts() {
        let s = store(16);
        s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        s.patch(
            Resource::Pods,
            "ns",
            "a",
            PatchKind::Merge,
            br#"{"metadata":{"labels":{"b":"1"}}}"#,
            Target::Main,
            true,
        )
        .unwrap();
        let err = s
            .patch(
                Resource::Pods,
                "ns",
                "a",
                PatchKind::Merge,
                br#"{"metadata":{"resourceVersion":"1","labels":{"c":"1"}}}"#,
                Target::Main,
                true,
            )
            .unwrap_err();
        assert_eq!(err.reason(), "Conflict");
        let ok = s
            .patch(
                Resource::Pods,
                "ns",
                "a",
                PatchKind::Merge,
                br#"{"metadata":{"resourceVersion":"2","labels":{"c":"1"}}}"#,
                Target::Main,
                true,
            )
            .unwrap();
        assert_eq!(ok["metadata"]["resourceVersion"], "3");
    }

    #[test]
    fn main_resource_cannot_change_pod_status() {
        let s = store(16);
        s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        let p = s
            .patch(
                Resource::Pods,
                "ns",
                "a",
                PatchKind::Merge,
                br#"{"status":{"phase":"Running"}}"#,
                Target::Main,
                true,
            )
            .unwrap();
        assert_eq!(p["status"]["phase"], "Pending");
        let p = s
            .patch(
                Resource::Pods,
                "ns",
                "a",
                PatchKind::Merge,
                br#"{"status":{"phase":"Running"},"spec":{"nodeName":"n2"}}"#,
                Target::Status,
                true,
            )
            .unwrap();
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["spec"]["nodeName"], "n1");
    }

    #[test]
    fn finalizers_hold_deletion_until_removed() {
        let s = store(16);
        let mut p = pod("a");
        p["metadata"]["finalizers"] = json!(["x/y"]);
        p["spec"] = json!({});
        s.create(Resource::Pods, "ns", p, false).unwrap();
        let d = s.delete(Resource::Pods, "ns", "a", &DeleteOptions::default()).unwrap();
        let Deleted::Terminating { object, grace: None } = d else {
            panic!("expected terminating, got {d:?}");
        };
        assert_eq!(object["metadata"]["deletionGracePeriodSeconds"], 0);
        let err = s
            .patch(
                Resource::Pods,
                "ns",
                "a",
                PatchKind::Merge,
                br#"{"metadata":{"finalizers":["x/y","z"]}}"#,
                Target::Main,
                true,
            )
            .unwrap_err();
        assert_eq!(err.code(), 422);
        let mut rx = s.subscribe(Resource::Pods);
        s.patch(
            Resource::Pods,
            "ns",
            "a",
            PatchKind::Merge,
            br#"{"metadata":{"finalizers":null}}"#,
            Target::Main,
            true,
        )
        .unwrap();
        assert!(s.get(Resource::Pods, "ns", "a").is_none());
        assert_eq!(rx.try_recv().unwrap().kind, ChangeKind::Deleted);
    }

    #[test]
    fn graceful_pod_deletion_waits_for_kubelet() {
        let s = store(16);
        s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        let d = s.delete(Resource::Pods, "ns", "a", &DeleteOptions::default()).unwrap();
        let Deleted::Terminating { object, grace: Some((30, _)) } = d else {
            panic!("expected graceful, got {d:?}");
        };
        assert!(object["metadata"]["deletionTimestamp"].is_string());
        assert!(s.get(Resource::Pods, "ns", "a").is_some());
        let Deleted::Gone(gone) = s.finish_graceful("ns", "a", None).unwrap() else {
            panic!("expected gone");
        };
        assert_eq!(gone["metadata"]["resourceVersion"], "3");
        assert!(s.get(Resource::Pods, "ns", "a").is_none());
    }

    #[test]
    fn immediate_mode_and_unscheduled_pods_skip_grace() {
        let s = Store::new(StoreConfig { pod_deletion: PodDeletion::Immediate, ..store(16).config.clone() });
        s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        let d = s.delete(Resource::Pods, "ns", "a", &DeleteOptions::default()).unwrap();
        assert!(matches!(d, Deleted::Gone(_)));

        let graceful = store(16);
        let mut unscheduled = pod("b");
        unscheduled["spec"] = json!({});
        graceful.create(Resource::Pods, "ns", unscheduled, false).unwrap();
        let d = graceful.delete(Resource::Pods, "ns", "b", &DeleteOptions::default()).unwrap();
        assert!(matches!(d, Deleted::Gone(_)));
        graceful.create(Resource::Pods, "ns", pod("c"), false).unwrap();
        let zero = DeleteOptions { grace_period_seconds: Some(0), ..DeleteOptions::default() };
        let d = graceful.delete(Resource::Pods, "ns", "c", &zero).unwrap();
        assert!(matches!(d, Deleted::Gone(_)));
    }

    #[test]
    fn paging_is_pinned_to_a_snapshot() {
        let s = store(16);
        for i in 0..5 {
            s.create(Resource::Pods, "ns", pod(&format!("p{i}")), false).unwrap();
        }
        let query = ListQuery { limit: Some(2), ..ListQuery::default() };
        let first = s.list(Resource::Pods, &query).unwrap();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.remaining_item_count, Some(3));
        s.create(Resource::Pods, "ns", pod("p9"), false).unwrap();
        let mut names = Vec::new();
        let mut token = first.continue_token.clone();
        names.extend(first.items.iter().map(|o| o["metadata"]["name"].clone()));
        while let Some(t) = token {
            let next = s
                .list(Resource::Pods, &ListQuery { limit: Some(2), continue_token: Some(t), ..ListQuery::default() })
                .unwrap();
            assert_eq!(next.resource_version, 5);
            names.extend(next.items.iter().map(|o| o["metadata"]["name"].clone()));
            token = next.continue_token;
        }
        assert_eq!(names, vec!["p0", "p1", "p2", "p3", "p4"]);
    }

    #[test]
    fn history_eviction_expires_old_versions() {
        let s = store(2);
        for i in 0..4 {
            s.create(Resource::Pods, "ns", pod(&format!("p{i}")), false).unwrap();
        }
        assert_eq!(s.changes_since(Resource::Pods, 2).unwrap().len(), 2);
        let err = s.changes_since(Resource::Pods, 1).unwrap_err();
        assert_eq!(err.to_string(), "too old resource version: 1 (2)");
        s.compact();
        assert!(s.changes_since(Resource::Pods, 3).is_err());
        assert!(s.changes_since(Resource::Pods, 4).unwrap().is_empty());
    }

    #[test]
    fn ownership_record_history_is_short_whatever_the_capacity() {
        let s = store(1 << 18);
        let block = |i: usize| {
            json!({"apiVersion": "ib-kubernetes.mellanox.com/v1alpha1", "kind": "GuidBlock",
                   "metadata": {"name": format!("{i:016x}")}, "spec": {"allocations": {}}})
        };
        for i in 0..(GUIDBLOCK_HISTORY + 10) {
            s.create(Resource::GuidBlocks, "", block(i), false).unwrap();
        }
        let first_kept = s.resource_version() - GUIDBLOCK_HISTORY as u64;
        assert_eq!(s.changes_since(Resource::GuidBlocks, first_kept).unwrap().len(), GUIDBLOCK_HISTORY);
        assert!(s.changes_since(Resource::GuidBlocks, first_kept - 1).is_err());
        // Other resources keep the configured history.
        for i in 0..(GUIDBLOCK_HISTORY + 10) {
            s.create(Resource::Pods, "ns", pod(&format!("p{i}")), false).unwrap();
        }
        assert!(s.changes_since(Resource::Pods, 1).is_ok());
    }

    #[test]
    fn uid_is_immutable_and_creation_timestamp_is_kept() {
        let s = store(16);
        let p = s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        let mut changed = Value::clone(&p);
        changed["metadata"]["uid"] = json!("other");
        let err = s.update(Resource::Pods, "ns", "a", changed, Target::Main, true).unwrap_err();
        assert_eq!(err.reason(), "Invalid");
        let mut changed = Value::clone(&p);
        changed["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
        let same = s.update(Resource::Pods, "ns", "a", changed, Target::Main, true).unwrap();
        assert_eq!(same["metadata"]["creationTimestamp"], p["metadata"]["creationTimestamp"]);
        assert_eq!(same["metadata"]["resourceVersion"], "1");
    }

    #[test]
    fn forced_conflict_fires_once() {
        let s = store(16);
        s.create(Resource::Leases, "ns", json!({ "metadata": { "name": "l" } }), false).unwrap();
        s.force_conflict(Resource::Leases, "ns", "l");
        let body = json!({ "metadata": { "name": "l" }, "spec": { "holderIdentity": "a" } });
        let err = s.update(Resource::Leases, "ns", "l", body.clone(), Target::Main, true).unwrap_err();
        assert_eq!(err.reason(), "Conflict");
        assert!(s.update(Resource::Leases, "ns", "l", body, Target::Main, true).is_ok());
    }
}
