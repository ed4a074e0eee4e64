//! The optional admission guard (`ib-kubernetes-admission.yaml`): its CEL expressions, read from the
//! manifest, are evaluated with the `cel` interpreter against the pod requests a hostile tenant
//! would send and those an honest one or the controller sends, following the order the API server's
//! ValidatingAdmissionPolicy plugin uses: match constraints, then match conditions (any false: the
//! policy does not apply), then variables in order, then validations (any false: denied with the
//! message). An expression that fails to evaluate counts as the failure policy says.
//!
//! Only the standard CEL library is available here, so an expression using a Kubernetes-only
//! function fails these tests rather than going untested.

use std::collections::BTreeMap;

use ib_kubernetes_deployment::{CONTROLLER_USERNAME, Object, load};
use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::{Value, json};

const FILE: &str = "ib-kubernetes-admission.yaml";
const MARKER: &str = "mellanox.infiniband.app";
const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const TENANT: &str = "system:serviceaccount:tenant-a:default";

fn objects() -> Vec<Object> {
    load(FILE).unwrap_or_else(|e| panic!("{e}"))
}

fn policy() -> ValidatingAdmissionPolicy {
    let all = objects();
    let mut found = all.iter().filter(|o| o.kind() == "ValidatingAdmissionPolicy");
    let policy = found.next().expect("a ValidatingAdmissionPolicy");
    assert!(found.next().is_none(), "one policy");
    policy.to().unwrap_or_else(|e| panic!("{e}"))
}

fn binding() -> ValidatingAdmissionPolicyBinding {
    let all = objects();
    let mut found = all.iter().filter(|o| o.kind() == "ValidatingAdmissionPolicyBinding");
    let binding = found.next().expect("a ValidatingAdmissionPolicyBinding");
    assert!(found.next().is_none(), "one binding");
    binding.to().unwrap_or_else(|e| panic!("{e}"))
}

/// What the policy decides for one request.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// The policy does not apply (match constraints or conditions) or every validation passed.
    Allowed,
    /// Refused, with the message the requester sees.
    Denied(String),
}

/// One pod request as the API server hands it to the policy.
struct Request<'a> {
    operation: &'a str,
    username: &'a str,
    object: Value,
    old_object: Option<Value>,
}

fn compile(what: &str, source: &str) -> cel::Program {
    cel::Program::compile(source).unwrap_or_else(|e| panic!("{what}: {source:?} does not compile: {e}"))
}

fn cel_value(value: &Value) -> cel::Value {
    cel::to_value(value).unwrap_or_else(|e| panic!("{value}: not a CEL value: {e}"))
}

