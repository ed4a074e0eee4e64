//! What the state asks the executors to do, and how their work ended.

use std::collections::BTreeSet;

use crate::guid::Guid;
use crate::partition::{PartitionOptions, PartitionPolicy};
use crate::pending::Pending;
use crate::pkey::PKey;
use crate::pod::{InterfaceKey, PodRef, PodView};
use crate::records::RecordWrite;

/// A subnet-manager membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SmOp {
    /// Join the partition.
    Add,
    /// Leave the partition.
    Remove,
}

/// One request to the subnet manager: every GUID of one partition that needs the same change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmRequest {
    /// Join or leave.
    pub op: SmOp,
    /// The partition.
    pub pkey: PKey,
    /// The GUIDs that change, all of the same partition.
    pub guids: Vec<Guid>,
    /// How the GUIDs join (the default for a removal). Its QoS is set only when no GUID of the pool is
    /// known to be in the partition: the partition is new, or the subnet manager deleted it with its
    /// QoS when its last member left.
    pub options: PartitionOptions,
    /// A join may not create the partition: if the subnet manager does not have it, the request fails
    /// with [`SmFailure::PARTITION_NOT_FOUND`] and sends nothing.
    pub must_exist: bool,
    /// For a join of a partition allocated to a network: the name the partition is given if the join
    /// creates it (`<namespace>_<name>` of the network's NAD).
    pub partition_name: Option<String>,
}

impl SmRequest {
    /// Whether `other` can go out in the same request as this one.
    pub fn same_change(&self, other: &SmRequest) -> bool {
        (self.op, self.pkey, self.options, self.must_exist) == (other.op, other.pkey, other.options, other.must_exist)
            && self.partition_name == other.partition_name
    }
}

/// The name of a partition allocated to `network`: `<namespace>_<name>`, every character other than an
/// ASCII letter, digit or `_` written as `_`, and at most [`MAX_PARTITION_NAME`] characters. Subnet
/// managers take a restricted set of characters in partition names; NAD names may hold `.` and `-`.
pub fn partition_name(network: &crate::annotation::NetworkRef) -> String {
    format!("{}_{}", network.namespace, network.name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .take(MAX_PARTITION_NAME)
        .collect()
}

/// The longest partition name given.
pub const MAX_PARTITION_NAME: usize = 64;

/// A new networks annotation for one pod, valid only for the resourceVersion it was computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPatch {
    /// The pod to patch.
    pub pod: PodRef,
    /// The resourceVersion the patch was computed from: the patch's precondition.
    pub resource_version: String,
    /// The whole new value of the networks annotation.
    pub annotation: String,
    /// The GUIDs this patch marks configured.
    pub guids: Vec<Guid>,
}

/// How a pod patch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchOutcome {
    /// Stored; the pod as the API server returned it.
    Applied(PodView),
    /// The pod changed since the planned resourceVersion (or was re-created): the caller re-reads it,
    /// applies what it read, then calls [`State::retry_pod`](crate::State::retry_pod).
    Conflict,
    /// No pod with that uid exists any more.
    NotFound,
    /// Any other failure; nothing was stored.
    Failed {
        /// A short fixed word for metrics (`timeout`, `forbidden`, …).
        kind: &'static str,
        /// Why, for the pod's Event.
        message: String,
    },
}

/// Why a subnet-manager request did not succeed, as much as decisions need: the details go to the
/// controller's log, never into a tenant's Events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmFailure {
    /// A short fixed word (`timeout`, `status`, …) for metrics and Events.
    pub kind: &'static str,
    /// The change may have been applied although no success came back (a timeout after sending, a
    /// dropped connection, a server error): the GUID is held until a listing settles it.
    pub unknown: bool,
}

impl SmFailure {
    /// The kind of a join refused because the partition does not exist and may not be created.
    pub const PARTITION_NOT_FOUND: &'static str = "partition_not_found";
}

/// Cluster-wide rules that are not about one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Multus' `namespaceIsolation`: a pod may only use NADs of its own namespace or of
    /// `global_namespaces`.
    pub namespace_isolation: bool,
    /// Namespaces whose NADs every pod may use when namespace isolation is on.
    pub global_namespaces: BTreeSet<String>,
    /// Remove memberships of pool GUIDs that no record explains (the subnet manager may be shared with
    /// other clusters and with people, so this is off unless the operator opts in).
    pub remove_unrecorded: bool,
    /// How pods join partitions, cluster-wide.
    pub partitions: PartitionPolicy,
}

/// A Normal Event for a pod: something it should know that is not a reason to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The pod the Event is about.
    pub pod: PodRef,
    /// The Event's reason (a fixed word).
    pub reason: &'static str,
    /// The Event's message.
    pub message: String,
}

/// What the planner decided. The I/O parts (`list_sm`, `sm`, `patches`) are for the executors; the rest
/// records state changes already made, for logs, metrics and Events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ask the subnet manager for every GUID it holds.
    pub list_sm: bool,
    /// Membership changes to send, one request per operation and partition.
    pub sm: Vec<SmRequest>,
    /// Pod patches to send.
    pub patches: Vec<PodPatch>,
    /// GUIDs claimed since the last plan, with their owners.
    pub allocated: Vec<(Guid, InterfaceKey)>,
    /// GUIDs returned to the pool since the last plan.
    pub released: Vec<Guid>,
    /// GUIDs being removed from a partition although no pod of this leadership ever owned them: leaks
    /// left by a crash or by pods that finished while no leader ran (drift repair).
    pub drift: Vec<Guid>,
    /// Pods whose reason for waiting changed to this one.
    pub pending: Vec<Pending>,
    /// Ownership record writes; a GUID joins a partition only after its record is stored.
    pub records: Vec<RecordWrite>,
    /// Pool GUIDs found in partitions that no record explains (reported once each; removed only when
    /// the policy allows).
    pub unrecorded: Vec<Guid>,
    /// Normal Events.
    pub notices: Vec<Notice>,
    /// The first start without records imported this many configured interfaces from annotations.
    pub imported: Option<Imported>,
}

/// What the one-time import from annotations did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Configured interfaces taken as owned.
    pub interfaces: usize,
    /// Interfaces whose GUID another pod had claimed first (each got a `DuplicateGUID` Event).
    pub duplicates: usize,
}

impl Plan {
    /// Nothing for the executors to do.
    pub fn is_idle(&self) -> bool {
        !self.list_sm && self.sm.is_empty() && self.patches.is_empty() && self.records.is_empty()
    }
}
