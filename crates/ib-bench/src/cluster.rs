//! The emulated cluster a benchmark runs against, in this process: the Kubernetes API emulator, the UFM
//! emulator (plain HTTP: the TLS handshake is paid once per connection and is not what is measured),
//! NADs for a few partitions, and the environment that points a controller process at them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ib_controller::leader::LEASE_NAME;
use ib_model::{Guid, NetworkRef};
use ib_sim::demo::observer::Observer;
use ib_sim::fixture::EmulatedCluster;
use ib_sim::workload::IbNetworks;
use kube_emulator::{EmulatorConfig, EmulatorHandle, Resource};
use serde_json::{Value, json};
use ufm_emulator::{Endpoint, Member, UfmConfig};

use crate::controller_kind::ControllerKind;
use crate::process::{ControllerProcess, ProcessError};

pub const NAMESPACE: &str = "bench";
pub const CONTROLLER_NAMESPACE: &str = "kube-system";
pub const POOL_START: &str = "02:00:00:00:00:00:00:00";
pub const POOL_END: &str = "02:00:00:00:ff:ff:ff:ff";
/// Where the seeded, already configured pods' GUIDs start: inside the pool, as GUIDs the controller
/// itself handed out before a restart would be.
const SEEDED_GUID_BASE: u64 = 0x0200_0000_0000_0001;
/// PKeys of the benchmark's partitions: 0x10, 0x11, ...
const FIRST_PKEY: u16 = 0x10;
const NODES: usize = 64;
const UFM_PASSWORD: &str = "bench-password";
const LEAD_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error(transparent)]
    Emulators(#[from] ib_sim::fixture::FixtureError),
    #[error("creating {what}: {source}")]
    Create { what: String, source: Box<kube_emulator::ApiError> },
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("the controller did not take the lease within {0:?}; its log is {1}")]
    NotLeading(Duration, PathBuf),
}

/// Both emulators and the NADs of `pkeys` partitions; derefs to the shared fixture for the emulators.
pub struct Cluster {
    dir: tempfile::TempDir,
    emulators: EmulatedCluster,
    pkeys: u16,
}

impl std::ops::Deref for Cluster {
    type Target = EmulatedCluster;

    fn deref(&self) -> &EmulatedCluster {
        &self.emulators
    }
}

