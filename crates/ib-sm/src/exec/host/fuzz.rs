use super::*;
use crate::exec::protocol::ErrorResult;
use proptest::prelude::*;
use serde_json::Value;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000)
}

fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("protocolVersion".to_owned()),
        Just("memberships".to_owned()),
        Just("pkey".to_owned()),
        Just("guid".to_owned()),
        Just("code".to_owned()),
        Just("msg".to_owned()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        Just(serde_json::json!(PROTOCOL_VERSION)),
        "[0-9a-fA-F:.x-]{0,24}".prop_map(Value::String),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn plugin_output_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), v in json()) {
        let none = Redactor::none();
        for out in [bytes, v.to_string().into_bytes()] {
            let _ = decode::<ListResult>("LIST", &out, Some(PROTOCOL_VERSION), &none);
            let _ = decode::<EmptyResult>("ADD", &out, Some(PROTOCOL_VERSION), &none);
            let _ = decode::<VersionResult>("VERSION", &out, None, &none);
            let _ = serde_json::from_slice::<ErrorResult>(&out);
        }
    }

    /// A decoded LIST result names only memberships that were in the output.
    #[test]
    fn decoded_lists_come_from_the_output(v in json()) {
        let out = v.to_string();
        if let Ok(list) = decode::<ListResult>("LIST", out.as_bytes(), Some(PROTOCOL_VERSION), &Redactor::none()) {
            prop_assert_eq!(v["memberships"].as_array().map_or(0, Vec::len), list.memberships.len());
        }
    }
}
