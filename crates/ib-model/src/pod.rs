//! The compact view of a pod that the controller keeps: only what decisions need, never the pod spec.

use std::sync::Arc;

use crate::annotation::NetworkRef;
use crate::annotation::network_status::IbAddress;

/// A pod's `metadata.uid`. Ownership is keyed by uid, not name, so a re-created pod with the same name
/// is a different owner. Shared, not copied: every map that knows a pod holds its uid, and at 100,000
/// pods a copy per map costs megabytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodUid(pub Arc<str>);

impl From<String> for PodUid {
    fn from(uid: String) -> Self {
        PodUid(uid.into())
    }
}

impl From<&str> for PodUid {
    fn from(uid: &str) -> Self {
        PodUid(uid.into())
    }
}

impl std::fmt::Display for PodUid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pod's `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PodPhase {
    /// Accepted, not all containers running yet.
    Pending,
    /// Bound to a node, containers started.
    Running,
    /// Every container ended successfully: the pod is finished.
    Succeeded,
    /// Every container ended, one at least in failure: the pod is finished.
    Failed,
    /// Missing or not known to this version.
    Unknown,
}

impl PodPhase {
    /// Reads `status.phase`; a missing or unknown phase is `Unknown`, which is handled like `Pending`.
    pub fn parse(phase: Option<&str>) -> Self {
        match phase {
            Some("Pending") => PodPhase::Pending,
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            _ => PodPhase::Unknown,
        }
    }
}

/// Who a pod is, for patches, Events and messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// The pod's `metadata.uid`.
    pub uid: PodUid,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the controller remembers of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    /// The pod's `metadata.uid`: a re-created pod with the same name is another pod.
    pub uid: PodUid,
    /// The pod's namespace (shared text: the state keeps one copy of each namespace).
    pub namespace: Arc<str>,
    /// The pod's name.
    pub name: String,
    /// The `metadata.resourceVersion` this view was read at; a patch is valid only for it.
    pub resource_version: String,
    /// `spec.nodeName`: `None` while the pod is not scheduled (shared text, like the namespace).
    pub node_name: Option<Arc<str>>,
    /// `spec.hostNetwork`: such a pod has no secondary networks of ours.
    pub host_network: bool,
    /// `status.phase`.
    pub phase: PodPhase,
    /// `metadata.deletionTimestamp` is set: the pod is terminating and gets no new configuration, but
    /// keeps its GUIDs until it is gone, because its containers may still be using them.
    pub deleting: bool,
    /// The raw `k8s.v1.cni.cncf.io/networks` annotation. Kept empty (present, but not its text) while the
    /// pod is unscheduled or finished: nothing is decided from it then.
    pub networks: Option<String>,
    /// `metadata.creationTimestamp` as Unix seconds (0 when unknown): the one-time import from
    /// annotations lets the oldest pod keep a GUID two pods claim.
    pub created: i64,
    /// The IPoIB interfaces the `k8s.v1.cni.cncf.io/network-status` annotation reports (see
    /// [`network_status`](crate::annotation::network_status)), read only by the one-time import from
    /// annotations, for elements that lost their GUID. Empty when the annotation is missing or refused.
    pub network_status: Vec<IbAddress>,
}

impl PodView {
    /// Who the pod is, for patches, Events and messages.
    pub fn pod_ref(&self) -> PodRef {
        PodRef { uid: self.uid.clone(), namespace: self.namespace.to_string(), name: self.name.clone() }
    }

    /// Succeeded and Failed pods never run again: their GUIDs are released as if they were deleted.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
    }

    /// Whether the pod may still be configured: scheduled, not finished, not terminating.
    pub fn wants_configuration(&self) -> bool {
        self.node_name.as_deref().is_some_and(|n| !n.is_empty()) && !self.is_finished() && !self.deleting
    }
}

/// The identity of one IB interface: the owner of a GUID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceKey {
    /// The owning pod.
    pub pod: PodUid,
    /// The network the interface is on.
    pub network: NetworkRef,
    /// The interface as its selection names it (see [`Selection::interface`](crate::Selection::interface)).
    /// Shared text like the network's: most pods name the same few interfaces.
    pub interface: Arc<str>,
}

impl std::fmt::Display for InterfaceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.pod, self.network, self.interface)
    }
}
