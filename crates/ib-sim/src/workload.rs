//! The demo's world: a few NetworkAttachmentDefinitions and a seeded mix of pods, as plain values. Pure:
//! the same seed and count always give the same plan, so a demo run can be reproduced.
//!
//! The mix covers the shapes users' pods take: one InfiniBand interface as a
//! short-form annotation, a conflist NAD with the `infinibandGUID` capability, two interfaces on
//! two partitions or on one, a GUID-only network (no PKey), InfiniBand next to an ordinary CNI,
//! a compute network next to a storage network joined as a limited member, a network whose
//! partition has QoS, pods with no extra network, plus three special pods: one asking for a specific
//! GUID, one naming a NAD with the management PKey 0x7fff, and one whose annotation is not valid JSON.
//! The controller runs with a default limited partition, [`DEFAULT_LIMITED_PKEY`], that every GUID
//! it hands out also joins.

use std::collections::HashMap;

use ib_model::partition::{Membership, MtuLimit, PartitionOptions, Qos, RateLimit};
use ib_model::{Guid, NetworkRef};
use serde_json::{Value, json};

use crate::rng::SplitMix64;

pub const NAMESPACE: &str = "ib-demo";
/// The GUID the `pinned-guid` pod asks for; inside [`POOL_START`]..[`POOL_END`], far from where
/// the pool hands out GUIDs, so it is free.
pub const REQUESTED_GUID: Guid = Guid::from_u64(0x0200_0000_a000_0001);
/// The GUID pool the demo gives the controller: 2^32 locally administered GUIDs.
pub const POOL_START: &str = "02:00:00:00:00:00:00:00";
pub const POOL_END: &str = "02:00:00:00:ff:ff:ff:ff";
/// Pods spread over this many nodes, as a scheduler would.
const NODES: u64 = 16;
/// The fewest pods that hold the three special pods.
pub const MIN_PODS: usize = 3;
/// The demo cluster's `DEFAULT_LIMITED_PARTITION`: a shared partition every GUID handed out joins as
/// a limited member, GUID-only networks' GUIDs included.
pub const DEFAULT_LIMITED_PKEY: u16 = 0x0e;
/// The demo cluster's `PKEY_ALLOCATION_RANGE`. `ib-own` is the only network asking for a partition,
/// and nothing else uses the range, so it is given the range's first key, [`ALLOCATED_PKEY`].
pub const ALLOCATION_RANGE: &str = "0x1000-0x10ff";
pub const ALLOCATED_PKEY: u16 = 0x1000;

/// What a NAD is to ib-kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NadRole {
    /// An ib-sriov network naming its partition (`None`: GUID-only); `join` is how its GUIDs must
    /// show in that partition (the cluster's defaults where the NAD says nothing).
    InfiniBand { pkey: Option<u16>, join: PartitionOptions },
    /// An ib-sriov network asking for a partition of its own (`allocate_pkey`), which must be given
    /// `pkey`.
    Allocated { pkey: u16, join: PartitionOptions },
    /// An ib-sriov network ib-kubernetes must refuse.
    Invalid,
    /// Another CNI.
    Other,
}

#[derive(Debug, Clone)]
pub struct NadSpec {
    pub name: &'static str,
    pub role: NadRole,
    pub config: &'static str,
}

impl NadRole {
    /// How the network's GUIDs join its partition; `None` for a network ib-kubernetes does not configure.
    pub fn join(self) -> Option<PartitionOptions> {
        match self {
            NadRole::InfiniBand { join, .. } | NadRole::Allocated { join, .. } => Some(join),
            NadRole::Invalid | NadRole::Other => None,
        }
    }
}

/// The QoS of the `ib-qos` network, as its NAD states it.
pub fn demo_qos() -> Qos {
    Qos {
        mtu_limit: MtuLimit::Mtu4K,
        service_level: 2,
        rate_limit: RateLimit::from_gbps(100.0).unwrap_or(RateLimit::DEFAULT),
    }
}

