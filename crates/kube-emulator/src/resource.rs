//! The fixed set of resource types the emulator serves, and their wire names.
//!
//! Every type here is namespaced, which is all the controller touches. Adding a type means one
//! enum variant and one row in each `match`: the store, router and discovery derive everything
//! else from these tables.

/// A resource type served by the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// core `v1` `pods`, with a `status` subresource.
    Pods,
    /// `k8s.cni.cncf.io/v1` `network-attachment-definitions` (a CRD without a status subresource).
    NetworkAttachmentDefinitions,
    /// `coordination.k8s.io/v1` `leases`.
    Leases,
    /// `events.k8s.io/v1` `events`.
    Events,
    /// core `v1` `events`.
    CoreEvents,
}

impl Resource {
    /// All served resources, in a fixed order used to index per-resource tables.
    pub const ALL: [Resource; 5] = [
        Resource::Pods,
        Resource::NetworkAttachmentDefinitions,
        Resource::Leases,
        Resource::Events,
        Resource::CoreEvents,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            Resource::Pods => 0,
            Resource::NetworkAttachmentDefinitions => 1,
            Resource::Leases => 2,
            Resource::Events => 3,
            Resource::CoreEvents => 4,
        }
    }

    /// API group; empty for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Resource::Pods | Resource::CoreEvents => "",
            Resource::NetworkAttachmentDefinitions => "k8s.cni.cncf.io",
            Resource::Leases => "coordination.k8s.io",
            Resource::Events => "events.k8s.io",
        }
    }

    /// API version within the group.
    pub fn version(self) -> &'static str {
        "v1"
    }

    /// The `apiVersion` field value: `v1` for core, `group/v1` otherwise.
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::Pods | Resource::CoreEvents => "v1",
            Resource::NetworkAttachmentDefinitions => "k8s.cni.cncf.io/v1",
            Resource::Leases => "coordination.k8s.io/v1",
            Resource::Events => "events.k8s.io/v1",
        }
    }

    /// The plural used in URLs and in Status `details.kind`.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::NetworkAttachmentDefinitions => "network-attachment-definitions",
            Resource::Leases => "leases",
            Resource::Events | Resource::CoreEvents => "events",
        }
    }

    /// Singular name, as discovery reports it.
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Pods => "pod",
            Resource::NetworkAttachmentDefinitions => "network-attachment-definition",
            Resource::Leases => "lease",
            Resource::Events | Resource::CoreEvents => "event",
        }
    }

    /// The object `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::NetworkAttachmentDefinitions => "NetworkAttachmentDefinition",
            Resource::Leases => "Lease",
            Resource::Events | Resource::CoreEvents => "Event",
        }
    }

    /// The `kind` of a LIST response.
    pub fn list_kind(self) -> String {
        format!("{}List", self.kind())
    }

    /// Short names for kubectl (`kubectl get po`, `net-attach-def`).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Resource::Pods => &["po"],
            Resource::NetworkAttachmentDefinitions => &["net-attach-def"],
            Resource::Leases => &[],
            Resource::Events | Resource::CoreEvents => &["ev"],
        }
    }

    /// `plural` for core resources, `plural.group` otherwise: the form the apiserver uses in
    /// messages such as `pods "x" not found` or `leases.coordination.k8s.io "x" not found`.
    pub fn qualified_plural(self) -> String {
        if self.group().is_empty() { self.plural().to_string() } else { format!("{}.{}", self.plural(), self.group()) }
    }

    /// Whether the type has a `status` subresource.
    pub fn has_status_subresource(self) -> bool {
        matches!(self, Resource::Pods)
    }

    /// Whether `metadata.generation` is maintained. Built-in Leases and Events don't set it.
    pub(crate) fn tracks_generation(self) -> bool {
        matches!(self, Resource::Pods | Resource::NetworkAttachmentDefinitions)
    }

    /// Whether DELETE answers with the deleted object (the apiserver's `ReturnDeletedObject`,
    /// true for pods and for custom resources) rather than a `Status` of `Success`.
    pub(crate) fn returns_deleted_object(self) -> bool {
        matches!(self, Resource::Pods | Resource::NetworkAttachmentDefinitions)
    }

    /// Finds the resource served at `group/version` under `plural`.
    pub fn from_path(group: &str, version: &str, plural: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.group() == group && r.version() == version && r.plural() == plural)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_dense_and_unique() {
        let mut seen: Vec<usize> = Resource::ALL.iter().map(|r| r.index()).collect();
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn core_and_group_events_are_distinct() {
        assert_eq!(Resource::from_path("", "v1", "events"), Some(Resource::CoreEvents));
        assert_eq!(Resource::from_path("events.k8s.io", "v1", "events"), Some(Resource::Events));
        assert_eq!(Resource::from_path("", "v1", "leases"), None);
    }

    #[test]
    fn qualified_plural_matches_apiserver_messages() {
        assert_eq!(Resource::Pods.qualified_plural(), "pods");
        assert_eq!(
            Resource::NetworkAttachmentDefinitions.qualified_plural(),
            "network-attachment-definitions.k8s.cni.cncf.io"
        );
    }
}
