//! The floor for a gang job: the least time any controller could take to make every pod of the job
//! ready, measured against the same emulators, in the same run, with the same UFM service settings.
//!
//! It is the sum of three parts, because each must follow the one before for the last pod:
//! 1. One subnet-manager round trip for the whole job: one UFM add per partition the job uses, each
//!    carrying every GUID of the job on that partition, all sent at once (UFM's slots decide how many
//!    are served together), through the controller's own UFM client.
//! 2. The apply delay: how long UFM takes after answering before the change holds on the fabric. The
//!    emulator applies a change before it answers, so this is 0 here, and is kept as its own term.
//! 3. The pod patches the API server must take: one PATCH per pod (all of its interfaces in one), of
//!    the size the controller writes, sent with [`PATCH_IN_FLIGHT`] in flight as the controller does,
//!    through a Kubernetes client, to pods in a namespace no benchmark pod is in.
//!
//! Each part is the median of [`ROUNDS`] rounds (after one untimed round that opens the connections).

use std::time::{Duration, Instant};

use futures::StreamExt;
use ib_model::{Guid, PKey};
use ib_sim::demo::floor::{FloorError, probe_add, probe_patch};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube_emulator::Resource;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ScenarioError;
use crate::cluster::Cluster;
use crate::rails::{Layout, configured_networks};

pub const ROUNDS: usize = 3;
/// The controller's own limit on pod patches in flight.
pub const PATCH_IN_FLIGHT: usize = 32;
/// Partitions and GUIDs no benchmark pod uses (outside the pool), removed afterwards.
const PROBE_PKEY_BASE: u16 = 0x0f00;
const PROBE_GUID_BASE: u64 = 0x0300_0000_0000_0000;
const PROBE_NAMESPACE: &str = "ib-bench-floor";
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JobFloor {
    /// UFM adds in the round trip, and the GUIDs they carried in all.
    pub sm_requests: usize,
    pub sm_guids: usize,
    pub sm_ms: f64,
    pub apply_delay_ms: f64,
    pub patches: usize,
    pub patches_ms: f64,
    /// `sm_ms + apply_delay_ms + patches_ms`.
    pub total_ms: f64,
}

/// Measures the floor of a job of `pods` pods with `rails` interfaces laid out as `layout`. `label`
/// keeps the probe pods of several measurements in one cluster apart.
pub async fn measure(
    cluster: &Cluster,
    label: &str,
    pods: usize,
    rails: usize,
    layout: Layout,
) -> Result<JobFloor, ScenarioError> {
    let (client, sm) = super::own_clients(cluster).await?;

    // The job's GUIDs by partition, as the controller would send them.
    let mut by_pkey: std::collections::BTreeMap<u16, Vec<Guid>> = std::collections::BTreeMap::new();
    for p in 0..pods {
        for r in 0..rails {
            let probe_pkey = PROBE_PKEY_BASE + layout.pkey_index(0, r);
            by_pkey.entry(probe_pkey).or_default().push(Guid::from_u64(PROBE_GUID_BASE + (p * rails + r) as u64));
        }
    }
    let mut sm_times = Vec::new();
    for round in 0..=ROUNDS {
        let started = Instant::now();
        let adds = by_pkey.iter().map(|(pkey, guids)| {
            let pkey = PKey::new(u32::from(*pkey)).unwrap_or_else(|_| unreachable!("0x0f00.. are valid partitions"));
            let sm = &sm;
            async move { probe_add(sm.as_ref(), pkey, guids, CALL_TIMEOUT).await }
        });
        futures::future::try_join_all(adds).await.map_err(floor_error)?;
        if round > 0 {
            sm_times.push(started.elapsed());
        }
    }
    let ufm = cluster.ufm.handle();
    for pkey in by_pkey.keys() {
        ufm.remove_partition(*pkey);
    }

    // Probe pods with no networks annotation: the controller drops them at once.
    let namespace = format!("{PROBE_NAMESPACE}-{label}");
    let names: Vec<String> = (0..pods).map(|i| format!("probe-{i}")).collect();
    let objects = names.iter().map(|name| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "probe", "image": "registry.example/probe:1"}]}
        })
    });
    cluster.api().seed(Resource::Pods, objects).map_err(|e| floor_error(FloorError::Probe(Box::new(e))))?;
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let guids: Vec<Guid> = (0..rails as u64).map(|k| Guid::from_u64(PROBE_GUID_BASE + k)).collect();
    let text = configured_networks(layout, 0, &guids);
    let mut patch_times = Vec::new();
    for round in 0..=ROUNDS {
        // As large as the controller's patch, and different each round so that every PATCH changes the pod.
        let body = json!({"metadata": {"annotations": {"ib-bench/probe": format!("{round}{text}")}}});
        let started = Instant::now();
        let results: Vec<Result<Pod, FloorError>> = futures::stream::iter(names.iter())
            .map(|name| probe_patch(&api, name, &body, CALL_TIMEOUT))
            .buffer_unordered(PATCH_IN_FLIGHT)
            .collect()
            .await;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(floor_error(e));
        }
        if round > 0 {
            patch_times.push(started.elapsed());
        }
    }
    let sm_ms = ib_sim::demo::stats::median_ms(&sm_times);
    let patches_ms = ib_sim::demo::stats::median_ms(&patch_times);
    let apply_delay_ms = 0.0;
    Ok(JobFloor {
        sm_requests: by_pkey.len(),
        sm_guids: pods * rails,
        sm_ms,
        apply_delay_ms,
        patches: pods,
        patches_ms,
        total_ms: sm_ms + apply_delay_ms + patches_ms,
    })
}

fn floor_error(e: FloorError) -> ScenarioError {
    ScenarioError::JobFloor(Box::new(e))
}
