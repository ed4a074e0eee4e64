//! Watches the API server's change stream as a user watching their pods would, and notes when each pod
//! first reads configured. Latency is measured from the benchmark's create call to that moment, so it
//! does not depend on the controller's own account of itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ib_model::{Guid, NetworkRef};
use ib_sim::demo::observer::configured_interfaces;
use ib_sim::workload::IbNetworks;
use kube_emulator::{ChangeKind, EmulatorHandle, Resource, Subscription, SubscriptionError};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::cluster::{NAMESPACE, network, pkey_of};

const POLL: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Seen {
    created: HashMap<String, Instant>,
    configured: HashMap<String, (Instant, Vec<Guid>)>,
}

pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Observer {
    /// Subscribes now, so that no later change is missed.
    pub fn start(api: EmulatorHandle, pkeys: u16) -> Observer {
        let ib: IbNetworks = (0..pkeys).map(|i| (NetworkRef::new(NAMESPACE, network(i)), Some(pkey_of(i)))).collect();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let changes = api.subscribe(Resource::Pods);
        let task = tokio::spawn(watch(api, changes, ib, Arc::clone(&seen)));
        Observer { seen, task }
    }

    /// Notes that `name` is being created now; call just before the create.
    pub fn created(&self, name: &str) {
        lock(&self.seen).created.insert(name.to_owned(), Instant::now());
    }

    pub fn configured_count(&self) -> usize {
        lock(&self.seen).configured.len()
    }

    pub fn is_configured(&self, name: &str) -> bool {
        lock(&self.seen).configured.contains_key(name)
    }

    pub fn configured_at(&self, name: &str) -> Option<Instant> {
        lock(&self.seen).configured.get(name).map(|c| c.0)
    }

    pub fn guids(&self, name: &str) -> Option<Vec<Guid>> {
        lock(&self.seen).configured.get(name).map(|c| c.1.clone())
    }

    /// Creation → configured of `name`, once configured.
    pub fn latency(&self, name: &str) -> Option<Duration> {
        let seen = lock(&self.seen);
        let created = seen.created.get(name)?;
        seen.configured.get(name).map(|c| c.0.saturating_duration_since(*created))
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
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Plain maps, consistent at every unlock: a poisoned lock still holds good data.
fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn watch(api: EmulatorHandle, mut changes: Subscription, ib: IbNetworks, seen: Arc<Mutex<Seen>>) {
    loop {
        match changes.recv().await {
            Ok(change) if change.kind == ChangeKind::Deleted => {}
            Ok(change) => note(&change.object, &ib, &seen),
            // Fell behind: the current state still tells which pods are configured (timed a bit late).
            Err(SubscriptionError::Lagged(_)) => {
                for pod in api.list(Resource::Pods, Some(NAMESPACE)).1 {
                    note(&pod, &ib, &seen);
                }
            }
            Err(SubscriptionError::Closed) => return,
        }
    }
}

fn note(pod: &Value, ib: &IbNetworks, seen: &Mutex<Seen>) {
    let at = Instant::now();
    let Some(name) = pod["metadata"]["name"].as_str() else { return };
    if lock(seen).configured.contains_key(name) {
        return;
    }
    if let Some(interfaces) = configured_interfaces(pod, ib) {
        let guids = interfaces.iter().map(|i| i.guid).collect();
        lock(seen).configured.insert(name.to_owned(), (at, guids));
    }
}
