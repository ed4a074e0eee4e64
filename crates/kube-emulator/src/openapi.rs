//! The OpenAPI v3 documents (`/openapi/v3` and one per group-version) and server-side field
//! validation built on them.
//!
//! kubectl reads these documents for `kubectl explain`, and before `create`/`apply` to learn
//! whether the server validates fields itself (a PATCH operation that lists the `fieldValidation`
//! query parameter); without them it refuses to send anything unless told `--validate=false`.
//! The schemas are generated from k8s-openapi's JSON schemas of the built-in types the emulator
//! serves, not written by hand, with `x-kubernetes-group-version-kind` added to each top-level
//! type as the apiserver does. The custom resources (NADs, GuidBlocks and the Prometheus
//! Operator's ServiceMonitors and PrometheusRules) have no such type: served with typed metadata
//! and everything else preserved, the shape of a schemaless CRD.
//!
//! The schemas also check the JSON types of Services and NetworkPolicies (a string where the type
//! has a list is refused, naming the field), as the apiserver's typed decoding does.
//!
//! The same schemas drive `fieldValidation`: a field that the type's schema does not know is
//! refused with `Strict`, reported in a `Warning` header with `Warn` (also the default) and let
//! through with `Ignore`, like the apiserver's strict decoding.

use crate::resource::Resource;
use crate::status::ApiError;
use schemars::JsonSchema;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Group-versions with a document, and each one's document, built once on first use.
struct Documents {
    /// `api/v1`, `apis/apps/v1`, … → the document.
    by_path: BTreeMap<String, Value>,
    /// The index served at `/openapi/v3`.
    index: Value,
}

fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(build)
}

/// The schema name (`io.k8s.api.core.v1.Pod`) and definitions reachable from it, for a resource
/// whose type k8s-openapi knows.
fn schema_of(resource: Resource, generator: &mut schemars::SchemaGenerator) -> Option<String> {
    use k8s_openapi::api::{admissionregistration, apps, coordination, core, events, networking, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    fn add<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) -> Option<String> {
        generator.subschema_for::<T>();
        Some(T::schema_name().into_owned())
    }
    match resource {
        Resource::Pods => add::<core::v1::Pod>(generator),
        Resource::Nodes => add::<core::v1::Node>(generator),
        Resource::CoreEvents => add::<core::v1::Event>(generator),
        Resource::ConfigMaps => add::<core::v1::ConfigMap>(generator),
        Resource::Secrets => add::<core::v1::Secret>(generator),
        Resource::ServiceAccounts => add::<core::v1::ServiceAccount>(generator),
        Resource::Events => add::<events::v1::Event>(generator),
        Resource::Leases => add::<coordination::v1::Lease>(generator),
        Resource::Deployments => add::<apps::v1::Deployment>(generator),
        Resource::Roles => add::<rbac::v1::Role>(generator),
        Resource::RoleBindings => add::<rbac::v1::RoleBinding>(generator),
        Resource::ClusterRoles => add::<rbac::v1::ClusterRole>(generator),
        Resource::ClusterRoleBindings => add::<rbac::v1::ClusterRoleBinding>(generator),
        Resource::CustomResourceDefinitions => add::<apiextensions::v1::CustomResourceDefinition>(generator),
        Resource::ValidatingAdmissionPolicies => add::<admissionregistration::v1::ValidatingAdmissionPolicy>(generator),
        Resource::ValidatingAdmissionPolicyBindings => {
            add::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>(generator)
        }
        Resource::Services => add::<core::v1::Service>(generator),
        Resource::NetworkPolicies => add::<networking::v1::NetworkPolicy>(generator),
        Resource::NetworkAttachmentDefinitions
        | Resource::GuidBlocks
        | Resource::ServiceMonitors
        | Resource::PrometheusRules => Some(custom_resource(resource, generator)),
    }
}

/// The custom resources are served whether or not their CRDs are stored, so their documents are
/// too, as an apiserver publishes an established CRD's: typed metadata, anything else kept.
fn custom_resource(resource: Resource, generator: &mut schemars::SchemaGenerator) -> String {
    let metadata = generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
    let reversed: Vec<&str> = resource.group().rsplit('.').collect();
    let name = format!("{}.{}.{}", reversed.join("."), resource.version(), resource.kind());
    let schema = json!({
        "description": format!("{} (a custom resource: fields other than metadata are not checked)", resource.kind()),
        "type": "object",
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": metadata,
        },
        "x-kubernetes-preserve-unknown-fields": true,
    });
    generator.definitions_mut().insert(name.clone(), schema);
    name
}

