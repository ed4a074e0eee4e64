//! The Helm chart (charts/ib-kubernetes) with the real `helm`: it lints; its default rendering is the
//! objects of deployment/ (so the two cannot drift); every rendered object parses into its Kubernetes
//! type and its RBAC grants exactly what the controller uses, in any namespace; every configuration
//! variable of the README is a value with the README's default; the values schema refuses bad values
//! with a message naming the field. Each test prints a SKIP line and returns when helm is missing.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Helm;
use ib_kubernetes_deployment::{DASHBOARD, MANIFESTS, MONITORING, OPTIONAL, Object, Scope, dir, grants, load, used};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;

/// Every optional part switched on.
const EVERYTHING: &[&str] = &[
    "--set",
    "admission.enabled=true,serviceMonitor.enabled=true,networkPolicy.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true",
];

/// Labels the chart adds for Helm's bookkeeping; deployment/ has none of them.
fn strip_chart_labels(value: &mut Value) {
    let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
        labels.retain(|k, _| !k.starts_with("app.kubernetes.io/") && !k.starts_with("helm.sh/"));
        if labels.is_empty() {
            metadata.remove("labels");
        }
    }
}

/// The first place where `a` and `b` differ, as a path and both values.
fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                difference(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"))
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| difference(p, q, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

fn by_key(objects: &[Object]) -> BTreeMap<(String, String), Value> {
    let mut map = BTreeMap::new();
    for o in objects {
        let mut value = o.value.clone();
        strip_chart_labels(&mut value);
        let key = (o.kind().to_owned(), o.name().to_owned());
        assert!(map.insert(key.clone(), value).is_none(), "{key:?} twice");
    }
    map
}

fn typed<T: serde::de::DeserializeOwned>(objects: &[Object], kind: &str) -> Vec<T> {
    objects.iter().filter(|o| o.kind() == kind).map(|o| o.to().unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn one<T: serde::de::DeserializeOwned>(objects: &[Object], kind: &str) -> T {
    let mut all = typed::<T>(objects, kind);
    assert_eq!(all.len(), 1, "one {kind} expected");
    all.remove(0)
}

fn container(objects: &[Object]) -> Container {
    let d: Deployment = one(objects, "Deployment");
    d.spec.and_then(|s| s.template.spec).map(|s| s.containers).and_then(|c| c.into_iter().next()).expect("container")
}

#[test]
fn helm_lint_passes_strictly_with_defaults_and_with_everything_on() {
    let Some(helm) = Helm::find() else { return };
    for extra in [&[][..], EVERYTHING] {
        let mut args = vec!["lint", "--strict", "{chart}"];
        args.extend_from_slice(extra);
        let out = helm.run(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "helm lint {extra:?}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("1 chart(s) linted, 0 chart(s) failed"), "{stdout}");
    }
}

#[test]
fn the_default_chart_renders_the_objects_of_deployment() {
    let Some(helm) = Helm::find() else { return };
    let rendered = by_key(&helm.objects("kube-system", &["--set", "admission.enabled=true"]));
    let shipped: Vec<Object> =
        MANIFESTS.iter().chain(OPTIONAL).flat_map(|f| load(f).unwrap_or_else(|e| panic!("{e}"))).collect();
    let shipped = by_key(&shipped);
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        shipped.keys().collect::<Vec<_>>(),
        "the chart and deployment/ hold different objects"
    );
    for (key, value) in &shipped {
        if let Some(d) = difference(&rendered[key], value, "") {
            panic!("{key:?}: chart vs deployment/ differ at {d}");
        }
    }

    // Without the option, no admission policy; the CRD always comes (from crds/, which Helm installs
    // first and never deletes: uninstalling must not drop the ownership records).
    let plain = by_key(&helm.objects("kube-system", &[]));
    assert!(plain.keys().all(|(kind, _)| !kind.starts_with("ValidatingAdmissionPolicy")));
    assert!(
        plain.contains_key(&("CustomResourceDefinition".to_owned(), "guidblocks.ib-kubernetes.mellanox.com".into()))
    );
    let crd = std::fs::read_to_string(Helm::chart().join("crds/ib-kubernetes-crd.yaml")).expect("chart CRD");
    assert_eq!(crd, std::fs::read_to_string(dir().join("ib-kubernetes-crd.yaml")).expect("CRD"), "crds/ is a copy");
}

#[test]
fn the_chart_alerts_and_dashboard_are_those_of_deployment() {
    let Some(helm) = Helm::find() else { return };
    let rendered = helm.objects("kube-system", &["--set", "prometheusRule.enabled=true,dashboard.enabled=true"]);
    let rendered = by_key(&rendered);
    let shipped: Vec<Object> = MONITORING.iter().flat_map(|f| load(f).unwrap_or_else(|e| panic!("{e}"))).collect();
    for (key, value) in by_key(&shipped) {
        let Some(chart) = rendered.get(&key) else { panic!("{key:?} not rendered by the chart") };
        if let Some(d) = difference(chart, &value, "") {
            panic!("{key:?}: chart vs deployment/ differ at {d}");
        }
    }
    let file = std::fs::read_to_string(dir().join(DASHBOARD)).expect("dashboard");
    let chart_file = std::fs::read_to_string(Helm::chart().join("files").join(DASHBOARD)).expect("chart dashboard");
    assert_eq!(file, chart_file, "charts/ib-kubernetes/files/{DASHBOARD} is a copy of deployment/{DASHBOARD}");
    let config_map = &rendered[&("ConfigMap".to_owned(), "ib-kubernetes-dashboard".to_owned())];
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1", "the sidecar's label");
    let embedded: Value =
        serde_json::from_str(config_map["data"][DASHBOARD].as_str().expect("dashboard data")).expect("dashboard JSON");
    assert_eq!(embedded, serde_json::from_str::<Value>(&file).expect("dashboard JSON"));
}

#[test]
fn every_rendered_object_is_typed_namespaced_and_grants_what_the_controller_uses() {
    let Some(helm) = Helm::find() else { return };
    const NS: &str = "ib-system";
    let objects = helm.objects(NS, EVERYTHING);
    let mut kinds = BTreeSet::new();
    for o in &objects {
        kinds.insert(o.kind().to_owned());
        let typed = match o.kind() {
            // Prometheus Operator kinds: no k8s-openapi type; their shape is checked below.
            "ServiceMonitor" | "PrometheusRule" => {
                assert_eq!(o.value["apiVersion"], "monitoring.coreos.com/v1");
                Ok(())
            }
            kind => o.check_type().unwrap_or_else(|| panic!("unexpected kind {kind}")),
        };
        typed.unwrap_or_else(|e| panic!("{e}"));
        let cluster_scoped = matches!(
            o.kind(),
            "ClusterRole"
                | "ClusterRoleBinding"
                | "CustomResourceDefinition"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
        );
        let namespace = o.value["metadata"]["namespace"].as_str();
        assert_eq!(namespace, (!cluster_scoped).then_some(NS), "{} {}", o.kind(), o.name());
    }
    assert_eq!(kinds.len(), 15, "{kinds:?}");

    // RBAC: exactly the controller's permissions, bound to the ServiceAccount of the release namespace.
    let ours = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        let s = subjects.as_deref().unwrap_or_default();
        s.len() == 1
            && s[0].kind == "ServiceAccount"
            && s[0].name == "ib-kubernetes"
            && s[0].namespace.as_deref() == Some(NS)
    };
    let cluster_role: ClusterRole = one(&objects, "ClusterRole");
    let role: Role = one(&objects, "Role");
    assert!(ours(&one::<ClusterRoleBinding>(&objects, "ClusterRoleBinding").subjects));
    assert!(ours(&one::<RoleBinding>(&objects, "RoleBinding").subjects));
    let mut granted = grants(cluster_role.rules.as_deref().unwrap_or_default(), Scope::Cluster);
    granted.extend(grants(role.rules.as_deref().unwrap_or_default(), Scope::OwnNamespace));
    assert_eq!(granted, used(), "chart RBAC vs the controller's API calls");
    assert!(cluster_role.metadata.labels.unwrap_or_default().keys().all(|k| !k.contains("aggregate-to")));

    // The admission policy exempts this namespace's controller, no other.
    let policy: ValidatingAdmissionPolicy = one(&objects, "ValidatingAdmissionPolicy");
    let conditions = policy.spec.and_then(|s| s.match_conditions).unwrap_or_default();
    assert_eq!(
        conditions.iter().map(|c| c.expression.as_str()).collect::<Vec<_>>(),
        [format!("request.userInfo.username != 'system:serviceaccount:{NS}:ib-kubernetes'")]
    );

    // The Service selects the controller's pods on the admin port; the ServiceMonitor selects the
    // Service and scrapes that port; the NetworkPolicy opens that port of those pods.
    let deployment: Deployment = one(&objects, "Deployment");
    let pod_labels = deployment.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.clone());
    let pod_labels = pod_labels.unwrap_or_default();
    let subset = |selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
        !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    let service: Service = one(&objects, "Service");
    let service_spec = service.spec.expect("service spec");
    assert!(subset(&service_spec.selector.unwrap_or_default(), &pod_labels));
    let port = &service_spec.ports.unwrap_or_default()[0];
    assert_eq!(port.name.as_deref(), Some("admin"));
    assert_eq!(serde_json::to_value(&port.target_port).expect("port"), "admin");
    let monitor = objects.iter().find(|o| o.kind() == "ServiceMonitor").expect("ServiceMonitor");
    let selector: BTreeMap<String, String> =
        serde_json::from_value(monitor.value["spec"]["selector"]["matchLabels"].clone()).expect("selector");
    assert!(subset(&selector, &service.metadata.labels.unwrap_or_default()), "{selector:?}");
    assert_eq!(monitor.value["spec"]["endpoints"][0]["port"], "admin");
    assert_eq!(monitor.value["spec"]["endpoints"][0]["path"], "/metrics");
    let policy: NetworkPolicy = one(&objects, "NetworkPolicy");
    let policy = policy.spec.expect("policy spec");
    assert!(subset(&policy.pod_selector.unwrap_or_default().match_labels.unwrap_or_default(), &pod_labels));
    let ingress = policy.ingress.unwrap_or_default();
    assert_eq!(ingress.len(), 1);
    let ports = ingress[0].ports.clone().unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(serde_json::to_value(&ports[0].port).expect("port"), "admin");
    let admin = container(&objects).ports.unwrap_or_default().into_iter().find(|p| p.name.as_deref() == Some("admin"));
    assert_eq!(admin.map(|p| p.container_port), Some(9090));
}

/// `| `NAME` | default | meaning |` rows of the README's configuration tables.
fn readme_variables() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(dir().join("../README.md")).expect("README.md");
    let section = readme.split("## Configuration").nth(1).expect("a Configuration section");
    let section = section.split("### Flags").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| {
            let (name, rest) = l.split_once('`')?;
            let default = rest.trim_start_matches(" |").split(" |").next()?.trim();
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                .then(|| (name.to_owned(), default.trim_matches('`').to_owned()))
        })
        .collect()
}