/// The networks of the demo. The demo sets no cluster-wide partition options besides the default
/// limited partition, so a NAD that says nothing joins as the Go daemon did: full, at index 0, IPoIB.
pub fn nads() -> Vec<NadSpec> {
    let plain = PartitionOptions::default();
    vec![
        NadSpec {
            name: "ib-a",
            role: NadRole::InfiniBand { pkey: Some(0x0a), join: plain },
            config: r#"{"cniVersion":"0.3.1","name":"ib-a","type":"ib-sriov","pkey":"0x0a","link_state":"enable","ibKubernetesEnabled":true,"ipam":{}}"#,
        },
        NadSpec {
            name: "ib-b",
            role: NadRole::InfiniBand { pkey: Some(0x0b), join: plain },
            config: r#"{"cniVersion":"0.3.1","name":"ib-b","plugins":[{"type":"ib-sriov","pkey":"0x0B","ibKubernetesEnabled":true,"capabilities":{"infinibandGUID":true},"ipam":{}},{"type":"tuning","sysctl":{"net.ipv4.conf.all.arp_ignore":"1"}}]}"#,
        },
        NadSpec {
            name: "ib-guid-only",
            role: NadRole::InfiniBand { pkey: None, join: plain },
            config: r#"{"cniVersion":"0.3.1","name":"ib-guid-only","type":"ib-sriov","ibKubernetesEnabled":true,"ipam":{}}"#,
        },
        NadSpec {
            name: "ib-storage",
            role: NadRole::InfiniBand {
                pkey: Some(0x0c),
                join: PartitionOptions { membership: Membership::Limited, index0: false, ..plain },
            },
            config: r#"{"cniVersion":"0.3.1","name":"ib-storage","type":"ib-sriov","pkey":"0x0c","membership":"limited","index0":false,"ibKubernetesEnabled":true,"ipam":{}}"#,
        },
        NadSpec {
            name: "ib-qos",
            role: NadRole::InfiniBand { pkey: Some(0x0d), join: PartitionOptions { qos: Some(demo_qos()), ..plain } },
            config: r#"{"cniVersion":"0.3.1","name":"ib-qos","type":"ib-sriov","pkey":"0x0d","mtu_limit":4,"service_level":2,"rate_limit":100,"ibKubernetesEnabled":true,"ipam":{}}"#,
        },
        NadSpec {
            name: "ib-own",
            role: NadRole::Allocated { pkey: ALLOCATED_PKEY, join: plain },
            config: r#"{"cniVersion":"0.3.1","name":"ib-own","type":"ib-sriov","allocate_pkey":true,"ibKubernetesEnabled":true,"ipam":{}}"#,
        },
        NadSpec {
            name: "ib-mgmt",
            role: NadRole::Invalid,
            config: r#"{"cniVersion":"0.3.1","name":"ib-mgmt","type":"ib-sriov","pkey":"0x7fff","ibKubernetesEnabled":true}"#,
        },
        NadSpec {
            name: "macvlan",
            role: NadRole::Other,
            config: r#"{"cniVersion":"0.3.1","name":"macvlan","type":"macvlan","master":"eth0","mode":"bridge","ipam":{}}"#,
        },
    ]
}

/// InfiniBand networks by reference, with their PKey (`None`: GUID-only).
pub type IbNetworks = HashMap<NetworkRef, Option<u16>>;

pub fn ib_networks(nads: &[NadSpec]) -> IbNetworks {
    nads.iter()
        .filter_map(|n| match n.role {
            NadRole::InfiniBand { pkey, .. } => Some((NetworkRef::new(NAMESPACE, n.name), pkey)),
            NadRole::Allocated { pkey, .. } => Some((NetworkRef::new(NAMESPACE, n.name), Some(pkey))),
            NadRole::Invalid | NadRole::Other => None,
        })
        .collect()
}

/// How each InfiniBand network's GUIDs join its partition, by reference.
pub type Joins = HashMap<NetworkRef, PartitionOptions>;

pub fn joins(nads: &[NadSpec]) -> Joins {
    nads.iter().filter_map(|n| n.role.join().map(|join| (NetworkRef::new(NAMESPACE, n.name), join))).collect()
}

pub fn nad_object(nad: &NadSpec) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": nad.name, "namespace": NAMESPACE},
        "spec": {"config": nad.config}
    })
}

/// The kinds of pod in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PodKind {
    OneIb,
    RuntimeGuid,
    TwoPartitions,
    TwoOnOneNetwork,
    GuidOnly,
    IbAndMacvlan,
    /// A compute network next to a storage network joined as a limited member.
    WithStorage,
    /// One interface on the network whose partition has QoS.
    Qos,
    /// One interface on the network with a partition allocated to it.
    OwnPartition,
    NoNetworks,
    RequestedGuid,
    BadPkey,
    BadAnnotation,
}

impl PodKind {
    /// Random kinds and their weights (percent).
    const MIX: [(PodKind, u32); 10] = [
        (PodKind::OneIb, 25),
        (PodKind::OwnPartition, 5),
        (PodKind::RuntimeGuid, 13),
        (PodKind::TwoPartitions, 12),
        (PodKind::TwoOnOneNetwork, 5),
        (PodKind::GuidOnly, 8),
        (PodKind::IbAndMacvlan, 6),
        (PodKind::WithStorage, 10),
        (PodKind::Qos, 8),
        (PodKind::NoNetworks, 8),
    ];

