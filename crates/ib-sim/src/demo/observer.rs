//! Watches the API server's change stream the way a user would watch their pods, and notes the moment
//! each pod's InfiniBand interfaces all read `configured` with a GUID. Latency is measured from the
//! demo's own creation time to that moment, independent of the controller's own metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ib_model::{Guid, NetworkRef, NetworksAnnotation};
use kube_emulator::{ChangeKind, EmulatorHandle, Resource, Subscription, SubscriptionError};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::workload::IbNetworks;

/// How often the waits look again.
const POLL: Duration = Duration::from_millis(10);

/// One configured pod, as first seen configured.
#[derive(Debug, Clone)]
pub struct Configured {
    pub at: Instant,
    pub uid: String,
    /// GUIDs of its InfiniBand interfaces, in annotation order.
    pub guids: Vec<Guid>,
}

#[derive(Default)]
struct Observed {
    created: HashMap<String, Instant>,
    configured: HashMap<String, Configured>,
}

/// The observer task and what it saw.
pub struct Observer {
    observed: Arc<Mutex<Observed>>,
    task: JoinHandle<()>,
}

/// Which pods an observer looks at: one namespace, and which of its networks are InfiniBand.
struct Scope {
    namespace: String,
    ib: IbNetworks,
}

impl Observer {
    /// Subscribes now, so that no later change is missed. Watches the pods of `namespace`, whose
    /// InfiniBand networks are `ib`.
    pub fn start(api: EmulatorHandle, namespace: &str, ib: IbNetworks) -> Observer {
        let observed = Arc::new(Mutex::new(Observed::default()));
        let changes = api.subscribe(Resource::Pods);
        let scope = Scope { namespace: namespace.to_owned(), ib };
        let task = tokio::spawn(watch(api, changes, scope, Arc::clone(&observed)));
        Observer { observed, task }
    }

    /// Notes that the demo is creating `name` now; call just before the create.
    pub fn created(&self, name: &str) {
        lock(&self.observed).created.insert(name.to_owned(), Instant::now());
    }

    pub fn created_at(&self, name: &str) -> Option<Instant> {
        lock(&self.observed).created.get(name).copied()
    }

    pub fn configured(&self, name: &str) -> Option<Configured> {
        lock(&self.observed).configured.get(name).cloned()
    }

    pub fn configured_count(&self) -> usize {
        lock(&self.observed).configured.len()
    }

    pub fn is_configured(&self, name: &str) -> bool {
        lock(&self.observed).configured.contains_key(name)
    }

    /// Creation → configured of one pod, once it is configured.
    pub fn latency(&self, name: &str) -> Option<std::time::Duration> {
        let observed = lock(&self.observed);
        let created = observed.created.get(name)?;
        observed.configured.get(name).map(|c| c.at.saturating_duration_since(*created))
    }

    /// Waits until `n` pods have been seen configured; false at the deadline.
    pub async fn wait_configured(&self, n: usize, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        while self.configured_count() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }

    /// Waits until `name` is configured; false at the deadline.
    pub async fn wait_pod(&self, name: &str, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        while !self.is_configured(name) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }

    /// Creation → configured for every pod seen configured.
    pub fn latencies(&self) -> Vec<std::time::Duration> {
        let observed = lock(&self.observed);
        observed
            .configured
            .iter()
            .filter_map(|(name, c)| observed.created.get(name).map(|created| c.at.saturating_duration_since(*created)))
            .collect()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Plain maps, consistent at every unlock: a poisoned lock still holds good data.
fn lock(observed: &Mutex<Observed>) -> MutexGuard<'_, Observed> {
    observed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn watch(api: EmulatorHandle, mut changes: Subscription, scope: Scope, observed: Arc<Mutex<Observed>>) {
    loop {
        match changes.recv().await {
            Ok(change) if change.kind == ChangeKind::Deleted => {}
            Ok(change) => note(&change.object, &scope, &observed),
            // Fell behind: the current state still tells which pods are configured (timed a bit late).
            Err(SubscriptionError::Lagged(_)) => {
                for pod in api.list(Resource::Pods, Some(&scope.namespace)).1 {
                    note(&pod, &scope, &observed);
                }
            }
            Err(SubscriptionError::Closed) => return,
        }
    }
}

fn note(pod: &Value, scope: &Scope, observed: &Mutex<Observed>) {
    let at = Instant::now();
    let meta = &pod["metadata"];
    if meta["namespace"].as_str() != Some(scope.namespace.as_str()) {
        return;
    }
    let Some(name) = meta["name"].as_str() else { return };
    if lock(observed).configured.contains_key(name) {
        return;
    }
    if let Some(interfaces) = configured_interfaces(pod, &scope.ib) {
        let uid = meta["uid"].as_str().unwrap_or_default().to_owned();
        let guids = interfaces.iter().map(|i| i.guid).collect();
        lock(observed).configured.insert(name.to_owned(), Configured { at, uid, guids });
    }
}

/// One configured InfiniBand interface of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredInterface {
    pub network: NetworkRef,
    pub interface: String,
    pub pkey: Option<u16>,
    pub guid: Guid,
}

/// The pod's InfiniBand interfaces when every one of them is configured with a readable GUID; `None`
/// while any is not, or when the pod has none.
pub fn configured_interfaces(pod: &Value, ib: &IbNetworks) -> Option<Vec<ConfiguredInterface>> {
    let raw = pod["metadata"]["annotations"][ib_model::annotation::NETWORKS_ANNOTATION].as_str()?;
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let annotation = NetworksAnnotation::parse(raw, namespace).ok()?;
    let mut interfaces = Vec::new();
    for selection in annotation.selections() {
        let Some(pkey) = ib.get(&selection.network) else { continue };
        if !selection.configured {
            return None;
        }
        let (text, _) = selection.guid.as_ref()?;
        interfaces.push(ConfiguredInterface {
            network: selection.network.clone(),
            interface: selection.interface.clone(),
            pkey: *pkey,
            guid: Guid::parse(text).ok()?,
        });
    }
    (!interfaces.is_empty()).then_some(interfaces)
}