#[test]
fn every_documented_variable_is_a_chart_value_with_the_readme_default() {
    let Some(helm) = Helm::find() else { return };
    let objects = helm.objects("kube-system", &[]);
    let config: ConfigMap = one(&objects, "ConfigMap");
    let config = config.data.expect("data");
    let secret: Secret = one(&objects, "Secret");
    let secret = secret.string_data.expect("stringData");
    let c = container(&objects);
    let env: BTreeMap<&str, _> = c.env.iter().flatten().map(|e| (e.name.as_str(), e)).collect();
    let documented = readme_variables();
    assert!(documented.len() >= 25, "{documented:?}");
    for (name, default) in &documented {
        let e = env.get(name.as_str()).unwrap_or_else(|| panic!("{name}: not in the chart's Deployment env"));
        if let Some(value) = config.get(name) {
            // The plugin is required by the daemon; the chart's value is the Go ConfigMap's. "(none)" in
            // the README is an empty value, which the daemon reads as unset.
            let expected = match (name.as_str(), default.as_str()) {
                ("DAEMON_SM_PLUGIN", _) => "ufm",
                (_, "(none)") => "",
                (_, default) => default,
            };
            assert_eq!(value, expected, "config.{name}: chart default vs README default {default:?}");
        } else if name.starts_with("UFM_") {
            // In the Secret; empty means the README's default, CHANGE-ME marks what must be set.
            let value = secret.get(name).unwrap_or_else(|| panic!("ufm.secret.{name}: not in the Secret"));
            assert!(value.is_empty() || value == "CHANGE-ME", "ufm.secret.{name} = {value:?}");
        } else if name == "ADMIN_ADDRESS" {
            assert_eq!(e.value.as_deref(), Some(default.as_str()), "adminPort renders the README default");
        } else {
            let field = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str());
            assert!(field.is_some(), "{name}: neither a value of the chart nor from the downward API");
        }
    }
    let names: BTreeSet<&String> = documented.keys().collect();
    for key in config.keys().chain(secret.keys()) {
        assert!(names.contains(key), "the chart sets {key}, which the README does not document");
    }
}

