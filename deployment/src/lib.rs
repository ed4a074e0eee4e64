//! The deployment manifests as data, for the checks in `tests/`: which files there are, how to read
//! them (multi-document YAML into JSON objects, then into `k8s-openapi` types), and the API permissions
//! the controller uses, which the RBAC rules must grant exactly.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The manifests a user applies, in order: the record type comes before the controller that writes it.
pub const MANIFESTS: &[&str] =
    &["ib-kubernetes-configmap.yaml", "ib-kubernetes-ufm-secret.yaml", "ib-kubernetes-crd.yaml", "ib-kubernetes.yaml"];

/// Manifests a user may add: the admission guard that refuses a forged `configured` marker.
pub const OPTIONAL: &[&str] = &["ib-kubernetes-admission.yaml"];

/// The monitoring objects a Prometheus Operator user may add: the alerts of docs/operations.md.
pub const MONITORING: &[&str] = &["ib-kubernetes-prometheusrule.yaml"];

/// The Grafana dashboard (also `files/` of the chart).
pub const DASHBOARD: &str = "ib-kubernetes-dashboard.json";

/// The Helm chart, relative to [`dir`].
pub const CHART: &str = "../charts/ib-kubernetes";

/// The ownership record type the controller writes (`ib-kubernetes-crd.yaml`).
pub mod record {
    pub const GROUP: &str = "ib-kubernetes.mellanox.com";
    pub const VERSION: &str = "v1alpha1";
    pub const KIND: &str = "GuidBlock";
    pub const LIST_KIND: &str = "GuidBlockList";
    pub const PLURAL: &str = "guidblocks";
    pub const SINGULAR: &str = "guidblock";
    pub const SHORT_NAME: &str = "gb";
    /// GUIDs per record: a block of 64 consecutive GUIDs aligned on 64.
    pub const BLOCK_SIZE: usize = 64;
    /// The states of an allocation.
    pub const STATES: &[&str] = &["Reserved", "Member", "Unknown", "Releasing"];
}

/// The controller's identity at the API server: the ServiceAccount `ib-kubernetes` of `kube-system`.
pub const CONTROLLER_USERNAME: &str = "system:serviceaccount:kube-system:ib-kubernetes";

/// The examples: a NAD, the SR-IOV device plugin's resource, a test pod.
pub const EXAMPLES: &[&str] = &["examples/ib-crd.yaml", "examples/sriov-dp-configmap.yaml", "examples/test-pod.yaml"];

/// Where a permission applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every namespace: granted by the ClusterRole.
    Cluster,
    /// The controller's own namespace (`POD_NAMESPACE`): granted by the Role.
    OwnNamespace,
}

/// One API permission the controller needs, and the code that needs it.
#[derive(Clone, Copy, Debug)]
pub struct Permission {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
    pub scope: Scope,
    pub used_by: &'static str,
}

const fn p(
    group: &'static str,
    resource: &'static str,
    verb: &'static str,
    scope: Scope,
    used_by: &'static str,
) -> Permission {
    Permission { group, resource, verb, scope, used_by }
}

/// Every API call the controller makes. Kept next to the manifests so that a new call and its RBAC rule
/// change together; the test fails when the two disagree in either direction.
pub const CONTROLLER_USES: &[Permission] = &[
    p("", "pods", "list", Scope::Cluster, "ib-controller/src/watch.rs: watcher on Api::all"),
    p("", "pods", "watch", Scope::Cluster, "ib-controller/src/watch.rs: watcher on Api::all"),
    p("", "pods", "get", Scope::Cluster, "ib-controller/src/patcher.rs: re-read after a conflict"),
    p("", "pods", "patch", Scope::Cluster, "ib-controller/src/patcher.rs: guarded annotation patch"),
    p("k8s.cni.cncf.io", "network-attachment-definitions", "list", Scope::Cluster, "ib-controller/src/watch.rs"),
    p("k8s.cni.cncf.io", "network-attachment-definitions", "watch", Scope::Cluster, "ib-controller/src/watch.rs"),
    p(
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "patch",
        Scope::Cluster,
        "ib-controller/src/pkey_allocator.rs: the allocated key's annotation and finalizer",
    ),
    p("events.k8s.io", "events", "create", Scope::Cluster, "ib-controller/src/events.rs: kube Recorder, new event"),
    p("events.k8s.io", "events", "patch", Scope::Cluster, "ib-controller/src/events.rs: kube Recorder, event series"),
    p(record::GROUP, record::PLURAL, "list", Scope::Cluster, "ib-controller/src/records.rs: read at leader start"),
    p(record::GROUP, record::PLURAL, "create", Scope::Cluster, "ib-controller/src/records.rs: a block's first record"),
    p(
        record::GROUP,
        record::PLURAL,
        "patch",
        Scope::Cluster,
        "ib-controller/src/records.rs: merge patch of the changed records",
    ),
    p(record::GROUP, record::PLURAL, "delete", Scope::Cluster, "ib-controller/src/records.rs: a block left empty"),
    p("coordination.k8s.io", "leases", "get", Scope::OwnNamespace, "ib-controller/src/leader.rs"),
    p("coordination.k8s.io", "leases", "create", Scope::OwnNamespace, "ib-controller/src/leader.rs"),
    p("coordination.k8s.io", "leases", "update", Scope::OwnNamespace, "ib-controller/src/leader.rs: PUT"),
    p("", "configmaps", "get", Scope::OwnNamespace, "ib-controller/src/pkey_allocator.rs: the partition ledger"),
    p("", "configmaps", "create", Scope::OwnNamespace, "ib-controller/src/pkey_allocator.rs: the first allocation"),
    p("", "configmaps", "update", Scope::OwnNamespace, "ib-controller/src/pkey_allocator.rs: PUT of the ledger"),
];

