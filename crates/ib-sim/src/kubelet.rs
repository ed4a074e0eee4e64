//! A simulated kubelet on the Kubernetes emulator's in-process handle.
//!
//! It plays the node side of the ib-sriov-cni contract: a scheduled pod moves from Pending to Running
//! only once every one of its ib-sriov networks is marked `configured` with a GUID, as a real node's
//! sandbox retries would (see [`admission`]). Pods without networks run at once; a pod that names a
//! missing NAD stays Pending, as Multus fails it. Pods end on request ([`Kubelet::finish`]). It
//! records when it started each pod, so the demo and tests can measure "time until the pod runs".
//!
//! It also plays the nodes and the default scheduler ([`scheduler`]): it registers `node-01` …
//! `node-16` as Node objects and binds a pod that names no node to one of them. With
//! [`KubeletOptions::record_events`] it writes the Events a scheduler and kubelet write
//! (Scheduled, FailedScheduling, FailedCreatePodSandBox with the CNI's reason, Started), which
//! `kubectl describe pod` shows.

pub mod admission;
pub mod scheduler;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube_emulator::{ApiError, ChangeKind, EmulatorHandle, Resource, Subscription, SubscriptionError};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use admission::{Admission, WaitReason, admit};
pub use status::PodOutcome;

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("pod {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("pod {namespace}/{name} has already finished ({phase})")]
    AlreadyFinished { namespace: String, name: String, phase: String },
    #[error("updating pod {namespace}/{name}: {source}")]
    Api { namespace: String, name: String, source: Box<ApiError> },
}

/// What the kubelet does besides running pods.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeletOptions {
    /// Write core `v1` Events for scheduling, sandbox failures and starts (off by default: runs
    /// that count Events, like the demo's, see only the controller's).
    pub record_events: bool,
}

/// When the kubelet moved a pod to Running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub at: Instant,
}

type PodKey = (String, String);

#[derive(Default)]
struct Records {
    /// The latest start per pod name (a re-created pod replaces its predecessor).
    started: HashMap<PodKey, Started>,
    /// Pods held in Pending and why; re-examined whenever a NAD changes.
    waiting: HashMap<PodKey, WaitReason>,
    /// Pods no node fits; re-examined whenever a node changes.
    unschedulable: HashMap<PodKey, String>,
}

struct Inner {
    api: EmulatorHandle,
    options: KubeletOptions,
    records: Mutex<Records>,
    /// Bumped on every start, so waiters re-check without polling.
    starts: watch::Sender<u64>,
}

impl Inner {
    /// The data are plain maps, consistent at every unlock; a panic elsewhere must not stop the node.
    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running simulated kubelet; dropping it stops it.
pub struct Kubelet {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Kubelet {
    /// Starts watching pods and NADs through `api`. Must be called inside a Tokio runtime.
    pub fn start(api: EmulatorHandle) -> Kubelet {
        Kubelet::start_with(api, KubeletOptions::default())
    }

    /// [`Kubelet::start`] with options.
    pub fn start_with(api: EmulatorHandle, options: KubeletOptions) -> Kubelet {
        let inner = Arc::new(Inner { api, options, records: Mutex::default(), starts: watch::Sender::new(0) });
        let nodes = inner.api.subscribe(Resource::Nodes);
        if let Err(e) = scheduler::register_nodes(&inner.api) {
            tracing::warn!(error = %e, "the simulated kubelet could not register its nodes");
        }
        // NADs first: a NAD created while pods are being listed is then seen as a change.
        let nads = inner.api.subscribe(Resource::NetworkAttachmentDefinitions);
        let (pods, pod_changes) = inner.api.list_and_subscribe(Resource::Pods, None);
        for pod in &pods {
            evaluate(&inner, pod);
        }
        let task = tokio::spawn(run(Arc::clone(&inner), pod_changes, nads, nodes));
        Kubelet { inner, task }
    }

