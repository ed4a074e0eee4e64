//! Every manifest and example parses into its Kubernetes type; the RBAC rules grant exactly what the
//! controller uses; the Deployment has the properties the README and docs promise.

use std::collections::{BTreeMap, BTreeSet};

use ib_kubernetes_deployment::{CONTROLLER_USES, EXAMPLES, MANIFESTS, Object, Scope, load, load_all};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;

const NAMESPACE: &str = "kube-system";
const ACCOUNT: &str = "ib-kubernetes";

fn objects(file: &str) -> Vec<Object> {
    load(file).unwrap_or_else(|e| panic!("{e}"))
}

fn one<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> T {
    let all = objects(file);
    let mut found = all.iter().filter(|o| o.kind() == kind);
    let object = found.next().unwrap_or_else(|| panic!("{file}: no {kind}"));
    assert!(found.next().is_none(), "{file}: one {kind} expected");
    object.to().unwrap_or_else(|e| panic!("{e}"))
}

fn deployment() -> Deployment {
    one("ib-kubernetes.yaml", "Deployment")
}

fn container() -> Container {
    let d = deployment();
    let spec = d.spec.and_then(|s| s.template.spec).expect("pod spec");
    assert_eq!(spec.containers.len(), 1);
    spec.containers.into_iter().next().expect("container")
}

#[test]
fn every_file_parses_into_its_kubernetes_type() {
    let all = load_all().unwrap_or_else(|e| panic!("{e}"));
    assert!(all.len() >= MANIFESTS.len() + EXAMPLES.len());
    for o in &all {
        let typed = match o.kind() {
            "ConfigMap" => o.to::<ConfigMap>().map(|_| ()),
            "Secret" => o.to::<Secret>().map(|_| ()),
            "ServiceAccount" => o.to::<ServiceAccount>().map(|_| ()),
            "ClusterRole" => o.to::<ClusterRole>().map(|_| ()),
            "ClusterRoleBinding" => o.to::<ClusterRoleBinding>().map(|_| ()),
            "Role" => o.to::<Role>().map(|_| ()),
            "RoleBinding" => o.to::<RoleBinding>().map(|_| ()),
            "Deployment" => o.to::<Deployment>().map(|_| ()),
            "Pod" => o.to::<Pod>().map(|_| ()),
            // No k8s-openapi type for this CRD: its config is checked in examples_fit_together.
            "NetworkAttachmentDefinition" => Ok(()),
            other => panic!("{}: unexpected kind {other}", o.file),
        };
        typed.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// (group, resource, verb, scope) granted to the controller's ServiceAccount by `rules`.
fn grants(rules: &[PolicyRule], scope: Scope, into: &mut BTreeSet<(String, String, String, Scope)>) {
    for rule in rules {
        assert!(rule.non_resource_urls.is_none(), "no non-resource URLs");
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for field in [group, resource, verb] {
                        assert_ne!(field, "*", "no wildcards in RBAC rules");
                    }
                    into.insert((group.clone(), resource.clone(), verb.clone(), scope));
                }
            }
        }
    }
}

#[test]
fn rbac_grants_exactly_what_the_controller_uses() {
    let file = "ib-kubernetes.yaml";
    let account: ServiceAccount = one(file, "ServiceAccount");
    assert_eq!(
        (account.metadata.name.as_deref(), account.metadata.namespace.as_deref()),
        (Some(ACCOUNT), Some(NAMESPACE))
    );
    let subject_is_ours = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        let s = subjects.as_deref().unwrap_or_default();
        s.len() == 1
            && s[0].kind == "ServiceAccount"
            && s[0].name == ACCOUNT
            && s[0].namespace.as_deref() == Some(NAMESPACE)
    };

    let mut granted = BTreeSet::new();
    let cluster_role: ClusterRole = one(file, "ClusterRole");
    let cluster_binding: ClusterRoleBinding = one(file, "ClusterRoleBinding");
    assert_eq!(cluster_binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(cluster_binding.role_ref.name.as_str()), cluster_role.metadata.name.as_deref());
    assert!(subject_is_ours(&cluster_binding.subjects));
    for rule in cluster_role.rules.as_deref().unwrap_or_default() {
        assert!(rule.resource_names.is_none(), "cluster-wide rules apply to every object");
    }
    grants(cluster_role.rules.as_deref().unwrap_or_default(), Scope::Cluster, &mut granted);

    let role: Role = one(file, "Role");
    let binding: RoleBinding = one(file, "RoleBinding");
    assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(binding.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(
        (binding.role_ref.kind.as_str(), Some(binding.role_ref.name.as_str())),
        ("Role", role.metadata.name.as_deref())
    );
    assert!(subject_is_ours(&binding.subjects));
    for rule in role.rules.as_deref().unwrap_or_default() {
        // Only the controller's own Lease may be read or written (create cannot be limited by name).
        if rule.verbs.iter().any(|v| v != "create") {
            assert_eq!(rule.resource_names.as_deref(), Some(&["ib-kubernetes-leader".to_owned()][..]), "{rule:?}");
        }
    }
    grants(role.rules.as_deref().unwrap_or_default(), Scope::OwnNamespace, &mut granted);

    let used: BTreeSet<_> = CONTROLLER_USES
        .iter()
        .map(|p| (p.group.to_owned(), p.resource.to_owned(), p.verb.to_owned(), p.scope))
        .collect();
    let missing: Vec<_> = used.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&used).collect();
    assert!(missing.is_empty(), "the controller uses permissions the RBAC does not grant: {missing:?}");
    assert!(extra.is_empty(), "the RBAC grants permissions the controller does not use: {extra:?}");

    // The Role's namespace is the controller's: the Deployment runs there, and POD_NAMESPACE follows it.
    assert_eq!(deployment().metadata.namespace.as_deref(), Some(NAMESPACE));
}

