//! Wiring: the admin server, the lease, the two watches, the resync timer and the state task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use ib_model::State;
use ib_sm::SubnetManager;

use crate::config::Config;
use crate::input::Input;
use crate::leader::LeaderElector;
use crate::metrics::Metrics;
use crate::pkey_allocator::{Allocator, AllocatorSettings};
use crate::state_task::{Dependencies, StateTask, TaskSettings};
use crate::{admin, watch as watches};

/// Inputs queued for the state task; watch events wait (backpressure) when it is full.
const INPUT_QUEUE: usize = 8192;
/// Upper bound on one API call of the executors.
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// Pod patches in flight at once: enough to hide API latency, few enough to respect API priority and
/// fairness on a busy cluster.
const PATCH_CONCURRENCY: usize = 32;

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The admin server could not bind its address.
    #[error("cannot serve the admin endpoints on {address}: {source}")]
    Admin {
        /// The configured admin address.
        address: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
}

/// A running controller.
pub struct Controller {
    admin_address: SocketAddr,
    leading: watch::Receiver<bool>,
    ready: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    elector: JoinHandle<()>,
    admin: JoinHandle<()>,
    validate: JoinHandle<()>,
    /// Watches, timers and the state task: stopped with the controller.
    tasks: CoreTasks,
}

/// Tasks that must run as long as the controller does. None of them ends on its own: if one does
/// (a panic included), the controller cannot do its job and must not look healthy.
#[derive(Default)]
pub struct CoreTasks {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl CoreTasks {
    /// Starts `task` under `name`, the name reported if it ever ends.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.push((name, tokio::spawn(task)));
    }

    /// Resolves when any task has ended, with what ended and how; pending forever when there are none.
    pub async fn first_ended(&mut self) -> String {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        let (result, index, _) = futures::future::select_all(self.tasks.iter_mut().map(|(_, h)| h)).await;
        let name = self.tasks[index].0;
        match result {
            Ok(()) => format!("the {name} task ended"),
            Err(e) if e.is_panic() => format!("the {name} task panicked"),
            Err(_) => format!("the {name} task was cancelled"),
        }
    }

    fn abort_all(&self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }

