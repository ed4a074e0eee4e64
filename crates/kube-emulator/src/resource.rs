//! The fixed set of resource types the emulator serves, and their wire names.
//!
//! The controller touches the first five (all namespaced) and its ownership records, GuidBlocks
//! (cluster-scoped, a custom resource of version `v1alpha1`); the rest are here so that kubectl can
//! create every object of the deployment manifests (ConfigMap, Secret, ServiceAccount, Deployment,
//! RBAC, the CustomResourceDefinition and the admission policy with its binding) and of the Helm
//! chart (also a Service, a NetworkPolicy and the Prometheus Operator's ServiceMonitor and
//! PrometheusRule), of which the cluster-wide RBAC, the CRD and the admission objects are
//! cluster-scoped. Those are stored only: a stored CRD serves nothing new (GuidBlocks and the
//! monitoring kinds are served whether or not their CRDs are), a stored admission policy refuses
//! nothing and a stored NetworkPolicy blocks nothing. Adding a type means one enum variant and one row in each
//! `match`: the store, router and discovery derive everything else from these tables.

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
    /// core `v1` `configmaps`.
    ConfigMaps,
    /// core `v1` `secrets`.
    Secrets,
    /// core `v1` `serviceaccounts`.
    ServiceAccounts,
    /// `apps/v1` `deployments` (stored only: no controller acts on them, no status subresource).
    Deployments,
    /// `rbac.authorization.k8s.io/v1` `roles`.
    Roles,
    /// `rbac.authorization.k8s.io/v1` `rolebindings`.
    RoleBindings,
    /// `rbac.authorization.k8s.io/v1` `clusterroles` (cluster-scoped).
    ClusterRoles,
    /// `rbac.authorization.k8s.io/v1` `clusterrolebindings` (cluster-scoped).
    ClusterRoleBindings,
    /// `ib-kubernetes.mellanox.com/v1alpha1` `guidblocks`: the controller's ownership records (a
    /// cluster-scoped custom resource without a status subresource).
    GuidBlocks,
    /// `apiextensions.k8s.io/v1` `customresourcedefinitions` (cluster-scoped; stored only).
    CustomResourceDefinitions,
    /// `admissionregistration.k8s.io/v1` `validatingadmissionpolicies` (cluster-scoped; stored only).
    ValidatingAdmissionPolicies,
    /// `admissionregistration.k8s.io/v1` `validatingadmissionpolicybindings` (cluster-scoped; stored
    /// only).
    ValidatingAdmissionPolicyBindings,
    /// core `v1` `nodes` (cluster-scoped, with a `status` subresource): registered by whoever plays
    /// the kubelet; the emulator itself runs nothing on them.
    Nodes,
    /// core `v1` `services`, with a `status` subresource (stored only: no cluster IP is allocated,
    /// no endpoints follow).
    Services,
    /// `networking.k8s.io/v1` `networkpolicies` (stored only: nothing is enforced).
    NetworkPolicies,
    /// `monitoring.coreos.com/v1` `servicemonitors`: the Prometheus Operator's custom resource,
    /// served like NADs (schemaless, no status subresource) and stored only.
    ServiceMonitors,
    /// `monitoring.coreos.com/v1` `prometheusrules`: likewise.
    PrometheusRules,
}

