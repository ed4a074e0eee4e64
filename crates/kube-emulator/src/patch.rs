//! PATCH bodies, dispatched on `Content-Type` as the apiserver does.
//!
//! Strategic merge is served as a JSON merge patch: for the fields this project touches (metadata
//! maps, status scalars, Lease spec scalars) the two agree. Strategic directives (`$patch`,
//! `$retainKeys`, `$setElementOrder/…`, `$deleteFromPrimitiveList/…`) would silently mis-merge
//! under RFC 7386, so they are refused instead.

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
}

/// Why a patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// Server-side apply is not implemented (415, as a server without SSA answers).
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
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
            _ => Err(PatchError::UnsupportedMediaType),
        }
    }
}

/// Applies `body` to `target` in place. On error `target` is unchanged.
pub fn apply(kind: PatchKind, target: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    let patch: Value = serde_json::from_slice(body).map_err(|e| PatchError::Undecodable(e.to_string()))?;
    match kind {
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
        assert_eq!(PatchKind::from_content_type("application/apply-patch+yaml"), Err(PatchError::UnsupportedMediaType));
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