impl Cluster {
    pub async fn start(pkeys: u16) -> Result<Cluster, ClusterError> {
        let dir = tempfile::Builder::new().prefix("ib-bench-").tempdir().map_err(ClusterError::TempDir)?;
        let config = EmulatorConfig {
            // Room for a whole burst of changes, so neither the controller's watch nor the observer
            // falls behind and has to re-list in the middle of a measurement.
            history_capacity: 1 << 18,
            watch_queue_capacity: 1 << 18,
            // Every request of a burst, so that record writes and pod patches can be counted from it.
            request_log_capacity: 1 << 18,
            ..EmulatorConfig::default()
        };
        let mut emulators = EmulatedCluster::start(config, UfmConfig::http(), UFM_PASSWORD).await?;
        emulators.write_kubeconfig(&dir.path().join("kubeconfig"))?;
        let cluster = Cluster { dir, emulators, pkeys };
        for i in 0..pkeys {
            let name = network(i);
            let config = format!(
                r#"{{"cniVersion":"0.3.1","name":"{name}","type":"ib-sriov","pkey":"0x{:x}","ibKubernetesEnabled":true,"ipam":{{}}}}"#,
                FIRST_PKEY + i
            );
            let nad = json!({
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"config": config}
            });
            cluster
                .api()
                .create(Resource::NetworkAttachmentDefinitions, nad)
                .map_err(|e| ClusterError::Create { what: format!("NAD {name}"), source: Box::new(e) })?;
        }
        Ok(cluster)
    }

    pub fn api(&self) -> EmulatorHandle {
        self.kube.handle()
    }

    pub fn pkeys(&self) -> u16 {
        self.pkeys
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment a deployment would give the controller, pointing at these emulators.
    pub fn controller_env(&self) -> Vec<(String, String)> {
        let mut env = self.emulators.controller_env("ib-kubernetes-bench");
        env.set("GUID_POOL_RANGE_START", POOL_START);
        env.set("GUID_POOL_RANGE_END", POOL_END);
        env.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            // For experiments, these pass through from the benchmark's own environment: the log level, the
            // runtime's threads, glibc's arenas, how often the controller re-reads the subnet manager, and
            // whether it reads a UFM change back before counting it done.
            .chain(
                [
                    "RUST_LOG",
                    "TOKIO_WORKER_THREADS",
                    "MALLOC_ARENA_MAX",
                    "DAEMON_RESYNC_INTERVAL",
                    "UFM_CONFIRM_APPLIED",
                ]
                .into_iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v))),
            )
            .collect()
    }

    /// Starts the controller binary of `kind` against this cluster, its log to `log`.
    pub fn spawn_controller(
        &self,
        binary: &Path,
        kind: &ControllerKind,
        log: PathBuf,
    ) -> Result<ControllerProcess, ClusterError> {
        Ok(ControllerProcess::spawn(binary, kind.args(), &kind.adapt_env(self.controller_env()), log)?)
    }

    /// Waits until the controller holds the lease.
    pub async fn wait_leading(&self, controller: &mut ControllerProcess, max: Duration) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            controller.check_alive()?;
            let holder = self
                .api()
                .get(Resource::Leases, CONTROLLER_NAMESPACE, LEASE_NAME)
                .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned));
            if holder.is_some_and(|h| !h.is_empty()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::NotLeading(max, controller.log().to_owned()));
            }
            tokio::time::sleep(LEAD_POLL).await;
        }
    }

    /// Creates a pod asking for one interface on partition `pkey_index`.
    pub fn create_ib_pod(&self, name: &str, index: usize, pkey_index: u16) -> Result<(), ClusterError> {
        self.api()
            .create(Resource::Pods, ib_pod(name, index, pkey_index))
            .map(drop)
            .map_err(|e| ClusterError::Create { what: format!("pod {name}"), source: Box::new(e) })
    }

    /// Loads `ib` pods already configured (annotation with GUID and the configured marker, GUID a
    /// member of its partition in UFM), as a controller before a restart would have left them, and
    /// `plain` pods with no extra network. Returns their names.
    pub fn seed(&self, prefix: &str, ib: usize, plain: usize) -> Result<Vec<String>, ClusterError> {
        let pkeys = usize::from(self.pkeys.max(1));
        let mut names = Vec::with_capacity(ib + plain);
        let mut members: Vec<Vec<(ufm_emulator::Guid, Member)>> = vec![Vec::new(); pkeys];
        let mut objects = Vec::with_capacity(ib + plain);
        for i in 0..ib {
            let name = format!("{prefix}-ib-{i}");
            let p = i % pkeys;
            let guid = Guid::from_u64(SEEDED_GUID_BASE + i as u64);
            members[p].push((ufm_emulator::Guid::from(guid.as_u64()), Member::default()));
            objects.push(configured_pod(&name, i, p as u16, guid));
            names.push(name);
        }
        for i in 0..plain {
            let name = format!("{prefix}-plain-{i}");
            objects.push(pod(&name, i, None));
            names.push(name);
        }
        self.api()
            .seed(Resource::Pods, objects)
            .map_err(|e| ClusterError::Create { what: format!("seeded pods {prefix}-*"), source: Box::new(e) })?;
        if std::env::var_os("IB_BENCH_NO_RECORDS").is_none() {
            self.seed_records(&names[..ib], pkeys)?;
        }
        let ufm = self.ufm.handle();
        for (p, members) in members.into_iter().enumerate() {
            ufm.seed_members(FIRST_PKEY + p as u16, members);
        }
        Ok(names)
    }

    /// The ownership records a controller would have written for the seeded InfiniBand pods (`names[i]`
    /// owns GUID `SEEDED_GUID_BASE + i`), so that a leader start reads them instead of importing.
    fn seed_records(&self, names: &[String], pkeys: usize) -> Result<(), ClusterError> {
        let api = self.api();
        let mut blocks: std::collections::BTreeMap<ib_model::BlockId, serde_json::Map<String, Value>> =
            std::collections::BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let guid = Guid::from_u64(SEEDED_GUID_BASE + i as u64);
            let uid = api
                .get(Resource::Pods, NAMESPACE, name)
                .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let p = (i % pkeys) as u16;
            let allocation = json!({
                "podUid": uid, "namespace": NAMESPACE, "pod": name,
                "network": format!("{NAMESPACE}/{}", network(p)), "interface": "net1",
                "pkey": format!("0x{:04x}", pkey_of(p)), "state": "Member",
            });
            blocks.entry(ib_model::BlockId::of(guid)).or_default().insert(guid.to_string(), allocation);
        }
        let objects = blocks.into_iter().map(|(block, allocations)| {
            json!({
                "apiVersion": "ib-kubernetes.mellanox.com/v1alpha1", "kind": "GuidBlock",
                "metadata": {"name": block.name()},
                "spec": {"start": block.start().to_string(), "allocations": allocations},
            })
        });
        api.seed(Resource::GuidBlocks, objects)
            .map_err(|e| ClusterError::Create { what: "seeded ownership records".into(), source: Box::new(e) })?;
        Ok(())
    }

    /// Ownership-record writes (GuidBlock creates, patches and deletes) and pod patches the API server
    /// has answered so far, from its request log.
    pub fn api_writes(&self) -> ApiWrites {
        let mut writes = ApiWrites::default();
        for r in self.api().requests() {
            let write = matches!(r.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE");
            if write && r.path.contains("/guidblocks") {
                writes.records += 1;
            } else if r.method == "PATCH" && r.path.contains("/pods/") {
                writes.pod_patches += 1;
            }
        }
        writes
    }

    /// HTTP requests the API server has received so far (the benchmark's own creates and its observer
    /// go through the emulator's handle, not HTTP, so during a scenario these are the controller's).
    pub fn api_requests(&self) -> u64 {
        self.api().request_count()
    }

    /// Successful UFM add requests so far and the GUIDs they carried, from the emulator's request log.
    pub fn ufm_adds(&self) -> UfmAdds {
        let mut adds = UfmAdds::default();
        for r in self.ufm.handle().requests_to(Endpoint::AddGuids) {
            if r.status != 200 {
                continue;
            }
            adds.requests += 1;
            adds.guids += serde_json::from_str::<Value>(&r.body)
                .ok()
                .and_then(|b| b.get("guids").and_then(Value::as_array).map(|g| g.len() as u64))
                .unwrap_or(0);
        }
        adds
    }

    /// Starts watching the benchmark's pods as a user would, noting when each reads configured.
    pub fn observer(&self) -> Observer {
        let ib: IbNetworks =
            (0..self.pkeys).map(|i| (NetworkRef::new(NAMESPACE, network(i)), Some(pkey_of(i)))).collect();
        Observer::start(self.api(), NAMESPACE, ib)
    }

    /// UFM's members of the benchmark partitions, as (pkey, GUID) pairs.
    pub fn ufm_memberships(&self) -> std::collections::BTreeSet<(u16, Guid)> {
        let ufm = self.ufm.handle();
        (0..self.pkeys)
            .flat_map(|i| {
                let pkey = FIRST_PKEY + i;
                // UFM's GUIDs are 8 bytes wide here: the controller only ever adds its own 8-byte GUIDs.
                ufm.members(pkey).into_keys().map(move |g| (pkey, Guid::from_u64(g.value() as u64)))
            })
            .collect()
    }
}

