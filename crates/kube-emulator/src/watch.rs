//! WATCH streams: line-delimited JSON events in a chunked HTTP body.
//!
//! A stream first drains its backlog (synthetic ADDEDs or replayed history), then forwards live
//! changes from the store's broadcast. Each live event is its own chunk, so hyper flushes it at
//! once. Selectors are evaluated here, per watcher, on the old and new object, which turns
//! transitions into ADDED / DELETED as the apiserver's cacher does. The stream ends cleanly on
//! `timeoutSeconds`, on `drop_watches`, and when the watcher falls a whole queue behind (a slow
//! watcher is closed and resumes by resourceVersion). A start RV older than retained history is
//! answered in-stream with an ERROR 410 event, which is what makes kube-rs re-list.

use crate::control::Shared;
use crate::resource::Resource;
use crate::selector::Filter;
use crate::status::ApiError;
use crate::store::{Backlog, Change, ChangeKind, WatchStart};
use crate::table::{self, Format};
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Interval};

/// Backlog events are packed into chunks of about this size to keep a 100k-object initial
/// state cheap to send; live events are always sent one per chunk.
const BACKLOG_CHUNK_BYTES: usize = 64 * 1024;

/// How a watch request was parameterised.
#[derive(Debug, Clone)]
pub(crate) struct WatchParams {
    pub resource: Resource,
    pub filter: Filter,
    pub allow_bookmarks: bool,
    pub timeout: Duration,
    /// `sendInitialEvents=true`: end the initial ADDEDs with an annotated BOOKMARK.
    pub initial_events_end: bool,
    pub format: Format,
}

/// Counts open streams for `EmulatorHandle::active_watches`.
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Pending {
    Object(Arc<Value>),
    Change(Arc<Change>),
}

struct WatchState {
    shared: Arc<Shared>,
    params: WatchParams,
    pending: VecDeque<Pending>,
    error: Option<ApiError>,
    end_bookmark: Option<u64>,
    live: Option<broadcast::Receiver<Arc<Change>>>,
    stop: watch::Receiver<u64>,
    deadline: Instant,
    bookmarks: Option<Interval>,
    _active: ActiveGuard,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

/// The body stream for a watch that `start` registered (or refused as expired).
pub(crate) fn stream(
    shared: Arc<Shared>,
    params: WatchParams,
    start: Result<WatchStart, ApiError>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    shared.active_watches.fetch_add(1, Ordering::SeqCst);
    let active = ActiveGuard(Arc::clone(&shared.active_watches));
    let stop = shared.stop_watches.subscribe();
    let deadline = Instant::now() + params.timeout;
    let bookmarks = params.allow_bookmarks.then(|| {
        let period = shared.config.bookmark_interval.max(Duration::from_millis(10));
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut state = WatchState {
        shared,
        pending: VecDeque::new(),
        error: None,
        end_bookmark: None,
        live: None,
        stop,
        deadline,
        bookmarks,
        _active: active,
        params,
    };
    match start {
        Ok(start) => {
            match start.backlog {
                Backlog::Objects(objects) => {
                    state.pending.extend(objects.into_iter().map(Pending::Object));
                }
                Backlog::Changes(changes) => {
                    state.pending.extend(changes.into_iter().map(Pending::Change));
                }
            }
            if state.params.initial_events_end {
                state.end_bookmark = Some(start.resource_version);
            }
            state.live = Some(start.live);
        }
        Err(err) => state.error = Some(err),
    }
    futures::stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok(chunk), state))
    })
}

fn line(kind: &str, object: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&Event { kind, object }).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl WatchState {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.backlog_chunk() {
            return Some(chunk);
        }
        if let Some(err) = self.error.take() {
            self.live = None;
            return Some(Bytes::from(line("ERROR", &err.to_status())));
        }
        if let Some(rv) = self.end_bookmark.take() {
            let mut bookmark = self.bookmark(rv);
            bookmark["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
            return Some(Bytes::from(line("BOOKMARK", &bookmark)));
        }
        loop {
            let live = self.live.as_mut()?;
            tokio::select! {
                biased;
                _ = self.stop.changed() => return None,
                _ = tokio::time::sleep_until(self.deadline) => return None,
                received = live.recv() => match received {
                    Ok(change) => {
                        if let Some(bytes) = self.render(&change) {
                            return Some(Bytes::from(bytes));
                        }
                    }
                    // Lagged: too slow, close so the client resumes by RV. Closed: shutdown.
                    Err(_) => return None,
                },
                _ = tick(&mut self.bookmarks) => {
                    let rv = self.shared.store.bookmark_version(live);
                    if let Some(rv) = rv {
                        let bookmark = self.bookmark(rv);
                        return Some(Bytes::from(line("BOOKMARK", &bookmark)));
                    }
                }
            }
        }
    }

    fn backlog_chunk(&mut self) -> Option<Bytes> {
        let mut chunk = Vec::new();
        while chunk.len() < BACKLOG_CHUNK_BYTES {
            let Some(item) = self.pending.pop_front() else {
                break;
            };
            let rendered = match item {
                Pending::Object(obj) => self.params.filter.matches(&obj).then(|| self.event("ADDED", &obj)),
                Pending::Change(change) => self.render(&change),
            };
            if let Some(bytes) = rendered {
                chunk.extend_from_slice(&bytes);
            }
        }
        (!chunk.is_empty()).then(|| Bytes::from(chunk))
    }

    fn bookmark(&self, rv: u64) -> Value {
        let resource = self.params.resource;
        let kind = match self.params.format {
            Format::Json => resource.kind(),
            Format::Table(_) => "Table",
        };
        let api_version = match self.params.format {
            Format::Json => resource.api_version(),
            Format::Table(_) => "meta.k8s.io/v1",
        };
        json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": { "resourceVersion": rv.to_string() },
        })
    }

    fn event(&self, kind: &str, object: &Value) -> Vec<u8> {
        match self.params.format {
            Format::Json => line(kind, object),
            Format::Table(include) => line(kind, &table::watch_row(self.params.resource, object, include)),
        }
    }

    /// The event this watcher sees for `change`, if any.
    fn render(&self, change: &Change) -> Option<Vec<u8>> {
        let filter = &self.params.filter;
        let now = filter.matches(&change.object);
        match change.kind {
            ChangeKind::Added => now.then(|| self.event("ADDED", &change.object)),
            ChangeKind::Deleted => now.then(|| self.event("DELETED", &change.object)),
            ChangeKind::Modified => {
                let before = change.previous.as_deref().is_some_and(|p| filter.matches(p));
                match (before, now) {
                    (true, true) => Some(self.event("MODIFIED", &change.object)),
                    (false, true) => Some(self.event("ADDED", &change.object)),
                    (true, false) => {
                        // Leaving the selection: the previous state, at this change's RV.
                        let mut gone = change.previous.as_deref().cloned().unwrap_or(Value::Null);
                        if let Some(meta) = crate::meta::meta_mut(&mut gone) {
                            meta.insert("resourceVersion".into(), json!(change.resource_version.to_string()));
                        }
                        Some(self.event("DELETED", &gone))
                    }
                    (false, false) => None,
                }
            }
        }
    }
}