#[test]
fn the_deployment_is_replicated_probed_and_locked_down() {
    let d = deployment();
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(ACCOUNT));
    assert_ne!(pod.host_network, Some(true), "no host network");
    assert_eq!(pod.security_context.as_ref().and_then(|s| s.run_as_non_root), Some(true));
    let tolerations = pod.tolerations.unwrap_or_default();
    assert!(
        tolerations.iter().any(|t| t.key.as_deref() == Some("node-role.kubernetes.io/control-plane")
            && t.effect.as_deref() == Some("NoSchedule")
            && t.operator.as_deref() == Some("Exists")),
        "tolerates the control-plane taint: {tolerations:?}"
    );

    let c = container();
    assert_eq!(c.command.as_deref(), Some(&["/ib-kubernetes".to_owned()][..]));
    let sc = c.security_context.as_ref().expect("container securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, None);
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert!(caps.add.is_none());

    let resources = c.resources.as_ref().expect("resources");
    for (what, map) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        let map = map.as_ref().unwrap_or_else(|| panic!("{what}"));
        assert!(map.contains_key("cpu") && map.contains_key("memory"), "{what}: {map:?}");
    }

    // Probes on the admin port, which is where ADMIN_ADDRESS makes the server listen.
    let ports = c.ports.as_deref().unwrap_or_default();
    let admin = ports.iter().find(|p| p.name.as_deref() == Some("admin")).expect("admin port");
    assert_eq!(admin.container_port, 9090);
    let admin_address = env_values(&c)["ADMIN_ADDRESS"].clone();
    assert_eq!(admin_address.as_deref(), Some("0.0.0.0:9090"));
    for (probe, path) in [(&c.readiness_probe, "/readyz"), (&c.liveness_probe, "/healthz")] {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap_or_else(|| panic!("{path} probe"));
        assert_eq!(get.path.as_deref(), Some(path));
        let port = serde_json::to_value(&get.port).expect("port");
        assert!(port == "admin" || port == 9090, "{path} probe port {port}");
    }
}

/// Each env var of the container: its literal value, or `None` when it comes from elsewhere.
fn env_values(c: &Container) -> BTreeMap<String, Option<String>> {
    c.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone())).collect()
}

