//! Why a pod is not configured yet, in words a user can act on. The controller turns these into
//! Kubernetes Events, log lines and the `pending pods by reason` metric.

use crate::annotation::{AnnotationError, NetworkRef};
use crate::guid::{Guid, GuidError};
use crate::nad::NadError;
use crate::pkey::{PKey, PKeyRange};
use crate::pod::PodRef;
use crate::pool::GuidRange;

/// Why a pod waits, with what its author (or the cluster's operator) needs to act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingReason {
    /// The networks annotation cannot be read.
    AnnotationInvalid(AnnotationError),
    /// A selected NAD does not exist (yet).
    NadMissing {
        /// The network of the interface concerned.
        network: NetworkRef,
    },
    /// A selected NAD's config cannot be read.
    NadInvalid {
        /// The network of the interface concerned.
        network: NetworkRef,
        /// Why the NAD's config was refused.
        error: NadError,
    },
    /// A requested GUID cannot be read.
    GuidInvalid {
        /// The network of the interface concerned.
        network: NetworkRef,
        /// The interface concerned.
        interface: String,
        /// Why the GUID was refused.
        error: GuidError,
    },
    /// A requested GUID lies outside the pool's range.
    GuidOutOfRange {
        /// The network of the interface concerned.
        network: NetworkRef,
        /// The interface concerned.
        interface: String,
        /// The GUID concerned.
        guid: Guid,
        /// The pool's range.
        range: GuidRange,
    },
    /// The requested GUID belongs to another live pod, or is held in the fabric by something no record
    /// of this cluster explains; it is never taken. `owner` names the owning pod only when it is in the
    /// requester's own namespace: a tenant's Events say nothing about other tenants.
    GuidInUse {
        /// The network of the interface concerned.
        network: NetworkRef,
        /// The interface concerned.
        interface: String,
        /// The GUID concerned.
        guid: Guid,
        /// The pod owning it, when it is of the same namespace.
        owner: Option<String>,
    },
    /// The pod's annotation says it is configured with a GUID that another pod owns by record.
    DuplicateGuid {
        /// The network of the interface concerned.
        network: NetworkRef,
        /// The interface concerned.
        interface: String,
        /// The GUID concerned.
        guid: Guid,
        /// The pod owning it, when it is of the same namespace.
        owner: Option<String>,
    },
    /// Every GUID of the pool is held.
    PoolExhausted {
        /// The pool's range.
        range: GuidRange,
        /// How many GUIDs the range has.
        capacity: u64,
    },
    /// The subnet manager did not accept a change; `kind` is a fixed word (`timeout`, `status`, …). The
    /// details (addresses, answers) go to the controller's log only.
    SubnetManagerFailed {
        /// A fixed word naming the failure.
        kind: &'static str,
    },
    /// The pod's patch failed; it is tried again after a backoff.
    PatchFailed {
        /// The failure, for the pod's Event.
        message: String,
    },
    /// More distinct partitions on one node than the kernel's per-port pkey table holds.
    TooManyPKeys {
        /// The node.
        node: String,
        /// The most partitions a node may have.
        limit: usize,
    },
    /// Namespace isolation is on and the NAD is in another namespace that is not global.
    NamespaceNotAllowed {
        /// The network of the interface concerned.
        network: NetworkRef,
    },
    /// The NAD asks for a partition of its own (`allocate_pkey`) and none is allocated to it yet.
    PartitionNotAllocated {
        /// The network of the interface concerned.
        network: NetworkRef,
        /// Whether this cluster allocates partitions at all (`PKEY_ALLOCATION_RANGE` is set).
        enabled: bool,
    },
    /// The NAD names a partition of the range that is allocated one per network: only the network it
    /// is allocated to may use it, and only by asking with `allocate_pkey`.
    PartitionReserved {
        /// The network of the interface concerned.
        network: NetworkRef,
        /// The partition the NAD names.
        pkey: PKey,
        /// The range partitions are allocated from.
        range: PKeyRange,
    },
    /// The partition does not exist in the subnet manager and ib-kubernetes may not create it
    /// (`ALLOW_PARTITION_CREATE=false`).
    PartitionNotFound {
        /// The missing partition.
        pkey: PKey,
    },
    /// More InfiniBand interfaces than one pod may have.
    TooManyInterfaces {
        /// How many the pod asks for.
        count: usize,
        /// The most a pod may have.
        limit: usize,
    },
}