#[test]
fn the_values_schema_refuses_bad_values_naming_the_field() {
    let Some(helm) = Helm::find() else { return };
    let cases: &[(&str, &str, &str)] = &[
        ("--set", "config.DAEMON_PERIODIC_UPDATE=0", "/config/DAEMON_PERIODIC_UPDATE"),
        ("--set-string", "config.DAEMON_RESYNC_INTERVAL=5m", "/config/DAEMON_RESYNC_INTERVAL"),
        ("--set", "config.LOG_FORMAT=xml", "/config/LOG_FORMAT"),
        ("--set-string", "config.NAMESPACE_ISOLATION=yes", "/config/NAMESPACE_ISOLATION"),
        ("--set", "config.REMOVE_UNRECORDED_MEMBERSHIPS=1", "/config/REMOVE_UNRECORDED_MEMBERSHIPS"),
        ("--set", "config.GUID_POOL_RANGE_START=02:00:00", "/config/GUID_POOL_RANGE_START"),
        ("--set", "config.GUID_POOL_RANGE_END=02-00:00:00:00:00:00:ff", "/config/GUID_POOL_RANGE_END"),
        ("--set", "config.DAEMON_SM_PLUGIN=../../bin/sh", "/config/DAEMON_SM_PLUGIN"),
        ("--set", "config.DAEMON_SM_PLUGIN_PATH=plugins", "/config/DAEMON_SM_PLUGIN_PATH"),
        ("--set", "config.GLOBAL_NAMESPACES=Default", "/config/GLOBAL_NAMESPACES"),
        ("--set", "config.WATCH_NAMESPACE=Team_A", "/config/WATCH_NAMESPACE"),
        ("--set", "config.WATCH_NAMESPACE=a\\,b", "/config/WATCH_NAMESPACE"),
        ("--set-string", "config.ENABLE_IP_OVER_IB=yes", "/config/ENABLE_IP_OVER_IB"),
        ("--set", "config.ENABLE_INDEX0_FOR_PRIMARY_PKEY=2", "/config/ENABLE_INDEX0_FOR_PRIMARY_PKEY"),
        ("--set-string", "config.ALLOW_PARTITION_CREATE=never", "/config/ALLOW_PARTITION_CREATE"),
        // A number, as an unquoted 0x10 in a values file reads: the daemon wants the text.
        ("--set", "config.DEFAULT_LIMITED_PARTITION=16", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=16", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x0", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x0000", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x7fff", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x7FFF", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x8000", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x10000", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x1g", "/config/DEFAULT_LIMITED_PARTITION"),
        ("--set", "config.DAEMON_SM_PLUGN=noop", "DAEMON_SM_PLUGN"),
        ("--set", "ufm.secret.UFM_HTTP_SCHEMA=ftp", "/ufm/secret/UFM_HTTP_SCHEMA"),
        ("--set", "ufm.secret.UFM_PORT=70000", "/ufm/secret/UFM_PORT"),
        ("--set", "ufm.secret.UFM_INSECURE_SKIP_VERIFY=always", "/ufm/secret/UFM_INSECURE_SKIP_VERIFY"),
        ("--set", "ufm.existingSecret=My_Secret", "/ufm/existingSecret"),
        ("--set", "replicas=-1", "/replicas"),
        ("--set", "adminPort=80", "/adminPort"),
        ("--set", "image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("--set", "image.digest=sha256:abc", "/image/digest"),
        ("--set", "prometheusRule.poolUsedRatio=1.5", "/prometheusRule/poolUsedRatio"),
        ("--set", "readinessProbe.exec.command={true}", "/readinessProbe"),
        ("--set", "debug=true", "'debug' not allowed"),
        // Cross-field rules the schema cannot express fail the render with the same naming.
        ("--set", "config.LEADER_RENEW_DEADLINE=15", "config.LEADER_RENEW_DEADLINE (15) must be shorter"),
        ("--set", "config.LEADER_RETRY_PERIOD=10", "config.LEADER_RETRY_PERIOD (10) must be shorter"),
        ("--set", "config.GUID_POOL_RANGE_START=03:00:00:00:00:00:00:00", "config.GUID_POOL_RANGE_START"),
        ("--set", "config.WATCH_NAMESPACE=team-a", "config.WATCH_NAMESPACE (team-a) needs"),
    ];
    // The pattern of DEFAULT_LIMITED_PARTITION agrees with the daemon's parser on the values above.
    for (text, valid) in [
        ("0x1", true),
        ("0x0010", true),
        ("0x6FFF", true),
        ("0x7ffe", true),
        ("0x7fef", true),
        ("16", false),
        ("0x0", false),
        ("0x0000", false),
        ("0x7fff", false),
        ("0x8000", false),
        ("0x10000", false),
        ("0x", false),
        ("0x1g", false),
    ] {
        assert_eq!(ib_model::PKey::parse(text).is_ok(), valid, "{text}");
    }
    for (flag, value, field) in cases {
        match helm.template("kube-system", &[flag, value]) {
            Ok(_) => panic!("{flag} {value} was accepted"),
            Err(e) => assert!(e.contains(field), "{flag} {value}: the error should name {field}:\n{e}"),
        }
    }

    // A URL with credentials is refused without echoing them.
    let e = helm.template("kube-system", &["--set", "ufm.secret.UFM_ADDRESS=https://admin:hunter2@ufm"]).unwrap_err();
    assert!(e.contains("/ufm/secret/UFM_ADDRESS") && !e.contains("hunter2"), "{e}");

    // The other spellings the daemon accepts pass.
    for (flag, value) in [
        (
            "--set",
            "config.GUID_POOL_RANGE_START=0200.0000.0000.0000,config.GUID_POOL_RANGE_END=02-00-00-00-ff-ff-ff-ff",
        ),
        ("--set", "config.GLOBAL_NAMESPACES=default\\, shared-nets"),
        (
            "--set",
            "ufm.secret.UFM_PORT=8443,ufm.secret.UFM_REQUEST_TIMEOUT=60,ufm.secret.UFM_INSECURE_SKIP_VERIFY=false",
        ),
        ("--set-string", "ufm.secret.UFM_PORT=8443"),
        ("--set", "config.DAEMON_SM_PLUGIN=noop,config.LOG_FORMAT=json,config.NAMESPACE_ISOLATION=true"),
        (
            "--set",
            "config.ENABLE_IP_OVER_IB=false,config.ENABLE_INDEX0_FOR_PRIMARY_PKEY=false,config.ALLOW_PARTITION_CREATE=false",
        ),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x1"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x10"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x0010"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0xfff"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x6FFF"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x7ffe"),
        ("--set-string", "config.DEFAULT_LIMITED_PARTITION=0x7fef"),
        (
            "--set",
            "config.WATCH_NAMESPACE=team-a,config.GUID_POOL_RANGE_START=02:aa:00:00:00:00:00:00,config.GUID_POOL_RANGE_END=02:aa:00:00:00:00:ff:ff",
        ),
    ] {
        helm.template("kube-system", &[flag, value]).unwrap_or_else(|e| panic!("{flag} {value}: {e}"));
    }
}