impl Resource {
    /// All served resources, in a fixed order used to index per-resource tables.
    pub const ALL: [Resource; 22] = [
        Resource::Pods,
        Resource::NetworkAttachmentDefinitions,
        Resource::Leases,
        Resource::Events,
        Resource::CoreEvents,
        Resource::ConfigMaps,
        Resource::Secrets,
        Resource::ServiceAccounts,
        Resource::Deployments,
        Resource::Roles,
        Resource::RoleBindings,
        Resource::ClusterRoles,
        Resource::ClusterRoleBindings,
        Resource::GuidBlocks,
        Resource::CustomResourceDefinitions,
        Resource::ValidatingAdmissionPolicies,
        Resource::ValidatingAdmissionPolicyBindings,
        Resource::Nodes,
        Resource::Services,
        Resource::NetworkPolicies,
        Resource::ServiceMonitors,
        Resource::PrometheusRules,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            Resource::Pods => 0,
            Resource::NetworkAttachmentDefinitions => 1,
            Resource::Leases => 2,
            Resource::Events => 3,
            Resource::CoreEvents => 4,
            Resource::ConfigMaps => 5,
            Resource::Secrets => 6,
            Resource::ServiceAccounts => 7,
            Resource::Deployments => 8,
            Resource::Roles => 9,
            Resource::RoleBindings => 10,
            Resource::ClusterRoles => 11,
            Resource::ClusterRoleBindings => 12,
            Resource::GuidBlocks => 13,
            Resource::CustomResourceDefinitions => 14,
            Resource::ValidatingAdmissionPolicies => 15,
            Resource::ValidatingAdmissionPolicyBindings => 16,
            Resource::Nodes => 17,
            Resource::Services => 18,
            Resource::NetworkPolicies => 19,
            Resource::ServiceMonitors => 20,
            Resource::PrometheusRules => 21,
        }
    }

    /// API group; empty for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Resource::Pods
            | Resource::Nodes
            | Resource::CoreEvents
            | Resource::ConfigMaps
            | Resource::Secrets
            | Resource::ServiceAccounts
            | Resource::Services => "",
            Resource::NetworkAttachmentDefinitions => "k8s.cni.cncf.io",
            Resource::Leases => "coordination.k8s.io",
            Resource::Events => "events.k8s.io",
            Resource::Deployments => "apps",
            Resource::Roles | Resource::RoleBindings | Resource::ClusterRoles | Resource::ClusterRoleBindings => {
                "rbac.authorization.k8s.io"
            }
            Resource::GuidBlocks => "ib-kubernetes.mellanox.com",
            Resource::CustomResourceDefinitions => "apiextensions.k8s.io",
            Resource::ValidatingAdmissionPolicies | Resource::ValidatingAdmissionPolicyBindings => {
                "admissionregistration.k8s.io"
            }
            Resource::NetworkPolicies => "networking.k8s.io",
            Resource::ServiceMonitors | Resource::PrometheusRules => "monitoring.coreos.com",
        }
    }

    /// Whether objects live in a namespace; the cluster-wide RBAC, GuidBlocks, CRDs and admission
    /// policies don't.
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            Resource::ClusterRoles
                | Resource::ClusterRoleBindings
                | Resource::Nodes
                | Resource::GuidBlocks
                | Resource::CustomResourceDefinitions
                | Resource::ValidatingAdmissionPolicies
                | Resource::ValidatingAdmissionPolicyBindings
        )
    }

    /// API version within the group: the one version served for it.
    pub fn version(self) -> &'static str {
        match self {
            Resource::GuidBlocks => "v1alpha1",
            _ => "v1",
        }
    }

    /// The `apiVersion` field value: `v1` for core, `group/v1` otherwise.
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::Pods
            | Resource::Nodes
            | Resource::CoreEvents
            | Resource::ConfigMaps
            | Resource::Secrets
            | Resource::ServiceAccounts
            | Resource::Services => "v1",
            Resource::NetworkAttachmentDefinitions => "k8s.cni.cncf.io/v1",
            Resource::Leases => "coordination.k8s.io/v1",
            Resource::Events => "events.k8s.io/v1",
            Resource::Deployments => "apps/v1",
            Resource::Roles | Resource::RoleBindings | Resource::ClusterRoles | Resource::ClusterRoleBindings => {
                "rbac.authorization.k8s.io/v1"
            }
            Resource::GuidBlocks => "ib-kubernetes.mellanox.com/v1alpha1",
            Resource::CustomResourceDefinitions => "apiextensions.k8s.io/v1",
            Resource::ValidatingAdmissionPolicies | Resource::ValidatingAdmissionPolicyBindings => {
                "admissionregistration.k8s.io/v1"
            }
            Resource::NetworkPolicies => "networking.k8s.io/v1",
            Resource::ServiceMonitors | Resource::PrometheusRules => "monitoring.coreos.com/v1",
        }
    }

    /// The plural used in URLs and in Status `details.kind`.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Nodes => "nodes",
            Resource::NetworkAttachmentDefinitions => "network-attachment-definitions",
            Resource::Leases => "leases",
            Resource::Events | Resource::CoreEvents => "events",
            Resource::ConfigMaps => "configmaps",
            Resource::Secrets => "secrets",
            Resource::ServiceAccounts => "serviceaccounts",
            Resource::Deployments => "deployments",
            Resource::Roles => "roles",
            Resource::RoleBindings => "rolebindings",
            Resource::ClusterRoles => "clusterroles",
            Resource::ClusterRoleBindings => "clusterrolebindings",
            Resource::GuidBlocks => "guidblocks",
            Resource::CustomResourceDefinitions => "customresourcedefinitions",
            Resource::ValidatingAdmissionPolicies => "validatingadmissionpolicies",
            Resource::ValidatingAdmissionPolicyBindings => "validatingadmissionpolicybindings",
            Resource::Services => "services",
            Resource::NetworkPolicies => "networkpolicies",
            Resource::ServiceMonitors => "servicemonitors",
            Resource::PrometheusRules => "prometheusrules",
        }
    }

    /// Singular name, as discovery reports it.
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Pods => "pod",
            Resource::Nodes => "node",
            Resource::NetworkAttachmentDefinitions => "network-attachment-definition",
            Resource::Leases => "lease",
            Resource::Events | Resource::CoreEvents => "event",
            Resource::ConfigMaps => "configmap",
            Resource::Secrets => "secret",
            Resource::ServiceAccounts => "serviceaccount",
            Resource::Deployments => "deployment",
            Resource::Roles => "role",
            Resource::RoleBindings => "rolebinding",
            Resource::ClusterRoles => "clusterrole",
            Resource::ClusterRoleBindings => "clusterrolebinding",
            Resource::GuidBlocks => "guidblock",
            Resource::CustomResourceDefinitions => "customresourcedefinition",
            Resource::ValidatingAdmissionPolicies => "validatingadmissionpolicy",
            Resource::ValidatingAdmissionPolicyBindings => "validatingadmissionpolicybinding",
            Resource::Services => "service",
            Resource::NetworkPolicies => "networkpolicy",
            Resource::ServiceMonitors => "servicemonitor",
            Resource::PrometheusRules => "prometheusrule",
        }
    }

    /// The object `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::Nodes => "Node",
            Resource::NetworkAttachmentDefinitions => "NetworkAttachmentDefinition",
            Resource::Leases => "Lease",
            Resource::Events | Resource::CoreEvents => "Event",
            Resource::ConfigMaps => "ConfigMap",
            Resource::Secrets => "Secret",
            Resource::ServiceAccounts => "ServiceAccount",
            Resource::Deployments => "Deployment",
            Resource::Roles => "Role",
            Resource::RoleBindings => "RoleBinding",
            Resource::ClusterRoles => "ClusterRole",
            Resource::ClusterRoleBindings => "ClusterRoleBinding",
            Resource::GuidBlocks => "GuidBlock",
            Resource::CustomResourceDefinitions => "CustomResourceDefinition",
            Resource::ValidatingAdmissionPolicies => "ValidatingAdmissionPolicy",
            Resource::ValidatingAdmissionPolicyBindings => "ValidatingAdmissionPolicyBinding",
            Resource::Services => "Service",
            Resource::NetworkPolicies => "NetworkPolicy",
            Resource::ServiceMonitors => "ServiceMonitor",
            Resource::PrometheusRules => "PrometheusRule",
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
            Resource::Nodes => &["no"],
            Resource::NetworkAttachmentDefinitions => &["net-attach-def"],
            Resource::Events | Resource::CoreEvents => &["ev"],
            Resource::ConfigMaps => &["cm"],
            Resource::ServiceAccounts => &["sa"],
            Resource::Deployments => &["deploy"],
            Resource::GuidBlocks => &["gb"],
            Resource::CustomResourceDefinitions => &["crd", "crds"],
            Resource::Services => &["svc"],
            Resource::NetworkPolicies => &["netpol"],
            // As the Prometheus Operator's CRDs name them.
            Resource::ServiceMonitors => &["smon"],
            Resource::PrometheusRules => &["promrule"],
            Resource::Leases
            | Resource::Secrets
            | Resource::Roles
            | Resource::RoleBindings
            | Resource::ClusterRoles
            | Resource::ClusterRoleBindings
            | Resource::ValidatingAdmissionPolicies
            | Resource::ValidatingAdmissionPolicyBindings => &[],
        }
    }

    /// `plural` for core resources, `plural.group` otherwise: the form the apiserver uses in
    /// messages such as `pods "x" not found` or `leases.coordination.k8s.io "x" not found`.
    pub fn qualified_plural(self) -> String {
        if self.group().is_empty() { self.plural().to_string() } else { format!("{}.{}", self.plural(), self.group()) }
    }

    /// Whether the type has a `status` subresource.
    pub fn has_status_subresource(self) -> bool {
        matches!(self, Resource::Pods | Resource::Nodes | Resource::Services)
    }

    /// Whether `metadata.generation` is maintained. Built-in Leases, Events, ConfigMaps, Secrets,
    /// ServiceAccounts, Services and RBAC objects don't set it.
    pub(crate) fn tracks_generation(self) -> bool {
        matches!(
            self,
            Resource::Pods
                | Resource::NetworkAttachmentDefinitions
                | Resource::Deployments
                | Resource::GuidBlocks
                | Resource::CustomResourceDefinitions
                | Resource::ValidatingAdmissionPolicies
                | Resource::ValidatingAdmissionPolicyBindings
                | Resource::NetworkPolicies
                | Resource::ServiceMonitors
                | Resource::PrometheusRules
        )
    }

    /// Whether DELETE answers with the deleted object (the apiserver's `ReturnDeletedObject`,
    /// true for pods, services and custom resources) rather than a `Status` of `Success`.
    pub(crate) fn returns_deleted_object(self) -> bool {
        matches!(
            self,
            Resource::Pods
                | Resource::Services
                | Resource::NetworkAttachmentDefinitions
                | Resource::GuidBlocks
                | Resource::ServiceMonitors
                | Resource::PrometheusRules
        )
    }

    /// Whether the type is a custom resource (served as if by a CustomResourceDefinition) rather
    /// than a built-in kind.
    pub fn is_custom(self) -> bool {
        matches!(
            self,
            Resource::NetworkAttachmentDefinitions
                | Resource::GuidBlocks
                | Resource::ServiceMonitors
                | Resource::PrometheusRules
        )
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
        assert_eq!(seen, (0..Resource::ALL.len()).collect::<Vec<_>>());
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
        assert_eq!(Resource::ClusterRoles.qualified_plural(), "clusterroles.rbac.authorization.k8s.io");
    }

    #[test]
    fn cluster_scoped_types_are_the_cluster_wide_ones() {
        let cluster: Vec<Resource> = Resource::ALL.into_iter().filter(|r| !r.namespaced()).collect();
        assert_eq!(
            cluster,
            vec![
                Resource::ClusterRoles,
                Resource::ClusterRoleBindings,
                Resource::GuidBlocks,
                Resource::CustomResourceDefinitions,
                Resource::ValidatingAdmissionPolicies,
                Resource::ValidatingAdmissionPolicyBindings,
                Resource::Nodes,
            ]
        );
        assert_eq!(Resource::from_path("apps", "v1", "deployments"), Some(Resource::Deployments));
        assert_eq!(Resource::from_path("", "v1", "configmaps"), Some(Resource::ConfigMaps));
    }

    #[test]
    fn guidblocks_are_served_at_v1alpha1_only() {
        let group = "ib-kubernetes.mellanox.com";
        assert_eq!(Resource::from_path(group, "v1alpha1", "guidblocks"), Some(Resource::GuidBlocks));
        assert_eq!(Resource::from_path(group, "v1", "guidblocks"), None);
        assert_eq!(Resource::GuidBlocks.api_version(), "ib-kubernetes.mellanox.com/v1alpha1");
        assert_eq!(Resource::GuidBlocks.qualified_plural(), "guidblocks.ib-kubernetes.mellanox.com");
        assert_eq!(
            Resource::from_path("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings"),
            Some(Resource::ValidatingAdmissionPolicyBindings)
        );
    }

    #[test]
    fn api_version_is_group_slash_version() {
        for r in Resource::ALL {
            let expected =
                if r.group().is_empty() { r.version().to_string() } else { format!("{}/{}", r.group(), r.version()) };
            assert_eq!(r.api_version(), expected, "{r:?}");
        }
    }
}