fn gv_path(resource: Resource) -> String {
    if resource.group().is_empty() {
        format!("api/{}", resource.version())
    } else {
        format!("apis/{}/{}", resource.group(), resource.version())
    }
}

/// The PATCH operation kubectl inspects: its GVK extension and its query parameters.
fn operations(resource: Resource) -> (String, Value) {
    let object = if resource.namespaced() {
        format!("/{}/namespaces/{{namespace}}/{}/{{name}}", gv_path(resource), resource.plural())
    } else {
        format!("/{}/{}/{{name}}", gv_path(resource), resource.plural())
    };
    let query = |name: &str, description: &str| json!({ "name": name, "in": "query", "description": description, "schema": { "type": "string", "uniqueItems": true } });
    let gvk = json!({ "group": resource.group(), "version": resource.version(), "kind": resource.kind() });
    let patch = json!({
        "operationId": format!("patch{}", resource.kind()),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": gvk,
        "parameters": [
            query("fieldValidation", "Ignore, Warn (the default) or Strict: what to do with fields the type does not know."),
            query("fieldManager", "The name of the actor making the change; required for apply."),
            query("force", "Server-side apply: take over conflicting fields."),
        ],
        "responses": { "200": { "description": "OK" }, "201": { "description": "Created" } },
    });
    (object, json!({ "patch": patch }))
}

fn build() -> Documents {
    let mut groups: BTreeMap<String, Vec<Resource>> = BTreeMap::new();
    for resource in Resource::ALL {
        groups.entry(gv_path(resource)).or_default().push(resource);
    }
    let mut by_path = BTreeMap::new();
    for (path, resources) in groups {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        let mut kinds = Vec::new();
        let mut paths = Map::new();
        for resource in resources {
            if let Some(name) = schema_of(resource, &mut generator) {
                kinds.push((name, resource));
                let (object, ops) = operations(resource);
                paths.insert(object, ops);
            }
        }
        if kinds.is_empty() {
            continue;
        }
        let mut schemas = generator.take_definitions(true);
        for (name, resource) in kinds {
            if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                schema.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([{ "group": resource.group(), "version": resource.version(), "kind": resource.kind() }]),
                );
            }
        }
        let document = json!({
            "openapi": "3.0.0",
            "info": { "title": "Kubernetes", "version": "unversioned" },
            "paths": paths,
            "components": { "schemas": schemas },
        });
        by_path.insert(path, document);
    }
    let index = json!({
        "paths": by_path
            .keys()
            .map(|path| (path.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{path}") })))
            .collect::<Map<String, Value>>(),
    });
    Documents { by_path, index }
}

/// The `/openapi/v3` index.
pub(crate) fn index() -> &'static Value {
    &documents().index
}

/// The document of `api/v1`, `apis/apps/v1`, …, if one is served.
pub(crate) fn document(path: &str) -> Option<&'static Value> {
    documents().by_path.get(path)
}

/// What the client asked to happen to unknown fields (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub(crate) fn parse(value: Option<&str>) -> Result<FieldValidation, ApiError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::BadRequest(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Checks `object` (a whole object, or a merge patch or applied configuration of one) against
/// the resource's schema. `Strict` refuses unknown fields; otherwise they are returned as
/// warnings (none with `Ignore`). Resources without a schema accept anything.
pub(crate) fn validate_fields(
    resource: Resource,
    object: &Value,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    if mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let Some(document) = document(&gv_path(resource)) else { return Ok(Vec::new()) };
    let Some(schemas) = document.pointer("/components/schemas").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let root = schemas.values().find(|schema| {
        schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .is_some_and(|gvks| gvks.iter().any(|g| g.get("kind").and_then(Value::as_str) == Some(resource.kind())))
    });
    let Some(root) = root else { return Ok(Vec::new()) };
    let mut unknown = Vec::new();
    walk(schemas, root, object, "", 0, &mut unknown);
    if mode == FieldValidation::Strict && !unknown.is_empty() {
        let fields: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
        return Err(ApiError::BadRequest(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            fields.join(", "),
            kind = resource.kind(),
            version = resource.version(),
        )));
    }
    Ok(unknown.into_iter().map(|f| format!("unknown field {f:?}")).collect())
}

