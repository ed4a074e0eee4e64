//! Fuzzing of everything in the model that reads outside input: the networks annotation (parse and
//! edit), NAD configs, GUIDs and PKeys. The case count follows `PROPTEST_CASES` (default 2,000); the
//! long run is `PROPTEST_CASES=1000000 cargo test --release -p ib-model --test fuzz`.

use ib_model::annotation::NetworksAnnotation;
use ib_model::{Guid, PKey, nad};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000)
}

/// JSON biased towards the shapes the parsers look at.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("name".to_owned()),
        Just("namespace".to_owned()),
        Just("interface".to_owned()),
        Just("infiniband-guid".to_owned()),
        Just("cni-args".to_owned()),
        Just("guid".to_owned()),
        Just("pkey".to_owned()),
        Just("mellanox.infiniband.app".to_owned()),
        Just("type".to_owned()),
        Just("plugins".to_owned()),
        Just("capabilities".to_owned()),
        "[a-zA-Z-]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        Just(json!("ib-sriov")),
        Just(json!("configured")),
        "0[xX][0-9a-fA-F]{0,9}".prop_map(Value::String),
        "([0-9a-fA-F]{2}[:.-]){0,9}[0-9a-fA-F]{0,4}".prop_map(Value::String),
        "[a-z0-9-]{0,12}".prop_map(Value::String),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn annotation_text_never_panics(raw in "\\PC{0,200}") {
        let _ = NetworksAnnotation::parse(&raw, "default");
    }

    #[test]
    fn annotation_json_never_panics(v in json()) {
        let _ = NetworksAnnotation::parse(&v.to_string(), "default");
        let _ = NetworksAnnotation::parse(&json!([v]).to_string(), "default");
    }

    /// Whatever parses can be edited, and the edit changes only the keys asked for.
    #[test]
    fn edits_change_only_our_keys(v in prop::collection::vec(json(), 1..4), runtime: bool, g: u64) {
        let list: Vec<Value> = v
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let mut m = match e { Value::Object(m) => m, _ => Map::new() };
                m.insert("name".into(), json!(format!("net{i}")));
                Value::Object(m)
            })
            .collect();
        let raw = Value::Array(list).to_string();
        let Ok(mut a) = NetworksAnnotation::parse(&raw, "ns") else { return Ok(()) };
        a.set_guid(0, Guid::from_u64(g), runtime);
        a.mark_configured(0, "0x5");
        let out: Value = serde_json::from_str(&a.to_json()).unwrap();
        let mut want: Value = serde_json::from_str(&raw).unwrap();
        if !want[0]["cni-args"].is_object() {
            want[0]["cni-args"] = json!({});
        }
        if runtime {
            want[0]["infiniband-guid"] = json!(Guid::from_u64(g).to_string());
        } else {
            want[0]["cni-args"]["guid"] = json!(Guid::from_u64(g).to_string());
        }
        want[0]["cni-args"]["mellanox.infiniband.app"] = json!("configured");
        want[0]["cni-args"]["pkey"] = json!("0x5");
        prop_assert_eq!(out, want);
    }

    #[test]
    fn nad_configs_never_panic(v in json(), raw in "\\PC{0,120}") {
        let _ = nad::classify(Some(&v.to_string()));
        let _ = nad::classify(Some(&json!({"type": "ib-sriov", "pkey": v.clone(), "capabilities": v.clone()}).to_string()));
        let _ = nad::classify(Some(&json!({"plugins": [v]}).to_string()));
        let _ = nad::classify(Some(&raw));
    }

    #[test]
    fn guids_and_pkeys_never_panic(raw in "\\PC{0,40}", hexish in "[0-9a-fA-FxX:.-]{0,40}") {
        for s in [&raw, &hexish] {
            if let Ok(g) = Guid::parse(s) {
                prop_assert_eq!(Guid::parse(&g.to_string()), Ok(g));
            }
            let _ = Guid::parse_ufm(s);
            if let Ok(p) = PKey::parse(s) {
                prop_assert!((1..0x7FFF).contains(&p.get()));
            }
        }
    }
}
