use super::*;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000)
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "[0-9a-fA-Fx:]{0,24}".prop_map(Value::String),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![Just("guids".to_owned()), Just("guid".to_owned()), "[a-z0-9x]{1,6}"],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_listing(&body);
    }

    /// The direct read takes only what the JSON tree reads the same way.
    #[test]
    fn the_direct_read_agrees_with_the_tree(v in json()) {
        let body = v.to_string();
        if let Ok(listing) = typed::listing(body.as_bytes()) {
            prop_assert_eq!(Ok(listing), value_listing(body.as_bytes()));
        }
        if let Ok(members) = typed::partition(body.as_bytes()) {
            prop_assert_eq!(Ok(members), value_partition(body.as_bytes()));
        }
    }

    /// Whatever the shape, the parser either fails or returns exactly the well-formed GUIDs.
    #[test]
    fn arbitrary_json_is_parsed_or_refused(v in json()) {
        if let Ok(list) = parse_listing(v.to_string().as_bytes()) {
            for (pkey, guid) in list {
                let entry = &v[&pkey]["guids"];
                let found = entry.as_array().is_some_and(|a| a.iter().any(|i| i["guid"].as_str().and_then(|t| Guid::parse_ufm(t).ok()) == Some(guid)));
                prop_assert!(found);
            }
        }
    }

    /// Reading one partition answers exactly as the tree does, errors included.
    #[test]
    fn reading_a_partition_answers_as_the_tree(v in json()) {
        let body = v.to_string();
        prop_assert_eq!(parse_partition(body.as_bytes()), value_partition(body.as_bytes()));
    }

    /// On bodies of UFM's shape the direct read answers on its own, as the tree would.
    #[test]
    fn a_well_formed_partition_is_read_without_the_tree(
        guids in prop::collection::vec(any::<u64>(), 0..40),
        extra in prop::collection::btree_map("[a-z_]{1,12}", json(), 0..4),
    ) {
        let mut top: serde_json::Map<String, Value> = extra.into_iter().filter(|(k, _)| k != "guids").collect();
        let entries = guids.iter().map(|g| serde_json::json!({"guid": format!("{g:016x}"), "membership": "full", "index0": true}));
        top.insert("guids".into(), Value::Array(entries.collect()));
        let body = Value::Object(top).to_string();
        let direct = typed::partition(body.as_bytes());
        prop_assert!(direct.is_ok(), "the direct read gave up on {}", body);
        prop_assert_eq!(direct.ok().map(|f| f.map(|g| g.len())), Some(Some(guids.len())));
        prop_assert_eq!(parse_partition(body.as_bytes()), value_partition(body.as_bytes()));
    }
}