/// Runs the policy of the manifest on `request`.
fn admit(request: &Request<'_>) -> Verdict {
    let spec = policy().spec.expect("spec");
    let fail_closed = spec.failure_policy.as_deref().unwrap_or("Fail") == "Fail";
    let on_error = |what: &str, error: String| {
        assert!(fail_closed, "{what} failed and the policy fails open: {error}");
        Verdict::Denied(format!("{what}: {error}"))
    };

    let rules = spec.match_constraints.and_then(|m| m.resource_rules).unwrap_or_default();
    let listed = |list: &Option<Vec<String>>, item: &str| {
        list.as_deref().unwrap_or_default().iter().any(|l| l == item || l == "*")
    };
    let matched = rules.iter().any(|r| {
        listed(&r.api_groups, "")
            && listed(&r.api_versions, "v1")
            && listed(&r.resources, "pods")
            && listed(&r.operations, request.operation)
    });
    if !matched {
        return Verdict::Allowed;
    }

    let mut context = cel::Context::default();
    let name = request.object["metadata"]["name"].clone();
    let namespace = request.object["metadata"]["namespace"].clone();
    let api_request = json!({
        "operation": request.operation,
        "userInfo": { "username": request.username, "groups": ["system:authenticated"] },
        "kind": { "group": "", "version": "v1", "kind": "Pod" },
        "resource": { "group": "", "version": "v1", "resource": "pods" },
        "name": name,
        "namespace": namespace,
    });
    context.add_variable_from_value("request", cel_value(&api_request));
    context.add_variable_from_value("object", cel_value(&request.object));
    context.add_variable_from_value("oldObject", request.old_object.as_ref().map_or(cel::Value::Null, cel_value));
    context.add_variable_from_value("params", cel::Value::Null);

    for condition in spec.match_conditions.as_deref().unwrap_or_default() {
        match compile(&condition.name, &condition.expression).execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Verdict::Allowed,
            Ok(other) => panic!("match condition {} is not a bool: {other:?}", condition.name),
            Err(e) => return on_error(&condition.name, e.to_string()),
        }
    }

    let mut variables = BTreeMap::new();
    for variable in spec.variables.as_deref().unwrap_or_default() {
        context.add_variable_from_value("variables", cel_value(&json!(variables)));
        let value = match compile(&variable.name, &variable.expression).execute(&context) {
            Ok(cel::Value::Bool(b)) => json!(b),
            Ok(cel::Value::String(s)) => json!(s.as_str()),
            Ok(other) => panic!("variable {} has an unexpected type: {other:?}", variable.name),
            Err(e) => return on_error(&variable.name, e.to_string()),
        };
        variables.insert(variable.name.clone(), value);
    }
    context.add_variable_from_value("variables", cel_value(&json!(variables)));

    for validation in spec.validations.as_deref().unwrap_or_default() {
        match compile("validation", &validation.expression).execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                let message = validation.message.clone().expect("a static message");
                return Verdict::Denied(message);
            }
            Ok(other) => panic!("validation is not a bool: {other:?}"),
            Err(e) => return on_error("validation", e.to_string()),
        }
    }
    Verdict::Allowed
}

fn pod(annotations: Option<Value>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "p", "namespace": "tenant-a", "uid": "u-1", "labels": { "app": "ml" } },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] },
    });
    if let Some(annotations) = annotations {
        pod["metadata"]["annotations"] = annotations;
    }
    pod
}

fn with_networks(networks: &str) -> Value {
    pod(Some(json!({ NETWORKS: networks })))
}

fn requested() -> String {
    r#"[{"name":"ib","namespace":"tenant-a","cni-args":{"guid":"02:00:00:00:00:00:00:07"}}]"#.to_string()
}

fn configured(guid: &str) -> String {
    format!(
        r#"[{{"name":"ib","namespace":"tenant-a","cni-args":{{"guid":"{guid}","{MARKER}":"configured","pkey":"0x5"}}}}]"#
    )
}

fn create(username: &str, object: Value) -> Verdict {
    admit(&Request { operation: "CREATE", username, object, old_object: None })
}

fn update(username: &str, old: Value, new: Value) -> Verdict {
    admit(&Request { operation: "UPDATE", username, object: new, old_object: Some(old) })
}

fn assert_denied(verdict: Verdict, what: &str) {
    match verdict {
        Verdict::Denied(message) => {
            assert!(
                message.contains(MARKER) && message.contains("ib-kubernetes"),
                "{what}: unclear message {message:?}"
            )
        }
        Verdict::Allowed => panic!("{what}: allowed"),
    }
}

/// Spellings of the marker a JSON decoder reads as the marker (exactly, or ignoring case): every
/// single character as a `\u00XX` escape with lower- and upper-case hex digits, the whole marker
/// escaped, and other letter cases.
fn marker_spellings() -> Vec<String> {
    let escape = |c: char, upper: bool| {
        let hex = format!("{:04x}", u32::from(c));
        format!("\\u{}", if upper { hex.to_uppercase() } else { hex })
    };
    let chars: Vec<char> = MARKER.chars().collect();
    let mut spellings = vec![MARKER.to_string(), MARKER.to_uppercase(), "Mellanox.InfiniBand.App".to_string()];
    for (i, upper) in (0..chars.len()).flat_map(|i| [(i, false), (i, true)]) {
        let spelled: String =
            chars.iter().enumerate().map(|(j, &c)| if i == j { escape(c, upper) } else { c.to_string() }).collect();
        spellings.push(spelled);
    }
    spellings.push(chars.iter().map(|&c| escape(c, false)).collect());
    spellings.push(chars.iter().map(|&c| escape(c.to_ascii_uppercase(), true)).collect());
    spellings
}