    async fn stop(&mut self) {
        for (_, task) in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Controller {
    /// Starts everything; returns once the admin server is bound.
    pub async fn start(config: Config, client: Client, sm: Arc<dyn SubnetManager>) -> Result<Self, ControllerError> {
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let events_dropped = Counter::default();
        registry.register(
            "ib_kubernetes_events_dropped",
            "Events dropped because the queue was full",
            events_dropped.clone(),
        );
        let registry = Arc::new(registry);

        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready) = watch::channel(false);
        let (admin_address, admin) = admin::serve(config.admin_address, registry, ready.clone(), stop_rx.clone())
            .await
            .map_err(|source| ControllerError::Admin { address: config.admin_address, source })?;
        info!(%admin_address, subnet_manager = sm.name(), range = %config.guid_range, "starting");

        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let (leading_tx, leading) = watch::channel(false);
        let identity = config.identity.holder();
        let elector = LeaderElector::new(client.clone(), &config.identity.namespace, identity.clone(), config.lease);
        let (renewed_tx, gate) = elector.gate();
        let elector = tokio::spawn(elector.run(leading_tx, renewed_tx, stop_rx.clone()));
        let mut tasks = CoreTasks::default();
        tasks.spawn("leadership", forward_leadership(leading.clone(), tx.clone()));
        tasks.spawn(
            "pod watch",
            watches::pods(client.clone(), config.watch_namespace.clone(), tx.clone(), metrics.clone()),
        );
        tasks.spawn(
            "network-attachment-definition watch",
            watches::nads(client.clone(), config.watch_namespace.clone(), tx.clone(), metrics.clone()),
        );
        tasks.spawn("resync timer", resync_timer(config.resync_interval, tx.clone()));
        if let Some(range) = config.policy.partitions.allocation_range {
            let settings = AllocatorSettings {
                range,
                namespace: config.identity.namespace.clone(),
                watch_namespace: config.watch_namespace.clone(),
                api_timeout: API_TIMEOUT,
                instance: identity.clone(),
            };
            let allocator = Allocator::new(client.clone(), sm.clone(), gate.clone(), tx.clone(), settings);
            tasks.spawn("partition allocator", allocator.run(leading.clone()));
        }
        // Checking the subnet manager ends once it answers: not a core task, but stopped with the rest.
        let validate = tokio::spawn(validate_sm(sm.clone()));

        let settings = TaskSettings {
            max_retry: config.periodic_update,
            drift_grace: config.lease.duration,
            sm_timeout: sm_timeout(sm.as_ref()),
            api_timeout: API_TIMEOUT,
            patch_concurrency: PATCH_CONCURRENCY,
            watch_namespace: config.watch_namespace.clone(),
        };
        let deps = Dependencies {
            sm,
            client,
            gate,
            metrics,
            event_instance: identity,
            events_dropped,
            ready: ready_tx,
            stop: stop_rx,
            settings,
        };
        let task = StateTask::new(State::with_policy(config.guid_range, config.policy.clone()), (tx, rx), deps);
        tasks.spawn("state", task.run());
        Ok(Controller { admin_address, leading, ready, stop, elector, admin, validate, tasks })
    }

    /// The address the admin server actually listens on (useful when the configured port was 0).
    pub fn admin_address(&self) -> SocketAddr {
        self.admin_address
    }

    /// Follows whether this replica currently holds the leadership.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Follows whether pods and NADs have been listed once, what `/readyz` reports.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    /// Resolves when a core task has ended on its own, saying which: the caller exits non-zero. After it
    /// has resolved, drop the controller instead of calling [`shutdown`](Self::shutdown).
    pub async fn failed(&mut self) -> String {
        tokio::select! {
            ended = self.tasks.first_ended() => ended,
            _ = &mut self.elector => "the leader election task ended".to_owned(),
            _ = &mut self.admin => "the admin server ended".to_owned(),
        }
    }

    /// Graceful stop: writes stop, the lease is released so that a follower takes over at once, then the
    /// watches and the state task end.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        let _ = (&mut self.elector).await;
        let _ = (&mut self.admin).await;
        self.validate.abort();
        self.tasks.stop().await;
        info!("stopped");
    }
}

impl Drop for Controller {
    /// Dropped without `shutdown`: every task stops at once, as if the process died (the lease is not
    /// released and expires on its own).
    fn drop(&mut self) {
        self.elector.abort();
        self.admin.abort();
        self.validate.abort();
        self.tasks.abort_all();
    }
}

/// The bound on one subnet-manager call: the manager's own longest call (its timeouts, any wait for a
/// plugin slot) plus a margin, so that its own clearer error wins; the lease time left bounds it further.
fn sm_timeout(sm: &dyn SubnetManager) -> Duration {
    sm.call_timeout() + Duration::from_secs(2)
}

async fn forward_leadership(mut leading: watch::Receiver<bool>, tx: mpsc::Sender<Input>) {
    loop {
        let now = *leading.borrow_and_update();
        if tx.send(Input::Leading(now)).await.is_err() || leading.changed().await.is_err() {
            return;
        }
    }
}

async fn resync_timer(every: Duration, tx: mpsc::Sender<Input>) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if tx.send(Input::Resync).await.is_err() {
            return;
        }
    }
}

/// Checks the subnet manager is reachable and the credentials work; keeps trying, loudly, because a
/// replica that cannot reach it can still follow and be ready.
async fn validate_sm(sm: Arc<dyn SubnetManager>) {
    let mut delay = Duration::from_secs(1);
    loop {
        match sm.validate().await {
            Ok(()) => {
                info!(subnet_manager = sm.name(), "subnet manager reachable");
                return;
            }
            Err(e) => {
                warn!(subnet_manager = sm.name(), error = %e, retry_in_s = delay.as_secs(), "subnet manager not usable")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_core_task_that_panics_or_ends_is_noticed() {
        let mut tasks = CoreTasks::default();
        tasks.spawn("idle", std::future::pending());
        tasks.spawn("state", async { panic!("decision state broken") });
        assert_eq!(tasks.first_ended().await, "the state task panicked");
        let mut tasks = CoreTasks::default();
        tasks.spawn("pod watch", async {});
        assert_eq!(tasks.first_ended().await, "the pod watch task ended");
    }
}