/// The variables the README's configuration tables document.
fn documented_variables() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(ib_kubernetes_deployment::dir().join("../README.md")).expect("README.md");
    let section = readme.split("## Configuration").nth(1).expect("a Configuration section");
    let section = section.split("### Flags").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|name| name.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_deployment_sets_every_documented_variable_and_only_those() {
    let c = container();
    let names: BTreeSet<String> = env_values(&c).into_keys().collect();
    let documented = documented_variables();
    assert!(documented.contains("DAEMON_SM_PLUGIN") && documented.contains("UFM_PASSWORD"), "{documented:?}");
    assert_eq!(names, documented, "Deployment env vs README configuration tables");

    // The identity comes from the downward API.
    let field = |name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(field("K8S_NODE").as_deref(), Some("spec.nodeName"));
    assert_eq!(field("POD_UID").as_deref(), Some("metadata.uid"));
    assert_eq!(field("POD_NAMESPACE").as_deref(), Some("metadata.namespace"));

    // Every reference resolves: required keys exist, the ConfigMap and Secret are the shipped ones.
    let config_map: ConfigMap = one("ib-kubernetes-configmap.yaml", "ConfigMap");
    let secret: Secret = one("ib-kubernetes-ufm-secret.yaml", "Secret");
    let cm_keys: BTreeSet<&String> = config_map.data.as_ref().expect("data").keys().collect();
    let secret_keys: BTreeSet<&String> = secret.string_data.as_ref().expect("stringData").keys().collect();
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            assert_eq!(r.name, "ib-kubernetes-config");
            assert!(
                r.optional == Some(true) || cm_keys.contains(&r.key),
                "required key {} not in the ConfigMap",
                r.key
            );
        }
        if let Some(r) = &from.secret_key_ref {
            assert_eq!(r.name, "ib-kubernetes-ufm-secret");
            assert!(secret_keys.contains(&r.key), "{} not in the Secret", r.key);
        }
    }
    let required: Vec<&str> = c
        .env
        .iter()
        .flatten()
        .filter(|e| {
            e.value_from.as_ref().and_then(|v| v.config_map_key_ref.as_ref()).is_some_and(|r| r.optional != Some(true))
        })
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(required, ["DAEMON_SM_PLUGIN"], "only the plugin is required, as in the Go manifest");
}

#[test]
fn configmap_and_secret_keep_the_go_keys_without_real_credentials() {
    let config_map: ConfigMap = one("ib-kubernetes-configmap.yaml", "ConfigMap");
    assert_eq!(config_map.metadata.namespace.as_deref(), Some(NAMESPACE));
    let data = config_map.data.expect("data");
    for (key, value) in [
        ("DAEMON_SM_PLUGIN", "ufm"),
        ("DAEMON_PERIODIC_UPDATE", "5"),
        ("GUID_POOL_RANGE_START", "02:00:00:00:00:00:00:00"),
        ("GUID_POOL_RANGE_END", "02:FF:FF:FF:FF:FF:FF:FF"),
    ] {
        assert_eq!(data.get(key).map(String::as_str), Some(value), "{key}");
    }

    let secret: Secret = one("ib-kubernetes-ufm-secret.yaml", "Secret");
    assert_eq!(secret.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert!(secret.data.is_none(), "plain text goes in stringData, not base64 data");
    let string_data = secret.string_data.expect("stringData");
    for key in ["UFM_USERNAME", "UFM_PASSWORD", "UFM_ADDRESS", "UFM_HTTP_SCHEMA", "UFM_PORT", "UFM_CERTIFICATE"] {
        assert!(string_data.contains_key(key), "{key}");
    }
    assert_eq!(string_data["UFM_PASSWORD"], "CHANGE-ME", "no real-looking password");
    assert_eq!(string_data["UFM_INSECURE_SKIP_VERIFY"], "", "TLS is verified unless the user opts out");
}

#[test]
fn examples_fit_together() {
    let nad = objects("examples/ib-crd.yaml").into_iter().next().expect("NAD");
    assert_eq!(nad.kind(), "NetworkAttachmentDefinition");
    assert_eq!(nad.value["apiVersion"], "k8s.cni.cncf.io/v1");
    let config: Value =
        serde_json::from_str(nad.value["spec"]["config"].as_str().expect("config")).expect("config JSON");
    assert_eq!((config["type"].as_str(), config["pkey"].as_str()), (Some("ib-sriov"), Some("0x5")));
    let resource = nad.value["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"].as_str().expect("resource");

    let pod: Pod = one("examples/test-pod.yaml", "Pod");
    let networks =
        pod.metadata.annotations.as_ref().and_then(|a| a.get("k8s.v1.cni.cncf.io/networks")).expect("networks");
    let networks: Value = serde_json::from_str(networks).expect("networks JSON");
    assert_eq!(networks[0]["name"].as_str(), nad.value["metadata"]["name"].as_str());
    let requests = pod.spec.as_ref().and_then(|s| s.containers[0].resources.as_ref()).and_then(|r| r.requests.as_ref());
    assert!(requests.is_some_and(|r| r.contains_key(resource)), "the pod requests {resource}");

    let dp: ConfigMap = one("examples/sriov-dp-configmap.yaml", "ConfigMap");
    let dp: Value = serde_json::from_str(&dp.data.expect("data")["config.json"]).expect("device plugin JSON");
    let r = &dp["resourceList"][0];
    assert_eq!(
        format!("{}/{}", r["resourcePrefix"].as_str().unwrap_or(""), r["resourceName"].as_str().unwrap_or("")),
        resource
    );
}