impl PendingReason {
    /// A short CamelCase word: the Event reason and the metric label.
    pub fn label(&self) -> &'static str {
        match self {
            PendingReason::AnnotationInvalid(_) => "InvalidNetworkAnnotation",
            PendingReason::NadMissing { .. } => "NetworkNotFound",
            PendingReason::NadInvalid { .. } => "InvalidNetwork",
            PendingReason::GuidInvalid { .. } => "InvalidGUID",
            PendingReason::GuidOutOfRange { .. } => "GUIDOutOfRange",
            PendingReason::GuidInUse { .. } => "GUIDInUse",
            PendingReason::DuplicateGuid { .. } => "DuplicateGUID",
            PendingReason::PoolExhausted { .. } => "GUIDPoolExhausted",
            PendingReason::SubnetManagerFailed { .. } => "SubnetManagerFailed",
            PendingReason::PatchFailed { .. } => "PatchFailed",
            PendingReason::TooManyPKeys { .. } => "TooManyPKeys",
            PendingReason::NamespaceNotAllowed { .. } => "NamespaceNotAllowed",
            PendingReason::TooManyInterfaces { .. } => "TooManyInterfaces",
            PendingReason::PartitionNotAllocated { .. } => "PartitionNotAllocated",
            PendingReason::PartitionReserved { .. } => "PartitionReserved",
            PendingReason::PartitionNotFound { .. } => "PartitionNotFound",
        }
    }

    /// Whether `other` is the same reason to wait, so that no second Event is raised: failures that
    /// recur on every retry count as one whatever their details.
    pub fn same_as(&self, other: &PendingReason) -> bool {
        match (self, other) {
            (PendingReason::SubnetManagerFailed { .. }, PendingReason::SubnetManagerFailed { .. })
            | (PendingReason::PatchFailed { .. }, PendingReason::PatchFailed { .. }) => true,
            _ => self == other,
        }
    }

    /// Every label, for metrics that export a zero for reasons not seen.
    pub const LABELS: [&'static str; 16] = [
        "InvalidNetworkAnnotation",
        "NetworkNotFound",
        "InvalidNetwork",
        "InvalidGUID",
        "GUIDOutOfRange",
        "GUIDInUse",
        "DuplicateGUID",
        "GUIDPoolExhausted",
        "SubnetManagerFailed",
        "PatchFailed",
        "TooManyPKeys",
        "NamespaceNotAllowed",
        "TooManyInterfaces",
        "PartitionNotAllocated",
        "PartitionReserved",
        "PartitionNotFound",
    ];
}

impl std::fmt::Display for PendingReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PendingReason::AnnotationInvalid(e) => write!(f, "{e}"),
            PendingReason::NadMissing { network } => write!(
                f,
                "NetworkAttachmentDefinition {network} does not exist; the pod is configured when it is created"
            ),
            PendingReason::NadInvalid { network, error } => {
                write!(f, "NetworkAttachmentDefinition {network}: {error}")
            }
            PendingReason::GuidInvalid { network, interface, error } => {
                write!(f, "network {network} interface {interface}: {error}")
            }
            PendingReason::GuidOutOfRange { network, interface, guid, range } => write!(
                f,
                "network {network} interface {interface}: requested GUID {guid} is outside the GUID pool range {range}"
            ),
            PendingReason::GuidInUse { network, interface, guid, owner } => write!(
                f,
                "network {network} interface {interface}: requested GUID {guid} is in use by {}; waiting until it is released",
                owner_words(owner)
            ),
            PendingReason::DuplicateGuid { network, interface, guid, owner } => write!(
                f,
                "network {network} interface {interface}: annotation says configured with GUID {guid}, which {} owns; this interface is not managed",
                owner_words(owner)
            ),
            PendingReason::PoolExhausted { range, capacity } => write!(
                f,
                "GUID pool {range} is exhausted (all {capacity} GUIDs in use); waiting for a GUID to be released"
            ),
            PendingReason::SubnetManagerFailed { kind } => write!(
                f,
                "the subnet manager did not accept the partition change ({kind}); retrying with backoff (details in the ib-kubernetes log)"
            ),
            PendingReason::PatchFailed { message } => {
                write!(f, "updating the pod annotation failed: {}", crate::text::shorten(message, 300))
            }
            PendingReason::TooManyPKeys { node, limit } => write!(
                f,
                "pods on node {node} would need more than {limit} partition keys, the per-port limit of the kernel"
            ),
            PendingReason::NamespaceNotAllowed { network } => write!(
                f,
                "network {network}: namespace isolation is on and {} is neither the pod's namespace nor a global namespace",
                network.namespace
            ),
            PendingReason::PartitionNotAllocated { network, enabled: true } => write!(
                f,
                "network {network} asks for a partition of its own (allocate_pkey); none is allocated to it yet"
            ),
            PendingReason::PartitionNotAllocated { network, enabled: false } => write!(
                f,
                "network {network} asks for a partition of its own (allocate_pkey), but this cluster allocates none (PKEY_ALLOCATION_RANGE is not set)"
            ),
            PendingReason::PartitionReserved { network, pkey, range } => write!(
                f,
                "network {network}: partition {pkey} lies in {range}, the range whose partitions are allocated one per network; ask for one with allocate_pkey instead of naming it"
            ),
            PendingReason::PartitionNotFound { pkey } => write!(
                f,
                "partition {pkey} does not exist in the subnet manager and ib-kubernetes may not create partitions; waiting until it exists"
            ),
            PendingReason::TooManyInterfaces { count, limit } => {
                write!(f, "the pod asks for {count} InfiniBand interfaces; at most {limit} are allowed per pod")
            }
        }
    }
}

fn owner_words(owner: &Option<String>) -> String {
    match owner {
        Some(pod) => format!("pod {pod}"),
        None => "another pod or a fabric user outside this namespace".to_owned(),
    }
}

/// A pod that could not be configured, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The pod that waits.
    pub pod: PodRef,
    /// Why it waits.
    pub reason: PendingReason,
}
