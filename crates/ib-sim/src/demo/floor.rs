//! The floor: what one pod costs at the least, measured against the same emulators in the same run —
//! one bare pod PATCH through a Kubernetes client plus one UFM add through the controller's own UFM
//! client, back to back. Pod-to-configured latency is reported as a multiple of it.

use std::time::{Duration, Instant};

use ib_model::{Guid, PKey};
use ib_sm::SubnetManager;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube_emulator::{EmulatorHandle, Resource};
use serde_json::json;
use ufm_emulator::UfmHandle;

use super::stats::median_ms;

/// Samples taken; the median of ~20 is stable against a scheduler hiccup on a loaded machine.
const SAMPLES: usize = 21;
/// Untimed rounds first, so connection set-up and TLS handshakes are not counted.
const WARM_UP: usize = 3;
/// A partition and GUIDs the demo never uses, outside the pool range, removed afterwards.
const PROBE_PKEY: u16 = 0x0fff;
const PROBE_GUID_BASE: u64 = 0x0300_0000_0000_0000;
const PROBE_NAMESPACE: &str = "ib-demo-floor";
const PROBE_POD: &str = "floor-probe";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Floor {
    pub samples: usize,
    /// Median of PATCH + add.
    pub total_ms: f64,
    pub patch_ms: f64,
    pub ufm_add_ms: f64,
}

/// Why a floor measurement (this one, or a benchmark's) failed.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// The probe pods could not be created.
    #[error("creating the probe pod: {0}")]
    Probe(#[source] Box<kube_emulator::ApiError>),
    /// A probe PATCH failed.
    #[error("probe PATCH: {0}")]
    Patch(#[source] kube::Error),
    /// A probe UFM add failed.
    #[error("probe UFM add: {0}")]
    Add(#[source] ib_sm::SmError),
    /// A probe call overran its deadline.
    #[error("probe {call} took longer than {limit:?}")]
    Timeout {
        /// `PATCH` or `UFM add`.
        call: &'static str,
        /// The deadline.
        limit: Duration,
    },
}

/// A probe PATCH of the pod `name` with `body`, bounded by `limit`.
pub async fn probe_patch(
    pods: &Api<Pod>,
    name: &str,
    body: &serde_json::Value,
    limit: Duration,
) -> Result<Pod, FloorError> {
    tokio::time::timeout(limit, pods.patch(name, &PatchParams::default(), &Patch::Merge(body)))
        .await
        .map_err(|_| FloorError::Timeout { call: "PATCH", limit })?
        .map_err(FloorError::Patch)
}

/// A probe UFM add of `guids` to `pkey`, bounded by `limit`.
pub async fn probe_add(sm: &dyn SubnetManager, pkey: PKey, guids: &[Guid], limit: Duration) -> Result<(), FloorError> {
    tokio::time::timeout(limit, sm.add_guids(pkey, guids))
        .await
        .map_err(|_| FloorError::Timeout { call: "UFM add", limit })?
        .map_err(FloorError::Add)
}

/// Measures the floor and leaves no trace: the probe pod is deleted, the probe partition removed and
/// the UFM request log cleared, so the demo's own counts start from zero. `pause` is slept between
/// rounds: zero measures a busy pipeline; a pause as long as the gap between pods measures what one
/// pod costs when every thread on the way has gone idle and must be woken.
pub async fn measure(
    client: kube::Client,
    sm: &dyn SubnetManager,
    api: &EmulatorHandle,
    ufm: &UfmHandle,
    pause: Duration,
) -> Result<Floor, FloorError> {
    let probe = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": PROBE_POD, "namespace": PROBE_NAMESPACE},
        "spec": {"containers": [{"name": "probe", "image": "registry.example/probe:1"}]}
    });
    api.create(Resource::Pods, probe).map_err(|e| FloorError::Probe(Box::new(e)))?;
    let pods: Api<Pod> = Api::namespaced(client, PROBE_NAMESPACE);
    let pkey = PKey::new(u32::from(PROBE_PKEY)).unwrap_or_else(|_| unreachable!("0x0fff is a valid partition"));

    let (mut patches, mut adds, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..WARM_UP + SAMPLES {
        if round > 0 {
            tokio::time::sleep(pause).await;
        }
        let body = json!({"metadata": {"annotations": {"ib-demo/probe": round.to_string()}}});
        let started = Instant::now();
        probe_patch(&pods, PROBE_POD, &body, CALL_TIMEOUT).await?;
        let patched = Instant::now();
        let guid = [Guid::from_u64(PROBE_GUID_BASE + round as u64)];
        probe_add(sm, pkey, &guid, CALL_TIMEOUT).await?;
        let added = Instant::now();
        if round >= WARM_UP {
            patches.push(patched - started);
            adds.push(added - patched);
            totals.push(added - started);
        }
    }
    let _ = api.delete_with_grace(Resource::Pods, PROBE_NAMESPACE, PROBE_POD, Some(0));
    ufm.remove_partition(PROBE_PKEY);
    ufm.clear_requests();
    Ok(Floor {
        samples: SAMPLES,
        total_ms: median_ms(&totals),
        patch_ms: median_ms(&patches),
        ufm_add_ms: median_ms(&adds),
    })
}