/// Refuses an object of a typed kind whose fields have the wrong JSON type, naming the first such
/// field, with the apiserver's wording for a body it cannot decode (400). Only Services and
/// NetworkPolicies are checked: they reach the emulator from the Helm chart and other manifests,
/// never from the controller, and their types hold no field that takes two JSON types other
/// than int-or-string ports, whose schema names no type.
pub(crate) fn check_json_types(resource: Resource, object: &Value) -> Result<(), ApiError> {
    if !matches!(resource, Resource::Services | Resource::NetworkPolicies) {
        return Ok(());
    }
    let Some(document) = document(&gv_path(resource)) else { return Ok(()) };
    let Some(schemas) = document.pointer("/components/schemas").and_then(Value::as_object) else { return Ok(()) };
    let root = schemas.values().find(|schema| {
        schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .is_some_and(|gvks| gvks.iter().any(|g| g.get("kind").and_then(Value::as_str) == Some(resource.kind())))
    });
    let Some(root) = root else { return Ok(()) };
    match first_type_error(schemas, root, object, "", 0) {
        None => Ok(()),
        Some((path, expected, got)) => Err(ApiError::BadRequest(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {path}: expected {expected}, got {got}",
            kind = resource.kind(),
            version = resource.version(),
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The first field (path, expected type, actual type) whose JSON type the schema does not allow.
/// `null` is always allowed: the apiserver decodes it as the field's zero value.
fn first_type_error(
    schemas: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    path: &str,
    depth: usize,
) -> Option<(String, String, &'static str)> {
    if depth > MAX_DEPTH {
        return None;
    }
    let schema = resolve(schemas, schema);
    let got = json_type(value);
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let fits = got == "null" || got == expected || (expected == "number" && got == "integer");
        if !fits {
            let path = if path.is_empty() { "<root>".to_string() } else { path.to_string() };
            return Some((path, expected.to_string(), got));
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            map.iter().find_map(|(key, child)| {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let child_schema = properties.and_then(|p| p.get(key)).or(additional)?;
                first_type_error(schemas, child_schema, child, &child_path, depth + 1)
            })
        }
        Value::Array(items) => {
            let item_schema = schema.get("items")?;
            items
                .iter()
                .enumerate()
                .find_map(|(i, item)| first_type_error(schemas, item_schema, item, &format!("{path}[{i}]"), depth + 1))
        }
        _ => None,
    }
}

/// Follows `$ref` (bare or wrapped in a one-element `allOf`, as the documents write it).
fn resolve<'a>(schemas: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    let reference = schema.get("$ref").or_else(|| schema.pointer("/allOf/0/$ref")).and_then(Value::as_str);
    match reference.and_then(|r| r.strip_prefix("#/components/schemas/")).and_then(|name| schemas.get(name)) {
        Some(target) => target,
        None => schema,
    }
}

/// Deep enough for any real object; a hostile body nested deeper is not walked further.
const MAX_DEPTH: usize = 64;

fn walk(schemas: &Map<String, Value>, schema: &Value, value: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        return;
    }
    let schema = resolve(schemas, schema);
    if schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true) {
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(property), _) => walk(schemas, property, child, &child_path, depth + 1, out),
                    (None, Some(additional)) => walk(schemas, additional, child, &child_path, depth + 1, out),
                    // A schema that names no properties (RawExtension, free-form JSON) takes anything.
                    (None, None) if properties.is_some() => out.push(child_path),
                    (None, None) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(schemas, item_schema, item, &format!("{path}[{i}]"), depth + 1, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_every_served_group_version() {
        let paths: Vec<&String> = index()["paths"].as_object().unwrap().keys().collect();
        assert!(paths.iter().any(|p| *p == "api/v1"), "{paths:?}");
        assert!(paths.iter().any(|p| *p == "apis/events.k8s.io/v1"), "{paths:?}");
        assert!(paths.iter().any(|p| *p == "apis/k8s.cni.cncf.io/v1"), "{paths:?}");
        assert!(paths.iter().any(|p| *p == "apis/ib-kubernetes.mellanox.com/v1alpha1"), "{paths:?}");
        assert!(paths.iter().any(|p| *p == "apis/networking.k8s.io/v1"), "{paths:?}");
        assert!(paths.iter().any(|p| *p == "apis/monitoring.coreos.com/v1"), "{paths:?}");
        assert_eq!(index()["paths"]["api/v1"]["serverRelativeURL"], "/openapi/v3/api/v1");
    }

    #[test]
    fn pod_schema_carries_its_gvk_and_the_patch_operation_lists_field_validation() {
        let doc = document("api/v1").unwrap();
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{ "group": "", "version": "v1", "kind": "Pod" }]));
        assert!(doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"].is_object());
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(doc["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
    }

    #[test]
    fn unknown_fields_are_found_at_any_depth() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "labels": { "any": "label" }, "bogus": 1 },
            "spec": { "containers": [{ "name": "c", "image": "i", "imagePullPolicy": "Always", "colour": "red",
                                       "resources": { "limits": { "mellanox.com/x": "1" } } }] },
        });
        let warnings = validate_fields(Resource::Pods, &pod, FieldValidation::Warn).unwrap();
        assert_eq!(warnings, vec![r#"unknown field "metadata.bogus""#, r#"unknown field "spec.containers[0].colour""#]);
        let err = validate_fields(Resource::Pods, &pod, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.to_string().contains("strict decoding error: unknown field \"metadata.bogus\""), "{err}");
        assert!(validate_fields(Resource::Pods, &pod, FieldValidation::Ignore).unwrap().is_empty());
        // Custom resources have no typed schema here: anything goes.
        let nad = json!({ "spec": { "config": "{}", "extra": true } });
        assert!(validate_fields(Resource::NetworkAttachmentDefinitions, &nad, FieldValidation::Strict).is_ok());
        assert!(FieldValidation::parse(Some("strict")).is_err());
    }

    #[test]
    fn services_and_network_policies_of_the_wrong_json_type_are_refused_naming_the_field() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": { "name": "s" },
            "spec": { "type": "ClusterIP", "selector": { "app": "x" },
                      "ports": [{ "name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP" }] },
        });
        assert!(check_json_types(Resource::Services, &service).is_ok());
        let mut bad = service.clone();
        bad["spec"]["ports"] = json!("9090");
        let err = check_json_types(Resource::Services, &bad).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.to_string().contains("spec.ports: expected array, got string"), "{err}");
        let mut bad = service.clone();
        bad["spec"]["ports"][0]["port"] = json!("9090");
        let err = check_json_types(Resource::Services, &bad).unwrap_err().to_string();
        assert!(err.contains("Service in version \"v1\" cannot be handled as a Service: spec.ports[0].port"), "{err}");
        // int-or-string takes either.
        let mut port_number = service.clone();
        port_number["spec"]["ports"][0]["targetPort"] = json!(9090);
        assert!(check_json_types(Resource::Services, &port_number).is_ok());

        let policy = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": { "name": "p" },
            "spec": { "podSelector": { "matchLabels": { "app": "x" } }, "policyTypes": ["Ingress"],
                      "ingress": [{ "ports": [{ "port": 9090, "protocol": "TCP" }] }] },
        });
        assert!(check_json_types(Resource::NetworkPolicies, &policy).is_ok());
        let mut bad = policy.clone();
        bad["spec"]["podSelector"]["matchLabels"] = json!(["app"]);
        let err = check_json_types(Resource::NetworkPolicies, &bad).unwrap_err().to_string();
        assert!(err.contains("spec.podSelector.matchLabels: expected object, got array"), "{err}");
        let err = check_json_types(Resource::NetworkPolicies, &json!("policy")).unwrap_err().to_string();
        assert!(err.contains("<root>: expected object, got string"), "{err}");
        // Kinds the controller writes are not checked here.
        assert!(check_json_types(Resource::Pods, &json!({ "spec": "x" })).is_ok());
    }

    #[test]
    fn a_deeply_nested_body_is_not_walked_forever() {
        let mut value = json!("leaf");
        for _ in 0..200 {
            value = json!({ "metadata": value });
        }
        assert!(validate_fields(Resource::Pods, &value, FieldValidation::Warn).is_ok());
    }
}
