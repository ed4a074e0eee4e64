//! Every manifest and example parses into its Kubernetes type; the RBAC rules grant exactly what the
//! controller uses and nothing reaches tenants; the record CRD is structural and accepts exactly the
//! record shape; the Deployment has the properties the README and docs promise.

use std::collections::{BTreeMap, BTreeSet};

use ib_kubernetes_deployment::{CONTROLLER_USES, EXAMPLES, MANIFESTS, OPTIONAL, Object, Scope, load, load_all, record};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::{Value, json};

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
    assert!(all.len() >= MANIFESTS.len() + OPTIONAL.len() + EXAMPLES.len());
    for o in &all {
        let typed = match o.kind() {
            // No k8s-openapi type for this CRD: its config is checked in examples_fit_together.
            "NetworkAttachmentDefinition" => Ok(()),
            kind => o.check_type().unwrap_or_else(|| panic!("{}: unexpected kind {kind}", o.file)),
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
        // Only the controller's own Lease and partition ledger may be read or written (create cannot be
        // limited by name).
        if rule.verbs.iter().any(|v| v != "create") {
            let own = match rule.resources.as_deref() {
                Some([r]) if r == "leases" => "ib-kubernetes-leader",
                Some([r]) if r == "configmaps" => "ib-kubernetes-pkey-allocations",
                other => panic!("the namespaced Role reaches {other:?}"),
            };
            assert_eq!(rule.resource_names.as_deref(), Some(&[own.to_owned()][..]), "{rule:?}");
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

fn is_ours(subject: &Subject) -> bool {
    subject.kind == "ServiceAccount" && subject.name == ACCOUNT && subject.namespace.as_deref() == Some(NAMESPACE)
}

/// Whether `rules` give anything on the ownership records (wildcards included).
fn reaches_records(rules: &[PolicyRule]) -> bool {
    rules.iter().any(|rule| {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        groups.iter().any(|g| g == record::GROUP || g == "*")
            && resources
                .iter()
                .any(|r| r == record::PLURAL || r.starts_with(&format!("{}/", record::PLURAL)) || r == "*")
    })
}

#[test]
fn no_role_shares_the_records_with_tenants() {
    let all = load_all().unwrap_or_else(|e| panic!("{e}"));
    let mut roles: BTreeMap<(&str, String), Vec<PolicyRule>> = BTreeMap::new();
    for o in &all {
        let (labels, rules) = match o.kind() {
            "ClusterRole" => {
                let role: ClusterRole = o.to().unwrap_or_else(|e| panic!("{e}"));
                // An aggregated role takes its rules from whatever matches its selector.
                assert!(role.aggregation_rule.is_none(), "{}: ClusterRole {} aggregates", o.file, o.name());
                (role.metadata.labels, role.rules.unwrap_or_default())
            }
            "Role" => {
                let role: Role = o.to().unwrap_or_else(|e| panic!("{e}"));
                (role.metadata.labels, role.rules.unwrap_or_default())
            }
            _ => continue,
        };
        // rbac.authorization.k8s.io/aggregate-to-{admin,edit,view} copies a role's rules into the
        // roles given to namespace users.
        for key in labels.unwrap_or_default().keys() {
            assert!(!key.contains("aggregate-to"), "{}: {} {} carries {key}", o.file, o.kind(), o.name());
        }
        roles.insert((o.kind(), o.name().to_owned()), rules);
    }
    let mut records_bound = 0;
    for o in &all {
        let (role_kind, role_name, subjects) = match o.kind() {
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = o.to().unwrap_or_else(|e| panic!("{e}"));
                (b.role_ref.kind, b.role_ref.name, b.subjects.unwrap_or_default())
            }
            "RoleBinding" => {
                let b: RoleBinding = o.to().unwrap_or_else(|e| panic!("{e}"));
                (b.role_ref.kind, b.role_ref.name, b.subjects.unwrap_or_default())
            }
            _ => continue,
        };
        let Some(rules) = roles.get(&(role_kind.as_str(), role_name.clone())) else {
            panic!("{}: {} {} binds {role_kind} {role_name}, which no manifest defines", o.file, o.kind(), o.name());
        };
        if reaches_records(rules) {
            records_bound += 1;
            assert!(
                subjects.iter().all(is_ours),
                "{}: {} {} gives the ownership records to {subjects:?}",
                o.file,
                o.kind(),
                o.name()
            );
        }
    }
    assert_eq!(records_bound, 1, "exactly one binding gives the controller its records");
}

fn crd() -> CustomResourceDefinition {
    one("ib-kubernetes-crd.yaml", "CustomResourceDefinition")
}

fn record_schema() -> JSONSchemaProps {
    let crd = crd();
    let version = crd.spec.versions.into_iter().next().expect("a version");
    version.schema.and_then(|s| s.open_api_v3_schema).expect("openAPIV3Schema")
}

#[test]
fn the_record_crd_names_the_type_the_controller_writes() {
    let crd = crd();
    assert!(crd.metadata.labels.is_none(), "no labels (no aggregation, no selection by tenants' tools)");
    assert_eq!(crd.metadata.name.as_deref(), Some(format!("{}.{}", record::PLURAL, record::GROUP).as_str()));
    let spec = &crd.spec;
    assert_eq!(spec.group, record::GROUP);
    assert_eq!(spec.scope, "Cluster");
    let names = &spec.names;
    assert_eq!(names.kind, record::KIND);
    assert_eq!(names.list_kind.as_deref(), Some(record::LIST_KIND));
    assert_eq!(names.plural, record::PLURAL);
    assert_eq!(names.singular.as_deref(), Some(record::SINGULAR));
    assert_eq!(names.short_names.as_deref(), Some(&[record::SHORT_NAME.to_owned()][..]));
    assert!(names.categories.is_none(), "not in `kubectl get all`");
    assert_eq!(spec.versions.len(), 1);
    let version = &spec.versions[0];
    assert_eq!((version.name.as_str(), version.served, version.storage), (record::VERSION, true, true));
    assert!(version.subresources.is_none(), "no status subresource: one PUT writes the whole record");
    let columns: Vec<(&str, &str, &str)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(columns, [("Start", "string", ".spec.start"), ("Age", "date", ".metadata.creationTimestamp")]);
}

/// The rules of a structural schema the API server enforces: every node has a type, a node has
/// either `properties` or `additionalProperties`, and the root's `metadata` is only an object.
fn assert_structural(schema: &JSONSchemaProps, path: &str) {
    assert!(schema.type_.as_deref().is_some_and(|t| !t.is_empty()), "{path}: no type");
    assert!(schema.x_kubernetes_preserve_unknown_fields.is_none(), "{path}: unknown fields kept");
    assert!(
        schema.properties.is_none() || schema.additional_properties.is_none(),
        "{path}: properties and additionalProperties together"
    );
    for (name, child) in schema.properties.iter().flatten() {
        if path == "<root>" && name == "metadata" {
            assert_eq!(child, &JSONSchemaProps { type_: Some("object".into()), ..JSONSchemaProps::default() });
            continue;
        }
        assert_structural(child, &format!("{path}.{name}"));
    }
    if let Some(JSONSchemaPropsOrBool::Schema(child)) = &schema.additional_properties {
        assert_structural(child, &format!("{path}[*]"));
    }
    if let Some(JSONSchemaPropsOrArray::Schema(child)) = &schema.items {
        assert_structural(child, &format!("{path}[]"));
    }
}

/// What the API server would refuse (or prune) in `value`, checked against `schema`: type,
/// required, enum, pattern, maxProperties, and fields the schema does not know (pruned silently by
/// the server, which for a record means data lost, so it counts as an error here).
fn violations(schema: &JSONSchemaProps, value: &Value, path: &str, out: &mut Vec<String>) {
    let type_ok = match schema.type_.as_deref() {
        Some("object") => value.is_object(),
        Some("string") => value.is_string(),
        Some("array") => value.is_array(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        other => panic!("{path}: type {other:?} not handled"),
    };
    if !type_ok {
        out.push(format!("{path}: not a {}", schema.type_.as_deref().unwrap_or_default()));
        return;
    }
    if let Some(values) = &schema.enum_
        && !values.iter().any(|v| &v.0 == value)
    {
        out.push(format!("{path}: {value} not one of the enum"));
    }
    if let (Some(pattern), Some(text)) = (&schema.pattern, value.as_str()) {
        let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{path}: pattern {pattern:?}: {e}"));
        if !re.is_match(text) {
            out.push(format!("{path}: {text:?} does not match {pattern}"));
        }
    }
    let Some(map) = value.as_object() else { return };
    if let Some(max) = schema.max_properties
        && map.len() as i64 > max
    {
        out.push(format!("{path}: {} properties, at most {max}", map.len()));
    }
    for required in schema.required.iter().flatten() {
        if !map.contains_key(required) {
            out.push(format!("{path}.{required}: required"));
        }
    }
    for (key, child) in map {
        let child_path = format!("{path}.{key}");
        if path.is_empty() && key == "metadata" {
            continue;
        }
        match (schema.properties.as_ref().and_then(|p| p.get(key)), &schema.additional_properties) {
            (Some(s), _) => violations(s, child, &child_path, out),
            (None, Some(JSONSchemaPropsOrBool::Schema(s))) => violations(s, child, &child_path, out),
            (None, Some(JSONSchemaPropsOrBool::Bool(true))) => {}
            (None, _) => out.push(format!("{child_path}: unknown field, pruned")),
        }
    }
}

fn check(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    violations(&record_schema(), value, "", &mut out);
    out
}

/// A record exactly as the controller writes it: one allocation with a pkey, one GUID-only.
fn sample_record() -> Value {
    json!({
        "apiVersion": format!("{}/{}", record::GROUP, record::VERSION),
        "kind": record::KIND,
        "metadata": { "name": "0200000000000100" },
        "spec": {
            "start": "02:00:00:00:00:00:01:00",
            "allocations": {
                "02:00:00:00:00:00:01:05": {
                    "podUid": "6f1c2b0e-5b7d-4c1e-9a63-0c1a8f7b2d11", "namespace": "tenant-a", "pod": "trainer-0",
                    "network": "tenant-a/ib-sriov", "interface": "net1", "pkey": "0x0005", "state": "Member"
                },
                "02:00:00:00:00:00:01:06": {
                    "podUid": "0b1c2d3e-0000-4000-8000-000000000001", "namespace": "tenant-b", "pod": "web",
                    "network": "tenant-b/guid-only", "interface": "net2", "state": "Reserved"
                }
            }
        }
    })
}

#[test]
fn the_record_schema_is_structural_and_accepts_the_record_shape() {
    let schema = record_schema();
    assert_structural(&schema, "<root>");
    assert_eq!(check(&sample_record()), Vec::<String>::new());

    // Every state, a block with no allocation, and a full block.
    let mut record = sample_record();
    for state in record::STATES {
        record["spec"]["allocations"]["02:00:00:00:00:00:01:05"]["state"] = json!(state);
        assert_eq!(check(&record), Vec::<String>::new(), "{state}");
    }
    let mut empty = sample_record();
    remove(&mut empty["spec"], "allocations");
    assert_eq!(check(&empty), Vec::<String>::new());
    let allocation = sample_record()["spec"]["allocations"]["02:00:00:00:00:00:01:05"].clone();
    let full: serde_json::Map<String, Value> =
        (0..record::BLOCK_SIZE).map(|i| (format!("02:00:00:00:00:00:01:{i:02x}"), allocation.clone())).collect();
    let mut block = sample_record();
    block["spec"]["allocations"] = Value::Object(full.clone());
    assert_eq!(check(&block), Vec::<String>::new());
    // The schema's block is the controller's.
    assert_eq!(record::BLOCK_SIZE as u64, ib_model::records::BLOCK_SIZE);
    // Every block start the controller can write (blocks are aligned on their size).
    for start in
        ["02:00:00:00:00:00:01:00", "02:00:00:00:00:00:01:40", "02:00:00:00:00:00:01:80", "02:00:00:00:00:00:01:c0"]
    {
        let mut block = sample_record();
        block["spec"]["start"] = json!(start);
        assert_eq!(check(&block), Vec::<String>::new(), "{start}");
    }

    // The schema's enum is the controller's list of states.
    let states = schema
        .properties
        .as_ref()
        .and_then(|p| p.get("spec"))
        .and_then(|s| s.properties.as_ref())
        .and_then(|p| p.get("allocations"))
        .and_then(|a| match &a.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(s)) => s.properties.as_ref().and_then(|p| p.get("state")).cloned(),
            _ => None,
        })
        .and_then(|s| s.enum_)
        .expect("state enum");
    assert_eq!(
        states.iter().map(|v| v.0.clone()).collect::<Vec<_>>(),
        record::STATES.iter().map(|s| json!(s)).collect::<Vec<_>>()
    );
}

/// A change to a sample record.
type Mutation = Box<dyn Fn(&mut Value)>;

fn remove(object: &mut Value, field: &str) {
    object.as_object_mut().expect("an object").remove(field);
}

#[test]
fn the_record_schema_refuses_malformed_records() {
    const GUID: &str = "02:00:00:00:00:00:01:05";
    let cases: Vec<(&str, Mutation, &str)> = vec![
        ("unknown state", Box::new(|r| r["spec"]["allocations"][GUID]["state"] = json!("Owned")), ".state"),
        ("lower-case state", Box::new(|r| r["spec"]["allocations"][GUID]["state"] = json!("member")), ".state"),
        ("short pkey", Box::new(|r| r["spec"]["allocations"][GUID]["pkey"] = json!("0x5")), ".pkey"),
        ("pkey without 0x", Box::new(|r| r["spec"]["allocations"][GUID]["pkey"] = json!("0005")), ".pkey"),
        ("long pkey", Box::new(|r| r["spec"]["allocations"][GUID]["pkey"] = json!("0x00005")), ".pkey"),
        ("pkey not hex", Box::new(|r| r["spec"]["allocations"][GUID]["pkey"] = json!("0xzzzz")), ".pkey"),
        ("pkey as a number", Box::new(|r| r["spec"]["allocations"][GUID]["pkey"] = json!(5)), ".pkey"),
        ("start not aligned", Box::new(|r| r["spec"]["start"] = json!("02:00:00:00:00:00:01:05")), ".spec.start"),
        ("start in upper case", Box::new(|r| r["spec"]["start"] = json!("0A:00:00:00:00:00:01:00")), ".spec.start"),
        ("start without colons", Box::new(|r| r["spec"]["start"] = json!("0200000000000100")), ".spec.start"),
        ("start too long", Box::new(|r| r["spec"]["start"] = json!("02:00:00:00:00:00:00:01:00")), ".spec.start"),
        ("no start", Box::new(|r| remove(&mut r["spec"], "start")), ".spec.start"),
        ("no spec", Box::new(|r| remove(r, "spec")), ".spec"),
        ("allocation not an object", Box::new(|r| r["spec"]["allocations"][GUID] = json!("tenant-a/p")), GUID),
        ("allocations a list", Box::new(|r| r["spec"]["allocations"] = json!([])), ".allocations"),
        ("unknown field", Box::new(|r| r["spec"]["allocations"][GUID]["owner"] = json!("x")), ".owner"),
        ("unknown spec field", Box::new(|r| r["spec"]["pkeys"] = json!(["0x0005"])), ".pkeys"),
        ("start on 32", Box::new(|r| r["spec"]["start"] = json!("02:00:00:00:00:00:01:20")), ".spec.start"),
        (
            "one allocation more than a block holds",
            Box::new(|r| {
                let a = r["spec"]["allocations"][GUID].clone();
                r["spec"]["allocations"] =
                    Value::Object((0..=record::BLOCK_SIZE).map(|i| (format!("k{i}"), a.clone())).collect());
            }),
            ".allocations",
        ),
    ];
    for (what, mutate, field) in cases {
        let mut record = sample_record();
        mutate(&mut record);
        let errors = check(&record);
        assert!(errors.iter().any(|e| e.contains(field)), "{what}: expected an error at {field}, got {errors:?}");
    }
    for field in ["podUid", "namespace", "pod", "network", "interface", "state"] {
        let mut record = sample_record();
        remove(&mut record["spec"]["allocations"][GUID], field);
        let errors = check(&record);
        assert!(errors.iter().any(|e| e.ends_with(&format!(".{field}: required"))), "{field}: {errors:?}");
    }
    let mut guid_only = sample_record();
    remove(&mut guid_only["spec"]["allocations"][GUID], "pkey");
    assert_eq!(check(&guid_only), Vec::<String>::new(), "pkey is optional");
}