/// UFM add requests and the GUIDs they carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UfmAdds {
    pub requests: u64,
    pub guids: u64,
}

impl UfmAdds {
    /// The adds between `before` and `self`.
    pub fn since(self, before: UfmAdds) -> UfmAdds {
        UfmAdds {
            requests: self.requests.saturating_sub(before.requests),
            guids: self.guids.saturating_sub(before.guids),
        }
    }

    pub fn guids_per_request(self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.guids as f64 / self.requests as f64 }
    }
}

/// The NAD of partition `i`.
pub fn network(i: u16) -> String {
    format!("ib-{i}")
}

pub fn pkey_of(i: u16) -> u16 {
    FIRST_PKEY + i
}

pub(crate) fn pod(name: &str, index: usize, networks: Option<String>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "ib-bench"}},
        "spec": {
            "nodeName": format!("node-{}", index % NODES),
            "containers": [{"name": "app", "image": "registry.example/app:1"}]
        },
        "status": {"phase": "Pending"}
    });
    if let Some(networks) = networks {
        pod["metadata"]["annotations"] = json!({ ib_model::annotation::NETWORKS_ANNOTATION: networks });
    }
    pod
}

pub fn ib_pod(name: &str, index: usize, pkey_index: u16) -> Value {
    let networks = format!(r#"[{{"name":"{}","interface":"net1"}}]"#, network(pkey_index));
    pod(name, index, Some(networks))
}

fn configured_pod(name: &str, index: usize, pkey_index: u16, guid: Guid) -> Value {
    // As ib-kubernetes writes it: the GUID, the marker and the NAD's pkey in cni-args.
    let networks = format!(
        r#"[{{"name":"{}","interface":"net1","cni-args":{{"guid":"{guid}","{}":"{}","pkey":"0x{:x}"}}}}]"#,
        network(pkey_index),
        ib_model::annotation::CONFIGURED_KEY,
        ib_model::annotation::CONFIGURED_VALUE,
        pkey_of(pkey_index)
    );
    pod(name, index, Some(networks))
}

/// API writes counted from the API server's log.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ApiWrites {
    pub records: u64,
    pub pod_patches: u64,
}

impl ApiWrites {
    pub fn plus(self, other: ApiWrites) -> ApiWrites {
        ApiWrites { records: self.records + other.records, pod_patches: self.pod_patches + other.pod_patches }
    }

    pub fn since(self, before: ApiWrites) -> ApiWrites {
        ApiWrites {
            records: self.records.saturating_sub(before.records),
            pod_patches: self.pod_patches.saturating_sub(before.pod_patches),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_carry_the_annotation_the_controller_reads() {
        let p = configured_pod("a", 3, 1, Guid::from_u64(SEEDED_GUID_BASE));
        let raw = p["metadata"]["annotations"][ib_model::annotation::NETWORKS_ANNOTATION].as_str().unwrap();
        let parsed = ib_model::NetworksAnnotation::parse(raw, NAMESPACE).unwrap();
        let selection = &parsed.selections()[0];
        assert!(selection.configured);
        assert_eq!(selection.pkey.as_deref(), Some("0x11"));
        assert_eq!(selection.network, ib_model::NetworkRef::new(NAMESPACE, "ib-1"));
        assert_eq!(Guid::parse(&selection.guid.as_ref().unwrap().0).unwrap(), Guid::from_u64(SEEDED_GUID_BASE));
        assert_eq!(p["spec"]["nodeName"], "node-3");
        assert!(pod("b", 0, None)["metadata"].get("annotations").is_none());
    }
}