/// One granted or used permission: (API group, resource, verb, scope).
pub type Grant = (String, String, String, Scope);

/// Every permission [`CONTROLLER_USES`] lists.
pub fn used() -> std::collections::BTreeSet<Grant> {
    CONTROLLER_USES.iter().map(|p| (p.group.to_owned(), p.resource.to_owned(), p.verb.to_owned(), p.scope)).collect()
}

/// Every permission `rules` grant at `scope`, wildcards included as written (the tests refuse them).
pub fn grants(rules: &[k8s_openapi::api::rbac::v1::PolicyRule], scope: Scope) -> std::collections::BTreeSet<Grant> {
    let mut granted = std::collections::BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone(), scope));
                }
            }
        }
    }
    granted
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: not valid YAML: {source}")]
    Yaml { path: String, source: serde_norway::Error },
    #[error("{path}: a document is not an object with apiVersion, kind and metadata.name")]
    Shape { path: String },
    #[error("{file}: {kind} {name}: not a valid {kind}: {source}")]
    Type { file: String, kind: String, name: String, source: serde_json::Error },
}

/// The directory of the manifests.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One object of a manifest.
#[derive(Clone, Debug)]
pub struct Object {
    /// The file it came from, relative to [`dir`].
    pub file: String,
    pub value: Value,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().or(self.value["metadata"]["generateName"].as_str()).unwrap_or_default()
    }

    /// Reads the object as the `k8s-openapi` type of its kind: `None` for a kind without one here.
    pub fn check_type(&self) -> Option<Result<(), ManifestError>> {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
        use k8s_openapi::api::networking::v1::NetworkPolicy;
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        Some(match self.kind() {
            "ConfigMap" => self.to::<ConfigMap>().map(drop),
            "Secret" => self.to::<Secret>().map(drop),
            "ServiceAccount" => self.to::<ServiceAccount>().map(drop),
            "Service" => self.to::<Service>().map(drop),
            "Pod" => self.to::<Pod>().map(drop),
            "ClusterRole" => self.to::<ClusterRole>().map(drop),
            "ClusterRoleBinding" => self.to::<ClusterRoleBinding>().map(drop),
            "Role" => self.to::<Role>().map(drop),
            "RoleBinding" => self.to::<RoleBinding>().map(drop),
            "Deployment" => self.to::<Deployment>().map(drop),
            "NetworkPolicy" => self.to::<NetworkPolicy>().map(drop),
            "CustomResourceDefinition" => self.to::<CustomResourceDefinition>().map(drop),
            "ValidatingAdmissionPolicy" => self.to::<ValidatingAdmissionPolicy>().map(drop),
            "ValidatingAdmissionPolicyBinding" => self.to::<ValidatingAdmissionPolicyBinding>().map(drop),
            _ => return None,
        })
    }

    /// The object as a typed Kubernetes resource.
    pub fn to<T: DeserializeOwned>(&self) -> Result<T, ManifestError> {
        serde_json::from_value(self.value.clone()).map_err(|source| ManifestError::Type {
            file: self.file.clone(),
            kind: self.kind().to_owned(),
            name: self.name().to_owned(),
            source,
        })
    }
}

/// Every object of `file` (relative to [`dir`]), in order; empty documents are skipped, as kubectl does.
pub fn load(file: &str) -> Result<Vec<Object>, ManifestError> {
    load_path(&dir().join(file), file)
}

fn load_path(path: &Path, file: &str) -> Result<Vec<Object>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: file.to_owned(), source })?;
    parse(&text, file)
}

/// Every object of the multi-document YAML `text` (from `file`, for messages), as [`load`] reads a file:
/// used for `helm template` output too.
pub fn parse(text: &str, file: &str) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document)
            .map_err(|source| ManifestError::Yaml { path: file.to_owned(), source })?;
        if value.is_null() {
            continue;
        }
        let object = Object { file: file.to_owned(), value };
        let named = !object.name().is_empty();
        if object.value["apiVersion"].as_str().is_none() || object.kind().is_empty() || !named {
            return Err(ManifestError::Shape { path: file.to_owned() });
        }
        objects.push(object);
    }
    Ok(objects)
}

/// Every object of every manifest, optional manifest and example.
pub fn load_all() -> Result<Vec<Object>, ManifestError> {
    let mut all = Vec::new();
    for file in MANIFESTS.iter().chain(OPTIONAL).chain(EXAMPLES) {
        all.extend(load(file)?);
    }
    Ok(all)
}

/// The `helm` the chart tests use: `$IB_KUBERNETES_HELM` (what `.ci/run` installs), else
/// `target/tools/bin/helm`, else `helm` in Go's bin directory or on PATH. `None` when there is none.
pub fn helm() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("IB_KUBERNETES_HELM").map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    let mut candidates = vec![dir().join("../target/tools/bin/helm")];
    if let Some(gobin) = std::env::var_os("GOBIN") {
        candidates.push(PathBuf::from(gobin).join("helm"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join("go/bin/helm"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("helm")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_skips_empty_documents_and_checks_shape() {
        let dir = std::env::temp_dir().join(format!("ibk-deployment-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yaml");
        std::fs::write(&good, "---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: B\nmetadata: {generateName: b-}\n").unwrap();
        let objects = load_path(&good, "good.yaml").unwrap();
        assert_eq!(objects.iter().map(|o| (o.kind(), o.name())).collect::<Vec<_>>(), [("A", "a"), ("B", "b-")]);
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "kind: A\n").unwrap();
        assert!(matches!(load_path(&bad, "bad.yaml"), Err(ManifestError::Shape { .. })));
        std::fs::write(&bad, "a: [\n").unwrap();
        assert!(matches!(load_path(&bad, "bad.yaml"), Err(ManifestError::Yaml { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
