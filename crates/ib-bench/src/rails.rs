//! GPU-cluster pods: one InfiniBand interface per GPU rail (`net1` … `net8`), either all on one
//! tenant partition or each rail on its own, created new or seeded as a controller before a restart
//! would have left them (annotation configured, GUID a member in UFM, ownership record written).

use std::collections::BTreeMap;

use ib_model::{BlockId, Guid};
use kube_emulator::Resource;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use ufm_emulator::Member;

use crate::cluster::{Cluster, ClusterError, NAMESPACE, network, pkey_of, pod};

/// GPUs, and so InfiniBand rails, of a typical training node.
pub const RAILS: usize = 8;
/// Where seeded GPU pods' GUIDs start: inside the pool, clear of the GUIDs a benchmark's new pods get
/// from the start of the pool.
const SEEDED_GUID_BASE: u64 = 0x0200_0000_1000_0000;

/// How a pod's rails map to partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Every rail on the same tenant partition.
    OnePkey,
    /// Rail `r` on partition `r`.
    PerRail,
}

impl Layout {
    pub fn label(self) -> &'static str {
        match self {
            Layout::OnePkey => "one PKey",
            Layout::PerRail => "a PKey per rail",
        }
    }

    /// Partitions the cluster needs for pods of `rails` rails whose tenant partition is below `tenants`.
    pub fn pkeys_needed(self, rails: usize, tenants: u16) -> u16 {
        match self {
            Layout::OnePkey => tenants.max(1),
            Layout::PerRail => u16::try_from(rails).unwrap_or(u16::MAX).max(tenants),
        }
    }

    /// The partition index of rail `rail` of a pod whose tenant partition is `tenant`.
    pub fn pkey_index(self, tenant: u16, rail: usize) -> u16 {
        match self {
            Layout::OnePkey => tenant,
            Layout::PerRail => u16::try_from(rail).unwrap_or(u16::MAX),
        }
    }
}

/// The networks annotation of a new pod with `rails` interfaces.
pub fn networks(rails: usize, layout: Layout, tenant: u16) -> String {
    let elements: Vec<Value> = (0..rails)
        .map(|r| json!({"name": network(layout.pkey_index(tenant, r)), "interface": format!("net{}", r + 1)}))
        .collect();
    Value::Array(elements).to_string()
}

/// The annotation as ib-kubernetes writes it once every rail is configured with `guids[r]`.
pub fn configured_networks(layout: Layout, tenant: u16, guids: &[Guid]) -> String {
    let elements: Vec<Value> = guids
        .iter()
        .enumerate()
        .map(|(r, guid)| {
            let p = layout.pkey_index(tenant, r);
            let mut args = Map::new();
            args.insert("guid".into(), json!(guid.to_string()));
            args.insert(ib_model::annotation::CONFIGURED_KEY.into(), json!(ib_model::annotation::CONFIGURED_VALUE));
            args.insert("pkey".into(), json!(format!("0x{:x}", pkey_of(p))));
            json!({"name": network(p), "interface": format!("net{}", r + 1), "cni-args": args})
        })
        .collect();
    Value::Array(elements).to_string()
}

/// A new pod asking for `rails` interfaces.
pub fn rail_pod(name: &str, index: usize, rails: usize, layout: Layout, tenant: u16) -> Value {
    pod(name, index, Some(networks(rails, layout, tenant)))
}

pub fn create_rail_pod(
    cluster: &Cluster,
    name: &str,
    index: usize,
    rails: usize,
    layout: Layout,
    tenant: u16,
) -> Result<(), ClusterError> {
    cluster
        .api()
        .create(Resource::Pods, rail_pod(name, index, rails, layout, tenant))
        .map(drop)
        .map_err(|e| ClusterError::Create { what: format!("pod {name}"), source: Box::new(e) })
}

/// What [`seed_gpu`] loaded.
#[derive(Debug, Clone, Default)]
pub struct SeededGpu {
    pub pods: usize,
    pub guids: usize,
}

