//! Small accessors for `metadata` on untyped JSON objects, timestamps and name rules.
//!
//! Objects are stored as `serde_json::Value` so the emulator serves any shape a client sends;
//! these helpers keep the metadata handling in one place.

use serde_json::{Map, Value};

/// `metadata.<field>` as a string, if present.
pub(crate) fn str_field<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.<field>`, if present.
pub(crate) fn field<'a>(obj: &'a Value, field: &str) -> Option<&'a Value> {
    obj.get("metadata")?.get(field)
}

/// The `metadata` map, created when absent. `obj` must be a JSON object.
pub(crate) fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// Sets `metadata.<key>` to `old`'s value, or removes it when `old` has none.
pub(crate) fn copy_from(new: &mut Value, old: &Value, key: &str) {
    let old_value = field(old, key).cloned();
    if let Some(meta) = meta_mut(new) {
        match old_value {
            Some(v) => {
                meta.insert(key.to_string(), v);
            }
            None => {
                meta.remove(key);
            }
        }
    }
}

/// Drops `metadata` fields that are null or empty, as the apiserver's round trip through the
/// typed `ObjectMeta` (all fields `omitempty`) does. Without this, a merge patch removing the
/// last label would leave `labels: {}` behind and count as a change.
pub(crate) fn normalize(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        });
    }
}

/// The finalizer names, skipping malformed entries.
pub(crate) fn finalizers(obj: &Value) -> Vec<&str> {
    field(obj, "finalizers")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `metadata.deletionGracePeriodSeconds`, if set.
pub(crate) fn grace_seconds(obj: &Value) -> Option<i64> {
    field(obj, "deletionGracePeriodSeconds").and_then(Value::as_i64)
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn is_terminating(obj: &Value) -> bool {
    field(obj, "deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// RFC 3339 with second precision, the apiserver's `metav1.Time` format.
pub(crate) fn format_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time in `metav1.Time` format.
pub(crate) fn now() -> String {
    format_time(jiff::Timestamp::now())
}

/// The current time plus `seconds`, in `metav1.Time` format.
pub(crate) fn now_plus(seconds: i64) -> String {
    let now = jiff::Timestamp::now();
    let later = now.checked_add(jiff::SignedDuration::from_secs(seconds)).unwrap_or(now);
    format_time(later)
}

/// Whether `name` is a lowercase RFC 1123 subdomain, the rule for pods, NADs, leases and events.
pub(crate) fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
        && bytes[0] != b'.'
}

/// The apiserver's validation message for a bad name.
pub(crate) fn invalid_name_detail(name: &str) -> String {
    format!(
        "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
         alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
         character (e.g. 'example.com', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
}

/// Five characters for `generateName`, from the apiserver's alphabet (no vowels, no lookalikes).
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes().iter().take(5).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        for ok in ["a", "pod-1", "a.b-c.d", "x0"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a..b", ".a", "a_b", "a/b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn normalize_drops_empty_metadata() {
        let mut obj = json!({ "metadata": { "name": "a", "labels": {}, "finalizers": [],
                                            "generateName": "", "uid": null, "generation": 0 },
                              "spec": { "empty": {} } });
        normalize(&mut obj);
        assert_eq!(obj, json!({ "metadata": { "name": "a", "generation": 0 }, "spec": { "empty": {} } }));
    }

    #[test]
    fn copy_from_removes_absent_fields() {
        let mut new = json!({ "metadata": { "uid": "x", "generation": 4 } });
        let old = json!({ "metadata": { "uid": "y" } });
        copy_from(&mut new, &old, "uid");
        copy_from(&mut new, &old, "generation");
        assert_eq!(new, json!({ "metadata": { "uid": "y" } }));
    }

    #[test]
    fn time_format_is_second_precision_utc() {
        let ts: jiff::Timestamp = "2024-05-06T07:08:09.123Z".parse().unwrap();
        assert_eq!(format_time(ts), "2024-05-06T07:08:09Z");
    }

    #[test]
    fn suffix_has_five_characters() {
        assert_eq!(random_suffix().len(), 5);
    }
}
