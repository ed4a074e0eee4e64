//! Why a pod is not configured yet, in words a user can act on. The controller turns these into
//! Kubernetes Events, log lines and the `pending pods by reason` metric.

use crate::annotation::{AnnotationError, NetworkRef};
use crate::guid::{Guid, GuidError};
use crate::nad::NadError;
use crate::pod::PodRef;
use crate::pool::GuidRange;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingReason {
    AnnotationInvalid(AnnotationError),
    NadMissing {
        network: NetworkRef,
    },
    NadInvalid {
        network: NetworkRef,
        error: NadError,
    },
    GuidInvalid {
        network: NetworkRef,
        interface: String,
        error: GuidError,
    },
    GuidOutOfRange {
        network: NetworkRef,
        interface: String,
        guid: Guid,
        range: GuidRange,
    },
    /// The requested GUID belongs to another live pod; it is never taken from it (Go bug B7).
    GuidInUse {
        network: NetworkRef,
        interface: String,
        guid: Guid,
        owner: String,
    },
    /// The pod's annotation says it is configured with a GUID another live pod already owns.
    DuplicateGuid {
        network: NetworkRef,
        interface: String,
        guid: Guid,
        owner: String,
    },
    PoolExhausted {
        range: GuidRange,
        capacity: u64,
    },
    SubnetManagerFailed {
        message: String,
    },
    PatchFailed {
        message: String,
    },
    /// More distinct partitions on one node than the kernel's per-port pkey table holds.
    TooManyPKeys {
        node: String,
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
        }
    }

    /// Every label, for metrics that export a zero for reasons not seen.
    pub const LABELS: [&'static str; 11] = [
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
                "network {network} interface {interface}: requested GUID {guid} is in use by pod {owner}; waiting until it is released"
            ),
            PendingReason::DuplicateGuid { network, interface, guid, owner } => write!(
                f,
                "network {network} interface {interface}: annotation says configured with GUID {guid}, which pod {owner} owns; this interface is not managed"
            ),
            PendingReason::PoolExhausted { range, capacity } => write!(
                f,
                "GUID pool {range} is exhausted (all {capacity} GUIDs in use); waiting for a GUID to be released"
            ),
            PendingReason::SubnetManagerFailed { message } => {
                write!(f, "subnet manager request failed: {message}")
            }
            PendingReason::PatchFailed { message } => {
                write!(f, "updating the pod annotation failed: {message}")
            }
            PendingReason::TooManyPKeys { node, limit } => write!(
                f,
                "pods on node {node} would need more than {limit} partition keys, the per-port limit of the kernel"
            ),
        }
    }
}

/// A pod that could not be configured, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub pod: PodRef,
    pub reason: PendingReason,
}