    /// When the pod currently named `namespace/name` (or its latest predecessor) was started.
    pub fn started_at(&self, namespace: &str, name: &str) -> Option<Started> {
        self.inner.records().started.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Every start so far.
    pub fn started(&self) -> Vec<Started> {
        self.inner.records().started.values().cloned().collect()
    }

    /// Why the pod is held in Pending, if it is.
    pub fn waiting_reason(&self, namespace: &str, name: &str) -> Option<WaitReason> {
        self.inner.records().waiting.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Every pod held in Pending, with its reason.
    pub fn waiting(&self) -> Vec<(String, String, WaitReason)> {
        let records = self.inner.records();
        records.waiting.iter().map(|((ns, name), reason)| (ns.clone(), name.clone(), reason.clone())).collect()
    }

    /// Waits until the pod has been started, or `timeout` passes; returns whether it was.
    pub async fn wait_running(&self, namespace: &str, name: &str, timeout: Duration) -> bool {
        let mut starts = self.inner.starts.subscribe();
        let key = (namespace.to_owned(), name.to_owned());
        let started = async {
            loop {
                if self.inner.records().started.contains_key(&key) {
                    return;
                }
                if starts.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, started).await.is_ok()
    }

    /// Ends the pod's containers: phase Succeeded or Failed, whatever phase it was in before.
    pub fn finish(&self, namespace: &str, name: &str, outcome: PodOutcome) -> Result<Arc<Value>, KubeletError> {
        finish(&self.inner.api, namespace, name, outcome)
    }

    /// Stops watching; pods keep the status they have.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn finish(api: &EmulatorHandle, namespace: &str, name: &str, outcome: PodOutcome) -> Result<Arc<Value>, KubeletError> {
    let at = status::now_rfc3339();
    let mut finished_before = None;
    let result = api.mutate(Resource::Pods, namespace, name, |pod| {
        let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
        if matches!(phase, "Succeeded" | "Failed") {
            finished_before = Some(phase.to_owned());
        } else {
            status::set_finished(pod, outcome, &at);
        }
    });
    match (result, finished_before) {
        (Ok(_), Some(phase)) => {
            Err(KubeletError::AlreadyFinished { namespace: namespace.to_owned(), name: name.to_owned(), phase })
        }
        (Ok(pod), None) => Ok(pod),
        (Err(e), _) if e.code() == 404 => {
            Err(KubeletError::NotFound { namespace: namespace.to_owned(), name: name.to_owned() })
        }
        (Err(source), _) => {
            Err(KubeletError::Api { namespace: namespace.to_owned(), name: name.to_owned(), source: Box::new(source) })
        }
    }
}

async fn run(inner: Arc<Inner>, mut pods: Subscription, mut nads: Subscription, mut nodes: Subscription) {
    loop {
        tokio::select! {
            change = pods.recv() => match change {
                Ok(change) if change.kind == ChangeKind::Deleted => {
                    if let Some(key) = key_of(&change.object) {
                        let mut records = inner.records();
                        records.waiting.remove(&key);
                        records.unschedulable.remove(&key);
                    }
                }
                Ok(change) => evaluate(&inner, &change.object),
                // Missed changes: look at every pod again, as a kubelet's re-list would.
                Err(SubscriptionError::Lagged(_)) => {
                    for pod in inner.api.list(Resource::Pods, None).1 {
                        evaluate(&inner, &pod);
                    }
                }
                Err(SubscriptionError::Closed) => return,
            },
            change = nads.recv() => match change {
                Ok(_) | Err(SubscriptionError::Lagged(_)) => reevaluate_waiting(&inner),
                Err(SubscriptionError::Closed) => return,
            },
            change = nodes.recv() => match change {
                Ok(_) | Err(SubscriptionError::Lagged(_)) => reevaluate_unschedulable(&inner),
                Err(SubscriptionError::Closed) => return,
            },
        }
    }
}

fn key_of(pod: &Value) -> Option<PodKey> {
    let meta = pod.get("metadata")?;
    let name = meta.get("name").and_then(Value::as_str)?;
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("default");
    Some((namespace.to_owned(), name.to_owned()))
}

fn reevaluate_waiting(inner: &Inner) {
    let keys: Vec<PodKey> = inner.records().waiting.keys().cloned().collect();
    for (namespace, name) in keys {
        match inner.api.get(Resource::Pods, &namespace, &name) {
            Some(pod) => evaluate(inner, &pod),
            None => {
                inner.records().waiting.remove(&(namespace, name));
            }
        }
    }
}

fn reevaluate_unschedulable(inner: &Inner) {
    let keys: Vec<PodKey> = inner.records().unschedulable.keys().cloned().collect();
    for (namespace, name) in keys {
        match inner.api.get(Resource::Pods, &namespace, &name) {
            Some(pod) => evaluate(inner, &pod),
            None => {
                inner.records().unschedulable.remove(&(namespace, name));
            }
        }
    }
}

/// Writes an Event about `pod` when the kubelet records Events; a failed write is only logged,
/// as a real kubelet's event recorder drops what it cannot send.
fn record_event(inner: &Inner, pod: &Value, kind: &str, reason: &str, message: &str, component: &str, host: &str) {
    if !inner.options.record_events {
        return;
    }
    let event = scheduler::pod_event(pod, kind, reason, message, component, host);
    if let Err(e) = inner.api.create(Resource::CoreEvents, event) {
        tracing::debug!(error = %e, reason, "the simulated kubelet could not record an Event");
    }
}

fn schedule(inner: &Inner, key: PodKey, pod: &Value) {
    let nodes = inner.api.list(Resource::Nodes, None).1;
    let pods = inner.api.list(Resource::Pods, None).1;
    match scheduler::choose(pod, &nodes, &pods) {
        Err(message) => {
            let first = inner.records().unschedulable.insert(key, message.clone()).as_ref() != Some(&message);
            if first {
                record_event(inner, pod, "Warning", "FailedScheduling", &message, scheduler::DEFAULT_SCHEDULER, "");
            }
        }
        Ok(node) => {
            inner.records().unschedulable.remove(&key);
            let uid = pod.pointer("/metadata/uid").cloned();
            let mut bound = false;
            let result = inner.api.mutate(Resource::Pods, &key.0, &key.1, |live| {
                // Bind only the pod that was judged, and only once.
                if live.pointer("/metadata/uid").cloned() == uid && scheduler::wants_scheduling(live) {
                    live["spec"]["nodeName"] = Value::String(node.clone());
                    bound = true;
                }
            });
            if result.is_ok() && bound {
                let message = format!("Successfully assigned {}/{} to {node}", key.0, key.1);
                record_event(inner, pod, "Normal", "Scheduled", &message, scheduler::DEFAULT_SCHEDULER, "");
            }
        }
    }
}

fn evaluate(inner: &Inner, pod: &Value) {
    let Some(key) = key_of(pod) else { return };
    if scheduler::wants_scheduling(pod) {
        return schedule(inner, key, pod);
    }
    let admission =
        admit(pod, |namespace, name| inner.api.get(Resource::NetworkAttachmentDefinitions, namespace, name));
    match admission {
        Admission::Ignore => {
            inner.records().waiting.remove(&key);
        }
        Admission::Wait(reason) => {
            let changed = inner.records().waiting.insert(key, reason.clone()).as_ref() != Some(&reason);
            if changed {
                let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
                let message = format!("Failed to create pod sandbox: {reason}");
                record_event(inner, pod, "Warning", "FailedCreatePodSandBox", &message, "kubelet", node);
            }
        }
        Admission::Start => start(inner, key, pod),
    }
}

fn start(inner: &Inner, key: PodKey, seen: &Value) {
    let uid = seen.pointer("/metadata/uid").cloned();
    let annotations = seen.pointer("/metadata/annotations").cloned();
    let at = status::now_rfc3339();
    let mut applied = false;
    let result = inner.api.mutate(Resource::Pods, &key.0, &key.1, |pod| {
        // Only the pod that was judged, unchanged since: a concurrent edit gets judged on its own event.
        let same = pod.pointer("/metadata/uid").cloned() == uid
            && pod.pointer("/metadata/annotations").cloned() == annotations
            && pod.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null)
            && pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending") == "Pending";
        if same {
            status::set_running(pod, &at);
            applied = true;
        }
    });
    let now = Instant::now();
    if result.is_ok() && applied {
        let uid = uid.as_ref().and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut records = inner.records();
        records.waiting.remove(&key);
        records.started.insert(key.clone(), Started { namespace: key.0, name: key.1, uid, at: now });
        drop(records);
        let node = seen.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
        let names: Vec<&str> = seen
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect())
            .unwrap_or_default();
        record_event(
            inner,
            seen,
            "Normal",
            "Started",
            &format!("Started container {}", names.join(", ")),
            "kubelet",
            node,
        );
        inner.starts.send_modify(|n| *n += 1);
    }
}
