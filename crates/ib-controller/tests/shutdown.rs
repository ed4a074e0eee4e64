//! A stopped controller leaves nothing of its state task running: the subnet-manager calls, patches,
//! lists, retry timers and the Events sender it started are stopped with it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Cluster, IB5, wait_for};
use ib_controller::Controller;
use ib_model::{Guid, PKey};
use ib_sm::{BoxFuture, SmError, SubnetManager};

/// A subnet manager whose writes never answer; `running` counts the writes not yet dropped.
#[derive(Debug)]
struct Stuck {
    inner: Arc<dyn SubnetManager>,
    running: Arc<AtomicUsize>,
}

/// Counts one running write until it is dropped.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Stuck {
    fn hang(&self) -> BoxFuture<'_, Result<(), SmError>> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let running = Running(self.running.clone());
        Box::pin(async move {
            std::future::pending::<()>().await;
            drop(running);
            Ok(())
        })
    }
}

impl SubnetManager for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn validate(&self) -> BoxFuture<'_, Result<(), SmError>> {
        self.inner.validate()
    }
    fn add_guids<'a>(&'a self, _: PKey, _: &'a [Guid]) -> BoxFuture<'a, Result<(), SmError>> {
        self.hang()
    }
    fn remove_guids<'a>(&'a self, _: PKey, _: &'a [Guid]) -> BoxFuture<'a, Result<(), SmError>> {
        self.hang()
    }
    fn list_guids(&self) -> BoxFuture<'_, Result<Vec<(String, Guid)>, SmError>> {
        self.inner.list_guids()
    }
    fn call_timeout(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

/// A controller replica leading on a lease long enough that only stopping the controller can end a
/// stuck write (a write may otherwise last only as long as the lease it started under), once one of
/// its subnet-manager writes is stuck; and the count of its running writes.
async fn with_a_stuck_write(cluster: &Cluster) -> (Controller, Arc<AtomicUsize>) {
    cluster.nad("default", "ib", IB5);
    let running = Arc::new(AtomicUsize::new(0));
    let sm = Arc::new(Stuck { inner: cluster.ufm_client(), running: running.clone() });
    let lease = [("LEADER_LEASE_DURATION", "300"), ("LEADER_RENEW_DEADLINE", "200"), ("LEADER_RETRY_PERIOD", "1")];
    let controller = Controller::start(cluster.config("a", &lease), cluster.client(), sm).await.expect("start");
    let mut leading = controller.leading();
    tokio::time::timeout(common::DEADLINE, leading.wait_for(|l| *l)).await.expect("leads in time").expect("leading");
    cluster.pod("default", "a", "ib");
    wait_for("a subnet-manager write in flight", || (running.load(Ordering::SeqCst) > 0).then_some(())).await;
    (controller, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_task_of_the_state_task() {
    let cluster = Cluster::start().await;
    let (controller, running) = with_a_stuck_write(&cluster).await;
    controller.shutdown().await;
    assert_eq!(running.load(Ordering::SeqCst), 0, "subnet-manager writes still running after shutdown");
}

/// Dropped without a shutdown (as when the process is torn down in a test), the tasks are aborted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_controller_leaves_no_task_running() {
    let cluster = Cluster::start().await;
    let (controller, running) = with_a_stuck_write(&cluster).await;
    drop(controller);
    wait_for("every subnet-manager write stopped", || (running.load(Ordering::SeqCst) == 0).then_some(())).await;
}
