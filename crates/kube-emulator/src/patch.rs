//! PATCH bodies, dispatched on `Content-Type` as the apiserver does.
//!
//! Strategic merge is served as a JSON merge patch: for the fields this project touches (metadata
//! maps, status scalars, Lease spec scalars) the two agree. Strategic directives (`$patch`,
//! `$retainKeys`, `$setElementOrder/…`, `$deleteFromPrimitiveList/…`) would silently mis-merge
//! under RFC 7386, so they are refused instead.
//!
//! Server-side apply (`application/apply-patch+yaml`, what `kubectl apply --server-side`, Argo CD
//! and Flux send) merges the applied configuration into the live object: maps key by key, lists
//! of named objects (containers, env, volumes, ports with names) item by item by `name`, other
//! lists replaced whole. What the emulator leaves out: ownership. It records one `managedFields`
//! entry per applying manager but never reports a conflict between managers, and a field dropped
//! from a later applied configuration stays in the live object.

use serde_json::Value;

/// The patch formats the apiserver distinguishes by media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`, served as a merge patch.
    Strategic,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml`: server-side apply (a YAML or JSON body).
    Apply,
}

/// Why a patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// A media type that is no patch format (415).
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
    )]
    UnsupportedMediaType,
    /// The body is not valid JSON or not a patch document (400).
    #[error("{0}")]
    Undecodable(String),
    /// A strategic-merge directive this emulator does not implement (400).
    #[error("strategic merge patch directive {0:?} is not supported by this emulator")]
    UnsupportedDirective(String),
    /// A JSON patch operation failed, including a failed `test` (422).
    #[error("{0}")]
    Apply(String),
}

impl PatchKind {
    /// Chooses the patch format from a `Content-Type` header value (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Result<PatchKind, PatchError> {
        let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            _ => Err(PatchError::UnsupportedMediaType),
        }
    }
}

/// Applies `body` to `target` in place. On error `target` is unchanged.
pub fn apply(kind: PatchKind, target: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    if kind == PatchKind::Apply {
        let applied = applied_configuration(body)?;
        merge_applied(target, &applied);
        return Ok(());
    }
    let patch: Value = serde_json::from_slice(body).map_err(|e| PatchError::Undecodable(e.to_string()))?;
    match kind {
        PatchKind::Apply => Ok(()),
        PatchKind::Merge | PatchKind::Strategic => {
            if !patch.is_object() {
                return Err(PatchError::Undecodable("a merge patch must be a JSON object".to_string()));
            }
            if kind == PatchKind::Strategic {
                reject_directives(&patch)?;
            }
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchKind::Json => {
            let ops: json_patch::Patch =
                serde_json::from_value(patch).map_err(|e| PatchError::Undecodable(e.to_string()))?;
            // `json_patch::patch` rolls back on failure, so a failed `test` leaves `target` intact.
            json_patch::patch(target, &ops).map_err(|e| PatchError::Apply(e.to_string()))
        }
    }
}

/// The body of a server-side apply: a YAML (or JSON, which is YAML) object. `managedFields` may
/// not be sent, as on the apiserver, where the field manager owns them.
pub fn applied_configuration(body: &[u8]) -> Result<Value, PatchError> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            serde_norway::from_slice(body).map_err(|e| PatchError::Undecodable(format!("error decoding YAML: {e}")))?
        }
    };
    if !value.is_object() {
        return Err(PatchError::Undecodable("an applied configuration must be an object".to_string()));
    }
    if value.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
        return Err(PatchError::Undecodable(
            "metadata.managedFields must be nil in an applied configuration".to_string(),
        ));
    }
    Ok(value)
}

/// Merges an applied configuration into `live`: maps recursively, lists of objects that all carry
/// a `name` item by item (applied items in applied order, then live items the configuration does
/// not name), anything else replaced. A `null` in the configuration leaves the live value alone:
/// in server-side apply, null means "no opinion", not "delete".
pub fn merge_applied(live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) => {
            for (key, value) in applied {
                if value.is_null() {
                    continue;
                }
                match live.get_mut(key) {
                    Some(existing) => merge_applied(existing, value),
                    None => {
                        live.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(applied)) if named(live) && named(applied) => {
            let mut merged = Vec::with_capacity(applied.len().max(live.len()));
            for item in applied {
                let name = item.get("name");
                let mut combined = live.iter().find(|l| l.get("name") == name).cloned().unwrap_or(Value::Null);
                if combined.is_null() {
                    combined = item.clone();
                } else {
                    merge_applied(&mut combined, item);
                }
                merged.push(combined);
            }
            for item in live.iter() {
                if !applied.iter().any(|a| a.get("name") == item.get("name")) {
                    merged.push(item.clone());
                }
            }
            *live = merged;
        }
        (live, applied) => *live = applied.clone(),
    }
}

fn named(items: &[Value]) -> bool {
    items.iter().all(|item| item.get("name").is_some_and(Value::is_string))
}

fn reject_directives(patch: &Value) -> Result<(), PatchError> {
    match patch {
        Value::Object(map) => {
            for (key, value) in map {
                if key.starts_with('$') {
                    return Err(PatchError::UnsupportedDirective(key.clone()));
                }
                reject_directives(value)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(reject_directives),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"), Ok(PatchKind::Merge));
        assert_eq!(PatchKind::from_content_type("application/json-patch+json"), Ok(PatchKind::Json));
        assert_eq!(PatchKind::from_content_type("application/apply-patch+yaml"), Ok(PatchKind::Apply));
        assert_eq!(PatchKind::from_content_type("application/json"), Err(PatchError::UnsupportedMediaType));
    }

    #[test]
    fn merge_removes_nulls_and_replaces_lists() {
        let mut obj = json!({ "a": { "b": 1, "c": 2 }, "l": [1, 2] });
        apply(PatchKind::Merge, &mut obj, br#"{"a":{"b":null,"d":3},"l":[3]}"#).unwrap();
        assert_eq!(obj, json!({ "a": { "c": 2, "d": 3 }, "l": [3] }));
    }

    #[test]
    fn strategic_directives_are_refused() {
        let mut obj = json!({ "spec": { "containers": [] } });
        let err = apply(PatchKind::Strategic, &mut obj, br#"{"spec":{"containers":[{"name":"x","$patch":"delete"}]}}"#)
            .unwrap_err();
        assert_eq!(err, PatchError::UnsupportedDirective("$patch".into()));
        assert!(apply(PatchKind::Strategic, &mut obj, br#"{"$retainKeys":["a"]}"#).is_err());
        assert_eq!(obj, json!({ "spec": { "containers": [] } }));
    }

    #[test]
    fn apply_merges_maps_and_named_lists() {
        let mut live = json!({
            "metadata": { "labels": { "a": "1" }, "annotations": { "keep": "x" } },
            "spec": { "containers": [{ "name": "c", "image": "old", "env": [{ "name": "E", "value": "1" }] },
                                      { "name": "sidecar", "image": "s" }],
                      "args": ["a", "b"] }
        });
        let body =
            b"metadata:\n  labels:\n    b: '2'\nspec:\n  containers:\n  - name: c\n    image: new\n  args: [c]\n";
        apply(PatchKind::Apply, &mut live, body).unwrap();
        assert_eq!(live["metadata"]["labels"], json!({ "a": "1", "b": "2" }));
        assert_eq!(live["metadata"]["annotations"]["keep"], "x");
        assert_eq!(
            live["spec"]["containers"][0],
            json!({ "name": "c", "image": "new", "env": [{ "name": "E", "value": "1" }] })
        );
        assert_eq!(live["spec"]["containers"][1]["name"], "sidecar");
        assert_eq!(live["spec"]["args"], json!(["c"]));
    }

    #[test]
    fn apply_refuses_bad_bodies() {
        let mut live = json!({ "a": 1 });
        for body in [&b"- 1\n- 2\n"[..], b"a: [", br#"{"metadata":{"managedFields":[{"manager":"x"}]}}"#] {
            assert!(matches!(apply(PatchKind::Apply, &mut live, body), Err(PatchError::Undecodable(_))), "{body:?}");
        }
        assert_eq!(live, json!({ "a": 1 }));
    }

    #[test]
    fn failed_test_leaves_target_unchanged() {
        let mut obj = json!({ "metadata": { "resourceVersion": "5" }, "x": 1 });
        let err = apply(
            PatchKind::Json,
            &mut obj,
            br#"[{"op":"replace","path":"/x","value":2},{"op":"test","path":"/metadata/resourceVersion","value":"4"}]"#,
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Apply(_)));
        assert_eq!(obj["x"], 1);
    }

    #[test]
    fn undecodable_json_patch() {
        let mut obj = json!({});
        for body in [&b"{"[..], br#"{"op":"add"}"#, br#"[{"op":"frobnicate","path":"/a"}]"#] {
            assert!(matches!(apply(PatchKind::Json, &mut obj, body), Err(PatchError::Undecodable(_))));
        }
        assert!(matches!(apply(PatchKind::Merge, &mut obj, b"[1]"), Err(PatchError::Undecodable(_))));
    }
}