/// Loads `single` configured pods with one interface and `multi` with `rails` interfaces on one tenant
/// partition each (tenants round-robin over the cluster's partitions), their GUIDs members in UFM
/// and their ownership records written, as a controller before a restart would have left them.
pub fn seed_gpu(cluster: &Cluster, single: usize, multi: usize, rails: usize) -> Result<SeededGpu, ClusterError> {
    let tenants = usize::from(cluster.pkeys().max(1));
    let mut next_guid = SEEDED_GUID_BASE;
    let mut objects = Vec::with_capacity(single + multi);
    // (pod name, tenant, its GUIDs)
    let mut owned: Vec<(String, u16, Vec<Guid>)> = Vec::with_capacity(single + multi);
    let mut members: Vec<Vec<(ufm_emulator::Guid, Member)>> = vec![Vec::new(); tenants];
    for i in 0..single + multi {
        let width = if i < single { 1 } else { rails };
        let name = format!("gpu-{i}");
        let tenant = (i % tenants) as u16;
        let guids: Vec<Guid> = (0..width as u64).map(|k| Guid::from_u64(next_guid + k)).collect();
        next_guid += width as u64;
        members[usize::from(tenant)]
            .extend(guids.iter().map(|g| (ufm_emulator::Guid::from(g.as_u64()), Member::default())));
        objects.push(pod(&name, i, Some(configured_networks(Layout::OnePkey, tenant, &guids))));
        owned.push((name, tenant, guids));
    }
    let api = cluster.api();
    api.seed(Resource::Pods, objects)
        .map_err(|e| ClusterError::Create { what: "seeded GPU pods".into(), source: Box::new(e) })?;
    let mut blocks: BTreeMap<BlockId, Map<String, Value>> = BTreeMap::new();
    let mut guids = 0;
    for (name, tenant, pod_guids) in &owned {
        let uid = api
            .get(Resource::Pods, NAMESPACE, name)
            .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
            .unwrap_or_default();
        for (r, guid) in pod_guids.iter().enumerate() {
            let allocation = json!({
                "podUid": uid, "namespace": NAMESPACE, "pod": name,
                "network": format!("{NAMESPACE}/{}", network(*tenant)), "interface": format!("net{}", r + 1),
                "pkey": format!("0x{:04x}", pkey_of(*tenant)), "state": "Member",
            });
            blocks.entry(BlockId::of(*guid)).or_default().insert(guid.to_string(), allocation);
            guids += 1;
        }
    }
    let records = blocks.into_iter().map(|(block, allocations)| {
        json!({
            "apiVersion": "ib-kubernetes.mellanox.com/v1alpha1", "kind": "GuidBlock",
            "metadata": {"name": block.name()},
            "spec": {"start": block.start().to_string(), "allocations": allocations},
        })
    });
    api.seed(Resource::GuidBlocks, records)
        .map_err(|e| ClusterError::Create { what: "seeded ownership records".into(), source: Box::new(e) })?;
    let ufm = cluster.ufm.handle();
    for (p, members) in members.into_iter().enumerate() {
        ufm.seed_members(pkey_of(p as u16), members);
    }
    Ok(SeededGpu { pods: single + multi, guids })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rails_parse_as_the_controller_reads_them() {
        let one = ib_model::NetworksAnnotation::parse(&networks(RAILS, Layout::OnePkey, 2), NAMESPACE).unwrap();
        let selections = one.selections();
        assert_eq!(selections.len(), RAILS);
        assert!(selections.iter().all(|s| s.network == ib_model::NetworkRef::new(NAMESPACE, "ib-2")));
        assert_eq!(selections[7].interface, "net8");
        let per = ib_model::NetworksAnnotation::parse(&networks(RAILS, Layout::PerRail, 0), NAMESPACE).unwrap();
        let nets: Vec<String> = per.selections().iter().map(|s| s.network.to_string()).collect();
        assert_eq!(nets.len(), RAILS);
        assert_eq!(nets.iter().collect::<std::collections::BTreeSet<_>>().len(), RAILS, "{nets:?}");

        let guids: Vec<Guid> = (0..RAILS as u64).map(|k| Guid::from_u64(SEEDED_GUID_BASE + k)).collect();
        let done = configured_networks(Layout::OnePkey, 1, &guids);
        let parsed = ib_model::NetworksAnnotation::parse(&done, NAMESPACE).unwrap();
        assert!(parsed.selections().iter().all(|s| s.configured && s.pkey.as_deref() == Some("0x11")));
        assert_eq!(parsed.selections()[3].guid.as_ref().map(|g| g.0.clone()), Some(guids[3].to_string()));
    }

    #[test]
    fn layouts_need_enough_partitions() {
        assert_eq!(Layout::OnePkey.pkeys_needed(8, 1), 1);
        assert_eq!(Layout::PerRail.pkeys_needed(8, 1), 8);
        assert_eq!(Layout::PerRail.pkey_index(3, 5), 5);
        assert_eq!(Layout::OnePkey.pkey_index(3, 5), 3);
    }
}