    pub fn label(self) -> &'static str {
        match self {
            PodKind::OneIb => "one-ib",
            PodKind::RuntimeGuid => "runtime-guid",
            PodKind::TwoPartitions => "two-partitions",
            PodKind::TwoOnOneNetwork => "two-on-one-network",
            PodKind::GuidOnly => "guid-only",
            PodKind::IbAndMacvlan => "ib-and-macvlan",
            PodKind::WithStorage => "with-storage",
            PodKind::Qos => "qos",
            PodKind::OwnPartition => "own-partition",
            PodKind::NoNetworks => "no-networks",
            PodKind::RequestedGuid => "requested-guid",
            PodKind::BadPkey => "bad-pkey",
            PodKind::BadAnnotation => "bad-annotation",
        }
    }

    /// Pods ib-kubernetes must refuse (with an Event) and the kubelet must keep Pending.
    pub fn is_bad(self) -> bool {
        matches!(self, PodKind::BadPkey | PodKind::BadAnnotation)
    }

    /// The annotation, and the InfiniBand networks ib-kubernetes must configure (NAD names).
    fn networks(self) -> (Option<&'static str>, &'static [&'static str]) {
        match self {
            PodKind::OneIb => (Some("ib-a"), &["ib-a"]),
            PodKind::RuntimeGuid => (Some(r#"[{"name":"ib-b","interface":"ib0"}]"#), &["ib-b"]),
            PodKind::TwoPartitions => (
                Some(
                    r#"[{"name":"ib-a","interface":"net1"},{"name":"ib-b","namespace":"ib-demo","interface":"net2"}]"#,
                ),
                &["ib-a", "ib-b"],
            ),
            PodKind::TwoOnOneNetwork => (Some("ib-a@net1,ib-a@net2"), &["ib-a", "ib-a"]),
            PodKind::GuidOnly => (Some(r#"[{"name":"ib-guid-only","interface":"ib0"}]"#), &["ib-guid-only"]),
            PodKind::IbAndMacvlan => (Some("macvlan@eth1,ib-a@net1"), &["ib-a"]),
            PodKind::WithStorage => (
                Some(r#"[{"name":"ib-a","interface":"net1"},{"name":"ib-storage","interface":"net2"}]"#),
                &["ib-a", "ib-storage"],
            ),
            PodKind::Qos => (Some("ib-qos"), &["ib-qos"]),
            PodKind::OwnPartition => (Some("ib-own@net1"), &["ib-own"]),
            PodKind::NoNetworks => (None, &[]),
            PodKind::RequestedGuid => (
                Some(r#"[{"name":"ib-a","interface":"net1","cni-args":{"guid":"02:00:00:00:a0:00:00:01"}}]"#),
                &["ib-a"],
            ),
            PodKind::BadPkey => (Some("ib-mgmt"), &[]),
            // Truncated JSON: what a broken template produces.
            PodKind::BadAnnotation => (Some(r#"[{"name":"ib-a","interface":"net1""#), &[]),
        }
    }
}

/// How many InfiniBand interfaces ib-kubernetes must configure on a pod of this kind.
pub fn ib_interface_count(kind: PodKind) -> usize {
    kind.networks().1.len()
}

/// One pod to create.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub name: String,
    pub node: String,
    pub kind: PodKind,
    pub networks: Option<&'static str>,
    /// NAD names of the InfiniBand interfaces ib-kubernetes must configure, one per interface.
    pub ib_networks: &'static [&'static str],
}

impl PodPlan {
    pub fn object(&self) -> Value {
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": NAMESPACE,
                "labels": {"app": "ib-demo", "ib-demo/kind": self.kind.label()}
            },
            "spec": {
                "nodeName": self.node,
                "restartPolicy": "Never",
                "containers": [{"name": "trainer", "image": "registry.example/ib-demo/trainer:1"}]
            },
            "status": {"phase": "Pending"}
        });
        if let Some(networks) = self.networks {
            pod["metadata"]["annotations"] = json!({ib_model::annotation::NETWORKS_ANNOTATION: networks});
        }
        pod
    }
}

/// `pods` pods (at least [`MIN_PODS`]) from `seed`: the three special pods at a quarter, half and
/// three quarters of the run, the rest drawn from the mix.
pub fn plan(pods: usize, seed: u64) -> Vec<PodPlan> {
    let mut rng = SplitMix64::new(seed);
    let weights: Vec<u32> = PodKind::MIX.iter().map(|(_, w)| *w).collect();
    let specials =
        [(pods / 4, PodKind::RequestedGuid), (pods / 2, PodKind::BadPkey), (pods * 3 / 4, PodKind::BadAnnotation)];
    (0..pods)
        .map(|i| {
            let kind = specials
                .iter()
                .find(|(at, _)| *at == i)
                .map(|(_, kind)| *kind)
                .unwrap_or_else(|| PodKind::MIX[rng.weighted(&weights)].0);
            let node = format!("node-{:02}", rng.below(NODES) + 1);
            let name = match kind {
                PodKind::RequestedGuid => "pinned-guid".to_owned(),
                PodKind::BadPkey | PodKind::BadAnnotation => kind.label().to_owned(),
                _ => format!("trainer-{i:05}"),
            };
            let (networks, ib_networks) = kind.networks();
            PodPlan { name, node, kind, networks, ib_networks }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ib_model::NetworksAnnotation;
    use ib_model::nad::{NadKind, classify};

    #[test]
    fn plans_are_reproducible_and_hold_the_special_pods() {
        let a = plan(40, 9);
        let b = plan(40, 9);
        assert_eq!(
            a.iter().map(|p| (&p.name, p.kind)).collect::<Vec<_>>(),
            b.iter().map(|p| (&p.name, p.kind)).collect::<Vec<_>>()
        );
        for special in [PodKind::RequestedGuid, PodKind::BadPkey, PodKind::BadAnnotation] {
            assert_eq!(a.iter().filter(|p| p.kind == special).count(), 1);
        }
        assert_eq!(plan(MIN_PODS, 1).iter().filter(|p| p.kind.is_bad()).count(), 2);
        let names: std::collections::BTreeSet<_> = a.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), a.len());
        // The default run's mix holds every kind of the mix, the partition options' ones included.
        let kinds: std::collections::BTreeSet<PodKind> = plan(500, 1).iter().map(|p| p.kind).collect();
        for (kind, _) in PodKind::MIX {
            assert!(kinds.contains(&kind), "{kind:?}");
        }
        assert_eq!(PodKind::MIX.iter().map(|(_, w)| w).sum::<u32>(), 100, "weights are percentages");
    }

    #[test]
    fn declared_networks_match_what_the_model_reads() {
        let nads = nads();
        for kind in PodKind::MIX.iter().map(|(k, _)| *k).chain([PodKind::RequestedGuid]) {
            let (raw, ib) = kind.networks();
            let parsed = NetworksAnnotation::parse(raw.unwrap_or(""), NAMESPACE).unwrap();
            let found: Vec<&str> = parsed
                .selections()
                .iter()
                .filter(|s| {
                    let nad = nads.iter().find(|n| *n.name == *s.network.name).unwrap();
                    matches!(classify(Some(nad.config)), Ok(NadKind::InfiniBand(_)))
                })
                .map(|s| nads.iter().find(|n| *n.name == *s.network.name).unwrap().name)
                .collect();
            assert_eq!(found, ib, "{kind:?}");
        }
        assert!(classify(Some(nads.iter().find(|n| n.role == NadRole::Invalid).unwrap().config)).is_err());
        // The demo's expectations are written out by hand; the model must read the same from each config.
        let cluster = ib_model::partition::PartitionPolicy::default();
        for nad in &nads {
            if let NadRole::InfiniBand { pkey, join } = nad.role {
                let Ok(NadKind::InfiniBand(spec)) = classify(Some(nad.config)) else { panic!("{}", nad.name) };
                assert_eq!(spec.pkey.map(|p| p.get()), pkey, "{}", nad.name);
                assert_eq!(spec.partition_options(&cluster.primary), join, "{}", nad.name);
            }
            if let NadRole::Allocated { join, .. } = nad.role {
                let Ok(NadKind::InfiniBand(spec)) = classify(Some(nad.config)) else { panic!("{}", nad.name) };
                assert!(spec.options.allocate_pkey && spec.pkey.is_none(), "{}", nad.name);
                assert_eq!(spec.partition_options(&cluster.primary), join, "{}", nad.name);
            }
        }
        let joins: Vec<PartitionOptions> = nads.iter().filter_map(|n| n.role.join()).collect();
        assert!(joins.iter().any(|j| j.membership == Membership::Limited && !j.index0), "a limited NAD");
        assert!(joins.iter().any(|j| j.qos == Some(demo_qos()) && demo_qos() != Qos::default()), "a NAD with QoS");
        assert!(!ib_networks(&nads).values().any(|p| *p == Some(DEFAULT_LIMITED_PKEY)), "no NAD names the shared one");
        let range = ib_model::pkey::PKeyRange::parse(ALLOCATION_RANGE).unwrap();
        assert_eq!(range.first().get(), ALLOCATED_PKEY);
        assert_eq!(nads.iter().filter(|n| matches!(n.role, NadRole::Allocated { .. })).count(), 1, "one NAD asks");
        assert!(
            ib_networks(&nads)
                .values()
                .flatten()
                .all(|p| *p == ALLOCATED_PKEY || !range.contains(ib_model::PKey::new(u32::from(*p)).unwrap()))
        );
        assert_eq!(REQUESTED_GUID.to_string(), "02:00:00:00:a0:00:00:01");
    }
}
