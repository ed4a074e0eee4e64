//! The benchmark scenarios. Each starts its own emulated cluster and controller process, so scenarios
//! never see each other's pods, and returns a report that serializes to JSON and prints as a table.

pub mod churn;
pub mod efficiency;
pub mod gang;
pub mod gang_mix;
pub mod gpu_start;
pub mod job_floor;
pub mod latency;
pub mod leader_start;
pub mod memory;
pub mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use ib_sim::demo::floor::{self, Floor};
use std::sync::Arc;

use ib_sm::{EnvMap, SubnetManager};

use crate::cluster::{Cluster, ClusterError};
use crate::controller_kind::ControllerKind;
use crate::process::{ControllerProcess, ProcessError};
use ib_sim::demo::observer::Observer;

/// Generous for a loaded 2-core machine: far above what a healthy run needs, so a deadline is only hit
/// when something is wrong, and then the report says so instead of hanging.
pub const LEAD_DEADLINE: Duration = Duration::from_secs(60);
pub const CONFIGURE_DEADLINE: Duration = Duration::from_secs(300);
/// The Go daemon patches pods one by one through client-go's default rate limit (20 requests/s), so a
/// burst of 10,000 pods needs more than eight minutes there.
pub const GO_CONFIGURE_DEADLINE: Duration = Duration::from_secs(1800);

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("the benchmark's own client configuration is invalid: {0}")]
    Config(String),
    #[error("building the benchmark's own clients: {0}")]
    Startup(#[from] ib_controller::startup::StartupError),
    #[error("measuring the floor: {0}")]
    Floor(#[from] floor::FloorError),
    #[error("measuring the job floor: {0}")]
    JobFloor(#[source] Box<floor::FloorError>),
    #[error("measuring the watch delay: {0}")]
    WatchDelay(#[from] crate::watch_delay::WatchDelayError),
    #[error("{what} not configured within {deadline:?} ({done} of {expected}); the controller's log is {log}")]
    NotConfigured { what: String, done: usize, expected: usize, deadline: Duration, log: PathBuf },
    #[error("invalid option {option}={value}: {reason}")]
    Option { option: &'static str, value: String, reason: &'static str },
}

/// Where the controller binary is, and what every scenario shares.
#[derive(Debug, Clone)]
pub struct Bench {
    pub controller: PathBuf,
    /// Controller logs go here, one file per process.
    pub logs: PathBuf,
    /// Which daemon `controller` is.
    pub kind: ControllerKind,
}

impl Bench {
    /// Starts a controller process whose log is `<logs>/<label>.log`.
    pub fn spawn_controller(&self, cluster: &Cluster, label: &str) -> Result<ControllerProcess, ScenarioError> {
        std::fs::create_dir_all(&self.logs).map_err(|source| ProcessError::Log { path: self.logs.clone(), source })?;
        Ok(cluster.spawn_controller(&self.controller, &self.kind, self.logs.join(format!("{label}.log")))?)
    }

    /// How long a large batch of pods may take to be configured by this kind of controller.
    pub fn configure_deadline(&self) -> Duration {
        match self.kind {
            ControllerKind::Ours => CONFIGURE_DEADLINE,
            ControllerKind::Go { .. } => GO_CONFIGURE_DEADLINE,
        }
    }

    /// Starts the controller against `cluster`, waits until it leads, and warms it up with one pod so
    /// that connection set-up is not counted in what follows.
    pub async fn leading_controller(
        &self,
        cluster: &Cluster,
        label: &str,
    ) -> Result<(ControllerProcess, Observer), ScenarioError> {
        let observer = cluster.observer();
        let mut controller = self.spawn_controller(cluster, label)?;
        cluster.wait_leading(&mut controller, LEAD_DEADLINE).await?;
        cluster.create_ib_pod("warm-up", 0, 0)?;
        if !observer.wait_pod("warm-up", CONFIGURE_DEADLINE).await {
            return Err(not_configured("the warm-up pod", 0, 1, &controller));
        }
        Ok((controller, observer))
    }
}

pub fn not_configured(what: &str, done: usize, expected: usize, controller: &ControllerProcess) -> ScenarioError {
    ScenarioError::NotConfigured {
        what: what.to_owned(),
        done,
        expected,
        deadline: CONFIGURE_DEADLINE,
        log: controller.log().to_owned(),
    }
}

/// A scenario run in steps needs at least one (`--steps`).
pub fn require_steps(steps: &[usize]) -> Result<(), ScenarioError> {
    if steps.is_empty() {
        return Err(ScenarioError::Option {
            option: "--steps",
            value: String::new(),
            reason: "at least one pod count",
        });
    }
    Ok(())
}

/// The benchmark's own Kubernetes client and subnet manager, built as the controller builds them from
/// the environment it gets.
pub async fn own_clients(cluster: &Cluster) -> Result<(kube::Client, Arc<dyn SubnetManager>), ScenarioError> {
    let env: EnvMap = cluster.controller_env().into_iter().collect();
    let config = ib_controller::Config::from_env(&env, None).map_err(|e| ScenarioError::Config(e.to_string()))?;
    let client = ib_controller::startup::kube_client(&env).await?;
    Ok((client, ib_controller::startup::subnet_manager(&config)?))
}

/// The floor against this cluster: one bare pod PATCH through a Kubernetes client plus one UFM add
/// through the controller's own UFM client, median of a few rounds `pause` apart, measured from this
/// process.
pub async fn measure_floor(cluster: &Cluster, pause: Duration) -> Result<Floor, ScenarioError> {
    let (client, sm) = own_clients(cluster).await?;
    Ok(floor::measure(client, sm.as_ref(), &cluster.api(), &cluster.ufm.handle(), pause).await?)
}

/// The watch delay against this cluster (see [`crate::watch_delay`]).
pub async fn measure_watch_delay(cluster: &Cluster) -> Result<f64, ScenarioError> {
    let (client, _) = own_clients(cluster).await?;
    Ok(crate::watch_delay::measure(client, &cluster.api()).await?)
}
