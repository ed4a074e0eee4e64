//! A controller starting (as after an upgrade or a failover) in a cluster that already holds many
//! configured pods whose GUIDs are in UFM: how soon is a newly created pod configured?

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{CONFIGURE_DEADLINE, ScenarioError, not_configured};
use crate::cluster::{CONTROLLER_NAMESPACE, Cluster, UfmAdds};
use crate::process::Usage;
use crate::report::{Machine, mib, table};

const POLL: Duration = Duration::from_millis(10);
const NEWCOMER: &str = "newcomer";

#[derive(Debug, Clone)]
pub struct LeaderStartOptions {
    pub pods: usize,
    pub pkeys: u16,
}

impl Default for LeaderStartOptions {
    fn default() -> Self {
        LeaderStartOptions { pods: 100_000, pkeys: 4 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaderStartReport {
    pub machine: Machine,
    pub configured_pods: usize,
    /// Process start → the lease is held.
    pub lease_seconds: f64,
    /// Process start → the pod created at process start reads configured.
    pub new_pod_configured_seconds: f64,
    /// The controller's CPU time from its start until then: the rebuild from the LISTs.
    pub controller_cpu_seconds: f64,
    pub controller_at_configured: Usage,
    /// UFM adds sent during the start: only the new pod's GUID should be added.
    pub ufm_adds: UfmAdds,
    /// The new pod's GUID was not one already held by a seeded pod.
    pub new_guid_unique: bool,
    /// Every API request the controller made from its start until the new pod read configured.
    #[serde(default)]
    pub api_requests: u64,
}

pub async fn run(bench: &super::Bench, options: &LeaderStartOptions) -> Result<LeaderStartReport, ScenarioError> {
    let cluster = Cluster::start(options.pkeys).await?;
    let seeded = cluster.seed("old", options.pods, 0)?;
    let seeded_guids = cluster.ufm_memberships();
    let observer = cluster.observer();
    let adds_before = cluster.ufm_adds();
    let requests_before = cluster.api_requests();

    let started = Instant::now();
    let mut controller = bench.spawn_controller(&cluster, "leader-start")?;
    observer.created(NEWCOMER);
    cluster.create_ib_pod(NEWCOMER, seeded.len(), 0)?;
    let mut lease_seconds = None;
    let deadline = tokio::time::Instant::now() + CONFIGURE_DEADLINE;
    while !observer.is_configured(NEWCOMER) {
        controller.check_alive()?;
        if lease_seconds.is_none() && holder(&cluster).is_some() {
            lease_seconds = Some(started.elapsed().as_secs_f64());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(not_configured("the new pod", 0, 1, &controller));
        }
        tokio::time::sleep(POLL).await;
    }
    let controller_at_configured = controller.usage()?;
    let configured_at = observer.configured(NEWCOMER).map(|c| c.at).unwrap_or_else(Instant::now);
    let new_pod_configured_seconds = configured_at.saturating_duration_since(started).as_secs_f64();
    let guids = observer.configured(NEWCOMER).map(|c| c.guids).unwrap_or_default();
    let new_guid_unique = !guids.is_empty() && guids.iter().all(|g| !seeded_guids.iter().any(|(_, s)| s == g));
    Ok(LeaderStartReport {
        machine: Machine::this(),
        configured_pods: options.pods,
        lease_seconds: lease_seconds.unwrap_or(new_pod_configured_seconds),
        new_pod_configured_seconds,
        controller_cpu_seconds: controller_at_configured.cpu_seconds,
        controller_at_configured,
        ufm_adds: cluster.ufm_adds().since(adds_before),
        new_guid_unique,
        api_requests: cluster.api_requests().saturating_sub(requests_before),
    })
}

fn holder(cluster: &Cluster) -> Option<String> {
    cluster
        .api()
        .get(kube_emulator::Resource::Leases, CONTROLLER_NAMESPACE, ib_controller::leader::LEASE_NAME)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
}

impl LeaderStartReport {
    pub fn table(&self) -> String {
        let rows = vec![
            vec!["configured pods already in the cluster".into(), self.configured_pods.to_string()],
            vec!["process start -> lease held".into(), format!("{:.2} s", self.lease_seconds)],
            vec!["process start -> new pod configured".into(), format!("{:.2} s", self.new_pod_configured_seconds)],
            vec!["controller CPU until then".into(), format!("{:.2} s", self.controller_cpu_seconds)],
            vec![
                "controller RSS then (peak)".into(),
                format!(
                    "{} ({})",
                    mib(self.controller_at_configured.rss_bytes),
                    mib(self.controller_at_configured.peak_rss_bytes)
                ),
            ],
            vec![
                "UFM adds during the start".into(),
                format!("{} requests, {} GUIDs", self.ufm_adds.requests, self.ufm_adds.guids),
            ],
            vec![format!("new GUID distinct from the {} held", self.configured_pods), self.new_guid_unique.to_string()],
        ];
        format!("leader start\n{}\n{}", self.machine.line(), table(&["", "value"], &rows))
    }
}
