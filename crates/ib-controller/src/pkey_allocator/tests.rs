use serde_json::json;

use super::*;

fn nad(annotations: serde_json::Value, finalizers: serde_json::Value, deleting: bool) -> Nad {
    let mut meta = json!({"name": "n", "namespace": "a", "uid": "u", "resourceVersion": "7",
                          "annotations": annotations, "finalizers": finalizers});
    if deleting {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({"metadata": meta})).unwrap()
}

#[test]
fn a_holder_shows_its_key_and_finalizer_and_others_lose_ours() {
    let key = PKey::parse("0x1001").ok();
    let p = nad_patch(&nad(json!({}), json!(["other"]), false), key).unwrap();
    assert_eq!(p["metadata"]["annotations"][PKEY_ANNOTATION], "0x1001");
    assert_eq!(p["metadata"]["finalizers"], json!(["other", FINALIZER]));
    assert_eq!(p["metadata"]["resourceVersion"], "7");
    assert!(nad_patch(&nad(json!({PKEY_ANNOTATION: "0x1001"}), json!([FINALIZER]), false), key).is_none());
    // A hand-written annotation naming another key is corrected.
    let p = nad_patch(&nad(json!({PKEY_ANNOTATION: "0x1005"}), json!([FINALIZER]), false), key).unwrap();
    assert_eq!(p["metadata"]["annotations"][PKEY_ANNOTATION], "0x1001");
    // Holding nothing: our annotation and finalizer go, the others stay.
    let p = nad_patch(&nad(json!({PKEY_ANNOTATION: "0x1001"}), json!(["x", FINALIZER]), true), None).unwrap();
    assert_eq!(p["metadata"]["annotations"][PKEY_ANNOTATION], serde_json::Value::Null);
    assert_eq!(p["metadata"]["finalizers"], json!(["x"]));
    // A deleting holder keeps its finalizer and is not given one it lost.
    assert!(nad_patch(&nad(json!({PKEY_ANNOTATION: "0x1001"}), json!([FINALIZER]), true), key).is_none());
    assert!(nad_patch(&nad(json!({}), json!([]), true), key).is_none());
    assert!(nad_patch(&nad(json!({}), json!([]), false), None).is_none());
}
