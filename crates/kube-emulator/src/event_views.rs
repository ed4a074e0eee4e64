//! One Event, two API views: core `v1` `events` and `events.k8s.io/v1` `events`.
//!
//! The apiserver stores a single object per Event and converts it for whichever group a client
//! asks through, so an Event written as `events.k8s.io/v1` shows in `kubectl get events` and
//! `kubectl describe pod` (both read core `v1`), and the reverse. The store keeps both views of
//! every Event, written together under one resourceVersion; this module is the conversion. It is
//! the apiserver's field mapping: seven fields are renamed, the rest (`reason`, `type`, `action`,
//! `eventTime`, `series`, `related`, `reportingInstance`, `metadata`) carry the same name.

use crate::resource::Resource;
use serde_json::{Map, Value, json};

/// `(core v1 name, events.k8s.io/v1 name)` of every renamed field.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// The other view of an Event stored as `from` (`Resource::Events` or `Resource::CoreEvents`).
pub(crate) fn mirror(from: Resource) -> Option<Resource> {
    match from {
        Resource::Events => Some(Resource::CoreEvents),
        Resource::CoreEvents => Some(Resource::Events),
        _ => None,
    }
}

/// `event` (a view of `from`) converted to the view of `to`. A field that only the target view
/// names (a core Event carrying `note`, say) is dropped rather than allowed to shadow the
/// converted one, as the apiserver prunes fields its schema does not know.
pub(crate) fn convert(from: Resource, to: Resource, event: &Value) -> Value {
    let Some(map) = event.as_object() else { return event.clone() };
    let to_events_v1 = from == Resource::CoreEvents && to == Resource::Events;
    let rename = |key: &str| -> Option<&'static str> {
        RENAMED.iter().find_map(|(core, v1)| match (to_events_v1, key == *core, key == *v1) {
            (true, true, _) => Some(*v1),
            (false, _, true) => Some(*core),
            _ => None,
        })
    };
    let foreign =
        |key: &str| -> bool { RENAMED.iter().any(|(core, v1)| if to_events_v1 { key == *v1 } else { key == *core }) };
    let mut out = Map::new();
    for (key, value) in map {
        if foreign(key) {
            continue;
        }
        let name = rename(key).unwrap_or(key.as_str());
        out.insert(name.to_string(), value.clone());
    }
    out.insert("apiVersion".into(), json!(to.api_version()));
    out.insert("kind".into(), json!(to.kind()));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_v1_fields_become_core_fields_and_back() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": { "name": "p.1", "namespace": "default", "uid": "u" },
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "regarding": { "kind": "Pod", "name": "p" },
            "note": "GUID already in use", "reason": "GuidConflict", "type": "Warning", "action": "Allocate",
            "reportingController": "ib-kubernetes", "reportingInstance": "ib-kubernetes-0",
            "series": { "count": 2, "lastObservedTime": "2025-01-01T00:00:05.000000Z" },
            "deprecatedCount": 3, "deprecatedSource": { "component": "x" },
        });
        let core = convert(Resource::Events, Resource::CoreEvents, &v1);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "GUID already in use");
        assert_eq!(core["reportingComponent"], "ib-kubernetes");
        assert_eq!(core["reportingInstance"], "ib-kubernetes-0");
        assert_eq!(core["count"], 3);
        assert_eq!(core["source"]["component"], "x");
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
        assert_eq!(convert(Resource::CoreEvents, Resource::Events, &core), v1);
    }

    #[test]
    fn a_field_of_the_other_view_cannot_shadow_the_converted_one() {
        let core = json!({ "message": "real", "note": "forged", "involvedObject": { "name": "p" },
                           "regarding": { "name": "other" } });
        let v1 = convert(Resource::CoreEvents, Resource::Events, &core);
        assert_eq!(v1["note"], "real");
        assert_eq!(v1["regarding"]["name"], "p");
        assert!(v1.get("message").is_none());
    }

    #[test]
    fn only_events_have_a_mirror() {
        assert_eq!(mirror(Resource::Events), Some(Resource::CoreEvents));
        assert_eq!(mirror(Resource::CoreEvents), Some(Resource::Events));
        assert_eq!(mirror(Resource::Pods), None);
    }
}
