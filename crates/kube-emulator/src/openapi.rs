//! The OpenAPI v3 documents (`/openapi/v3` and one per group-version) and server-side field
//! validation built on them.
//!
//! kubectl reads these documents for `kubectl explain`, and before `create`/`apply` to learn
//! whether the server validates fields itself (a PATCH operation that lists the `fieldValidation`
//! query parameter); without them it refuses to send anything unless told `--validate=false`.
//! The schemas are generated from k8s-openapi's JSON schemas of the built-in types the emulator
//! serves, not written by hand, with `x-kubernetes-group-version-kind` added to each top-level
//! type as the apiserver does. The two custom resources (NADs and GuidBlocks) have no such type:
//! served with typed metadata and everything else preserved, the shape of a schemaless CRD.
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
    use k8s_openapi::api::{admissionregistration, apps, coordination, core, events, rbac};
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
        Resource::NetworkAttachmentDefinitions | Resource::GuidBlocks => Some(custom_resource(resource, generator)),
    }
}

/// The two custom resources are served whether or not their CRDs are stored, so their documents
/// are too, as an apiserver publishes an established CRD's: typed metadata, anything else kept.
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
    fn a_deeply_nested_body_is_not_walked_forever() {
        let mut value = json!("leaf");
        for _ in 0..200 {
            value = json!({ "metadata": value });
        }
        assert!(validate_fields(Resource::Pods, &value, FieldValidation::Warn).is_ok());
    }
}