#[test]
fn the_policy_is_bound_to_deny_and_fails_closed() {
    let policy = policy();
    let binding = binding();
    let spec = binding.spec.expect("binding spec");
    assert_eq!(spec.policy_name, policy.metadata.name);
    assert_eq!(spec.validation_actions.as_deref(), Some(&["Deny".to_owned()][..]));
    assert!(spec.match_resources.is_none() && spec.param_ref.is_none(), "binds every pod, no parameters");
    let spec = policy.spec.expect("policy spec");
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
    assert!(spec.param_kind.is_none());
    let rules = spec.match_constraints.and_then(|m| m.resource_rules).expect("resource rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].resources.as_deref(), Some(&["pods".to_owned()][..]));
    let mut operations = rules[0].operations.clone().unwrap_or_default();
    operations.sort();
    assert_eq!(operations, ["CREATE", "UPDATE"]);
    for validation in spec.validations.as_deref().unwrap_or_default() {
        assert_eq!(validation.reason.as_deref(), Some("Forbidden"));
    }
}

#[test]
fn a_forged_marker_on_create_is_refused_in_every_spelling() {
    for spelling in marker_spellings() {
        let networks = format!(
            r#"[{{"name":"ib","namespace":"tenant-b","cni-args":{{"guid":"02:00:00:00:00:00:00:01","{spelling}":"configured","pkey":"0x5"}}}}]"#
        );
        // The spelling really is the marker to a JSON decoder: the test would prove nothing otherwise.
        let parsed: Value = serde_json::from_str(&networks).expect("valid JSON");
        let keys: Vec<String> =
            parsed[0]["cni-args"].as_object().expect("cni-args").keys().map(|k| k.to_ascii_lowercase()).collect();
        assert!(keys.iter().any(|k| k == MARKER), "{spelling} does not decode to the marker");

        assert_denied(create(TENANT, with_networks(&networks)), &format!("create with {spelling}"));
    }
    // In a second element, and from the controllers that create pods for tenants.
    let networks =
        format!(r#"[{{"name":"honest"}},{}]"#, configured("02:00:00:00:00:00:00:02").trim_matches(['[', ']']));
    assert_denied(create(TENANT, with_networks(&networks)), "marker in a second element");
    let forged = with_networks(&configured("02:00:00:00:00:00:00:03"));
    for user in [
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:kube-system:job-controller",
        "kubernetes-admin",
    ] {
        assert_denied(create(user, forged.clone()), user);
    }
}

#[test]
fn only_the_controller_account_itself_is_exempt() {
    let forged = with_networks(&configured("02:00:00:00:00:00:00:04"));
    for user in [
        "system:serviceaccount:tenant-a:ib-kubernetes",
        "system:serviceaccount:kube-system:ib-kubernetes-2",
        "system:serviceaccount:kube-system:ib-kubernete",
        "system:serviceaccount:kube-system:ib-kubernetes ",
        "ib-kubernetes",
        "",
    ] {
        assert_denied(create(user, forged.clone()), &format!("user {user:?}"));
    }
    assert_eq!(create(CONTROLLER_USERNAME, forged), Verdict::Allowed);

    // The exempt name is the ServiceAccount the Deployment runs as.
    let account: ServiceAccount = load("ib-kubernetes.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|o| o.kind() == "ServiceAccount")
        .expect("ServiceAccount")
        .to()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        CONTROLLER_USERNAME,
        format!(
            "system:serviceaccount:{}:{}",
            account.metadata.namespace.as_deref().unwrap_or_default(),
            account.metadata.name.as_deref().unwrap_or_default()
        )
    );
}

#[test]
fn adding_or_changing_the_marker_on_update_is_refused() {
    let honest = with_networks(&requested());
    let forged = with_networks(&configured("02:00:00:00:00:00:00:07"));
    assert_denied(update(TENANT, honest.clone(), forged.clone()), "marker added to a requested network");
    assert_denied(update(TENANT, pod(None), forged.clone()), "marker added to a pod without annotations");
    assert_denied(
        update(TENANT, pod(Some(json!({ "other": "x" }))), forged.clone()),
        "marker added to a pod with other annotations",
    );
    // A configured pod whose owner rewrites its GUID to another tenant's.
    let mine = with_networks(&configured("02:00:00:00:00:00:00:07"));
    let theirs = with_networks(&configured("02:00:00:00:00:00:00:08"));
    assert_denied(update(TENANT, mine.clone(), theirs), "GUID rewritten on a configured pod");
    // A configured pod that gains a second, forged, configured network.
    let two = format!(
        r#"[{},{}]"#,
        configured("02:00:00:00:00:00:00:07").trim_matches(['[', ']']),
        configured("02:00:00:00:00:00:00:09").trim_matches(['[', ']'])
    );
    assert_denied(update(TENANT, mine, with_networks(&two)), "a second configured element added");
    // An escaped spelling added on update.
    let escaped = configured("02:00:00:00:00:00:00:07").replace(MARKER, "mellanox\\u002einfiniband.app");
    assert_denied(update(TENANT, honest, with_networks(&escaped)), "escaped marker added on update");
}

#[test]
fn honest_requests_and_the_controllers_own_writes_pass() {
    // Pods with no annotation, with requests in both forms, with names close to the marker.
    assert_eq!(create(TENANT, pod(None)), Verdict::Allowed);
    assert_eq!(create(TENANT, pod(Some(json!({ "team": "ml" })))), Verdict::Allowed);
    for networks in [
        requested(),
        "ib, tenant-b/ib@ib1".to_string(),
        r#"[{"name":"mellanox-infiniband-app"}]"#.to_string(),
        r#"[{"name":"ib","cni-args":{"mellanox":"infiniband","app":"configured"}}]"#.to_string(),
        String::new(),
    ] {
        assert_eq!(create(TENANT, with_networks(&networks)), Verdict::Allowed, "{networks}");
    }

    // The controller configures a pod, then leaves it.
    let honest = with_networks(&requested());
    let configured_pod = with_networks(&configured("02:00:00:00:00:00:00:07"));
    assert_eq!(update(CONTROLLER_USERNAME, honest.clone(), configured_pod.clone()), Verdict::Allowed);

    // Unrelated changes to a configured pod, by its owner or by other controllers.
    let mut relabelled = configured_pod.clone();
    relabelled["metadata"]["labels"]["app"] = json!("ml-2");
    relabelled["metadata"]["annotations"]["team"] = json!("ml");
    relabelled["metadata"]["finalizers"] = json!(["example.com/keep"]);
    for user in [TENANT, "system:serviceaccount:kube-system:generic-garbage-collector", "system:node:node-1"] {
        assert_eq!(update(user, configured_pod.clone(), relabelled.clone()), Verdict::Allowed, "{user}");
        assert_eq!(update(user, configured_pod.clone(), configured_pod.clone()), Verdict::Allowed, "{user}");
    }
    // Dropping the marker is allowed: it asks for nothing.
    assert_eq!(update(TENANT, configured_pod, honest.clone()), Verdict::Allowed);
    // Updates of pods that never had one.
    assert_eq!(update(TENANT, pod(None), honest.clone()), Verdict::Allowed);
    assert_eq!(update(TENANT, honest.clone(), pod(None)), Verdict::Allowed);
    // Other operations are not the policy's concern.
    let forged = with_networks(&configured("02:00:00:00:00:00:00:07"));
    assert_eq!(
        admit(&Request { operation: "DELETE", username: TENANT, object: forged, old_object: None }),
        Verdict::Allowed
    );
}