#[test]
fn values_reach_the_objects() {
    let Some(helm) = Helm::find() else { return };
    let objects = helm.objects(
        "kube-system",
        &[
            "--set",
            "ufm.existingSecret=site-ufm,adminPort=9443,replicas=3,image.tag=v1.2.3,config.DAEMON_PERIODIC_UPDATE=12000000",
            "--set",
            "config.NAMESPACE_ISOLATION=true,serviceMonitor.enabled=true",
        ],
    );
    assert!(typed::<Secret>(&objects, "Secret").is_empty(), "an existing Secret is referenced, not created");
    let c = container(&objects);
    for e in c.env.iter().flatten().filter(|e| e.name.starts_with("UFM_")) {
        let r = e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect("secret ref");
        assert_eq!((r.name.as_str(), r.key.as_str()), ("site-ufm", e.name.as_str()));
    }
    assert_eq!(c.image.as_deref(), Some("mellanox/ib-kubernetes:v1.2.3"));
    let address = c.env.iter().flatten().find(|e| e.name == "ADMIN_ADDRESS").and_then(|e| e.value.clone());
    assert_eq!(address.as_deref(), Some("0.0.0.0:9443"));
    assert_eq!(c.ports.unwrap_or_default()[0].container_port, 9443);
    let d: Deployment = one(&objects, "Deployment");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(3));
    let config: ConfigMap = one(&objects, "ConfigMap");
    let data = config.data.expect("data");
    // Large numbers stay plain integers (YAML numbers reach templates as floats).
    assert_eq!(data["DAEMON_PERIODIC_UPDATE"], "12000000");
    assert_eq!(data["NAMESPACE_ISOLATION"], "true");
    let service: Service = one(&objects, "Service");
    assert_eq!(service.spec.and_then(|s| s.ports).unwrap_or_default()[0].port, 9443);

    let pinned =
        helm.objects("kube-system", &["--set", &format!("image.tag=v1,image.digest=sha256:{}", "ab".repeat(32))]);
    assert_eq!(container(&pinned).image, Some(format!("mellanox/ib-kubernetes@sha256:{}", "ab".repeat(32))));
}
