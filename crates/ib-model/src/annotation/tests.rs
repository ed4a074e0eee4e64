use super::*;
use proptest::prelude::*;
use serde_json::json;

fn parse(raw: &str) -> NetworksAnnotation {
    NetworksAnnotation::parse(raw, "default").unwrap_or_else(|e| panic!("{raw}: {e}"))
}

fn err(raw: &str) -> AnnotationError {
    NetworksAnnotation::parse(raw, "default").expect_err(raw)
}

fn g(s: &str) -> Guid {
    Guid::parse(s).unwrap()
}

/// Elements compared as Multus reads them: namespace defaulted, everything else as written.
fn semantic(raw: &str, ns: &str) -> Vec<Value> {
    let parsed = NetworksAnnotation::parse(raw, ns).unwrap();
    let json: Value = serde_json::from_str(&parsed.to_json()).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .zip(parsed.selections())
        .map(|(e, s)| {
            let mut e = e.clone();
            e["namespace"] = Value::String(s.network.namespace.clone());
            e
        })
        .collect()
}

#[test]
fn short_form_as_multus_parses_it() {
    let a = parse(" ib-net , other/ib2@ib0,ml/net3 ");
    let s = a.selections();
    assert_eq!(s.len(), 3);
    assert_eq!((s[0].network.to_string(), s[0].interface.as_str()), ("default/ib-net".into(), "idx_0"));
    assert_eq!((s[1].network.to_string(), s[1].interface.as_str()), ("other/ib2".into(), "ib0"));
    assert_eq!(s[2].network, NetworkRef::new("ml", "net3"));
    assert_eq!(
        a.to_json(),
        r#"[{"name":"ib-net"},{"name":"ib2","namespace":"other","interface":"ib0"},{"name":"net3","namespace":"ml"}]"#
    );
}

#[test]
fn short_form_errors_name_the_item() {
    assert_eq!(err("a/b/c"), AnnotationError::ShortForm { item: "a/b/c".into(), separator: '/' });
    assert_eq!(err("a@b@c"), AnnotationError::ShortForm { item: "a@b@c".into(), separator: '@' });
    assert_eq!(err("Net1"), AnnotationError::InvalidName { index: 0, field: "name", value: "Net1".into() });
    assert_eq!(
        err("ok, bad_ns/x"),
        AnnotationError::InvalidName { index: 1, field: "namespace", value: "bad_ns".into() }
    );
    assert_eq!(err("x@-if"), AnnotationError::InvalidName { index: 0, field: "interface", value: "-if".into() });
    assert_eq!(err("a,,b"), AnnotationError::MissingName { index: 1 });
    assert!(err("Net1").to_string().contains("\"Net1\""));
}

#[test]
fn json_errors_are_clear() {
    assert!(matches!(err("[{\"name\": "), AnnotationError::Json { .. }));
    assert_eq!(err(r#"{"name":"a"}"#), AnnotationError::NotAList { found: "an object" });
    assert_eq!(err(r#"["a"]"#), AnnotationError::ElementNotObject { index: 0, found: "a string" });
    assert_eq!(err(r#"[{"namespace":"x"}]"#), AnnotationError::MissingName { index: 0 });
    let e = err(r#"[{"name":"a","cni-args":{"guid":12}}]"#);
    assert!(matches!(&e, AnnotationError::FieldType { field, .. } if field == "cni-args.guid"), "{e}");
    assert!(e.to_string().contains("cni-args.guid") && e.to_string().contains("a number 12"), "{e}");
    for field in ["pkey", "mellanox.infiniband.app"] {
        let raw = format!(r#"[{{"name":"a","cni-args":{{"{field}":true}}}}]"#);
        assert!(matches!(err(&raw), AnnotationError::FieldType { field: f, .. } if f == format!("cni-args.{field}")));
    }
    assert!(
        matches!(err(r#"[{"name":"a","cni-args":[1]}]"#), AnnotationError::FieldType { field, .. } if field == "cni-args")
    );
    assert!(
        matches!(err(r#"[{"name":"a","infiniband-guid":1}]"#), AnnotationError::FieldType { field, .. } if field == "infiniband-guid")
    );
    assert!(matches!(err(r#"[{"name":5}]"#), AnnotationError::FieldType { field, .. } if field == "name"));
    assert!(
        matches!(err(r#"[{"name":"a","interface":[]}]"#), AnnotationError::FieldType { field, .. } if field == "interface")
    );
    assert!(matches!(
        err(r#"[{"name":"a","namespace":"Bad"}]"#),
        AnnotationError::InvalidName { field: "namespace", .. }
    ));
    assert!(matches!(err(r#"[{"name":"a b"}]"#), AnnotationError::InvalidName { field: "name", .. }));
    let big = format!("[{{\"name\":\"a\",\"x\":\"{}\"}}]", "y".repeat(MAX_ANNOTATION_BYTES));
    assert!(matches!(err(&big), AnnotationError::TooLarge { .. }));
}

#[test]
fn hostile_values_are_shortened_in_errors() {
    let raw = format!(r#"[{{"name":"a","cni-args":{{"guid":[{}]}}}}]"#, "1,".repeat(5000) + "1");
    let msg = err(&raw).to_string();
    assert!(msg.len() < 300, "{}", msg.len());
}

#[test]
fn other_cni_args_values_need_not_be_strings() {
    // Only the keys ib-kubernetes reads must be strings; the rest belongs to other plugins.
    let a = parse(r#"[{"name":"a","cni-args":{"other":{"x":1},"n":3}}]"#);
    assert_eq!(a.selections()[0].guid, None);
}

#[test]
fn empty_value_has_no_elements() {
    assert!(parse("").is_empty());
    assert!(parse("  ").is_empty());
    assert_eq!(parse("[]").selections().len(), 0);
}

#[test]
fn interface_ids_follow_the_go_rule() {
    // [A@net1, B, A, A@net3, A] → the unnamed A's are idx_1 and idx_3.
    let a = parse("a@net1, b, a, a@net3, a");
    let ids: Vec<&str> = a.selections().iter().map(|s| s.interface.as_str()).collect();
    assert_eq!(ids, ["net1", "idx_0", "idx_1", "net3", "idx_3"]);
    // The namespace is ignored when counting, as in Go.
    let a = parse(r#"[{"name":"a","namespace":"x"},{"name":"a","namespace":"y"}]"#);
    assert_eq!(a.selections()[1].interface, "idx_1");
}

#[test]
fn duplicate_interface_identity_is_refused() {
    let e = err("a@ib0, a@ib0");
    assert!(matches!(e, AnnotationError::DuplicateInterface { first: 0, second: 1, .. }), "{e}");
    // The same name in two namespaces is two networks.
    parse("x/a@ib0, y/a@ib0");
}

#[test]
fn guid_sources_and_precedence() {
    let a = parse(
        r#"[{"name":"a","infiniband-guid":"02:00:00:00:00:00:00:01","cni-args":{"guid":"02:00:00:00:00:00:00:02"}},{"name":"b","cni-args":{"guid":"02:00:00:00:00:00:00:03","mellanox.infiniband.app":"configured","pkey":"0x5"}},{"name":"c","infiniband-guid":"","cni-args":{"mellanox.infiniband.app":"pending"}}]"#,
    );
    let s = a.selections();
    assert_eq!(s[0].guid, Some(("02:00:00:00:00:00:00:01".into(), GuidSource::RuntimeConfig)));
    assert!(!s[0].configured);
    assert_eq!(s[1].guid, Some(("02:00:00:00:00:00:00:03".into(), GuidSource::CniArgs)));
    assert!(s[1].configured);
    assert_eq!(s[1].pkey.as_deref(), Some("0x5"));
    assert_eq!((s[2].guid.clone(), s[2].configured), (None, false));
}

/// The Go daemon's examples (behaviour §3.3): our output must read, as Multus reads it, exactly as the
/// Go output does.
#[test]
fn go_examples_produce_the_same_elements() {
    // 1. Generated GUID, cni-args form.
    let mut a = parse(r#"[{"name": "ib-sriov-network"}]"#);
    a.set_guid(0, g("02:00:00:00:00:00:00:00"), false);
    a.mark_configured(0, "0x5");
    assert_eq!(
        semantic(&a.to_json(), "default"),
        semantic(
            r#"[{"name":"ib-sriov-network","namespace":"default","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":"0x5"}}]"#,
            "default"
        )
    );

    // 2. Runtime-config capability, short form, pod in `ml`.
    let mut a = NetworksAnnotation::parse("ib-net@ib0", "ml").unwrap();
    a.set_guid(0, g("02:00:00:00:00:00:00:01"), true);
    a.mark_configured(0, "0x00FF");
    assert_eq!(
        semantic(&a.to_json(), "ml"),
        semantic(
            r#"[{"name":"ib-net","namespace":"ml","infiniband-guid":"02:00:00:00:00:00:00:01","interface":"ib0","cni-args":{"mellanox.infiniband.app":"configured","pkey":"0x00FF"}}]"#,
            "ml"
        )
    );

    // 3. User-specified GUID: kept exactly as written.
    let mut a = parse(r#"[{"name":"ib-sriov-network","cni-args":{"guid":"02:00:00:00:00:00:AB:CD"}}]"#);
    a.mark_configured(0, "0x5");
    assert_eq!(
        semantic(&a.to_json(), "default"),
        semantic(
            r#"[{"name":"ib-sriov-network","namespace":"default","cni-args":{"guid":"02:00:00:00:00:00:AB:CD","mellanox.infiniband.app":"configured","pkey":"0x5"}}]"#,
            "default"
        )
    );

    // 4. Two interfaces on one network plus a non-IB network.
    let mut a = parse(
        r#"[{"name":"ib-sriov-network","interface":"ib0"},{"name":"ib-sriov-network"},{"name":"macvlan","namespace":"other"}]"#,
    );
    let ids: Vec<&str> = a.selections().iter().map(|s| s.interface.as_str()).collect();
    assert_eq!(ids, ["ib0", "idx_1", "idx_0"]);
    a.set_guid(0, g("02:00:00:00:00:00:00:00"), false);
    a.set_guid(1, g("02:00:00:00:00:00:00:01"), false);
    a.mark_configured(0, "0x5");
    a.mark_configured(1, "0x5");
    assert_eq!(
        semantic(&a.to_json(), "default"),
        semantic(
            r#"[{"name":"ib-sriov-network","namespace":"default","interface":"ib0","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":"0x5"}},{"name":"ib-sriov-network","namespace":"default","cni-args":{"guid":"02:00:00:00:00:00:00:01","mellanox.infiniband.app":"configured","pkey":"0x5"}},{"name":"macvlan","namespace":"other"}]"#,
            "default"
        )
    );

    // 5. NAD without pkey: `"pkey":""`.
    let mut a = parse(r#"[{"name": "ib-sriov-network"}]"#);
    a.set_guid(0, g("02:00:00:00:00:00:00:00"), false);
    a.mark_configured(0, "");
    let s = &a.selections()[0];
    assert_eq!((s.configured, s.pkey.as_deref()), (true, Some("")));
    assert_eq!(
        semantic(&a.to_json(), "default"),
        semantic(
            r#"[{"name":"ib-sriov-network","namespace":"default","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":""}}]"#,
            "default"
        )
    );
}

/// The Go daemon dropped every field it did not know (B15); we keep them, in order, with their values.
#[test]
fn user_fields_survive_the_edit() {
    let raw = r#"[{"zeta":1,"name":"ib","ips":["10.0.0.1/24"],"mac":"c2:b0:57:49:47:f1","interface":"ib0","default-route":["10.0.0.254"],"cni-args":{"foo":{"nested":[1,2,{"k":null}]},"guid":"02:00:00:00:00:00:AB:CD"},"x-vendor":{"a":"<&>"}},{"name":"other","portMappings":[{"hostPort":80}]}]"#;
    let mut a = parse(raw);
    a.mark_configured(0, "0x5");
    let out: Value = serde_json::from_str(&a.to_json()).unwrap();
    let before: Value = serde_json::from_str(raw).unwrap();
    let mut expected = before.clone();
    expected[0]["cni-args"]["mellanox.infiniband.app"] = json!("configured");
    expected[0]["cni-args"]["pkey"] = json!("0x5");
    assert_eq!(out, expected);
    // Key order is kept too, ours appended at the end of cni-args.
    let keys: Vec<&String> = out[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["zeta", "name", "ips", "mac", "interface", "default-route", "cni-args", "x-vendor"]);
    let args: Vec<&String> = out[0]["cni-args"].as_object().unwrap().keys().collect();
    assert_eq!(args, ["foo", "guid", "mellanox.infiniband.app", "pkey"]);
    assert_eq!(out[1], before[1]);
}

#[test]
fn null_cni_args_becomes_an_object() {
    let mut a = parse(r#"[{"name":"ib","cni-args":null}]"#);
    a.set_guid(0, g("02:00:00:00:00:00:00:07"), false);
    let out: Value = serde_json::from_str(&a.to_json()).unwrap();
    assert_eq!(out[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:07");
}

#[test]
fn dns_names() {
    assert!(is_dns1123_label("a") && is_dns1123_label("a-0") && is_dns1123_label(&"a".repeat(63)));
    assert!(!is_dns1123_label("") && !is_dns1123_label("-a") && !is_dns1123_label("a-") && !is_dns1123_label("A"));
    assert!(!is_dns1123_label(&"a".repeat(64)));
    assert!(is_dns1123_subdomain("a.b-c.d") && !is_dns1123_subdomain("a..b"));
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z-]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics(raw in "\\PC{0,64}") {
        let _ = NetworksAnnotation::parse(&raw, "default");
    }

    #[test]
    fn parse_never_panics_on_json_shapes(v in arb_json()) {
        let _ = NetworksAnnotation::parse(&v.to_string(), "default");
        let _ = NetworksAnnotation::parse(&json!([v]).to_string(), "default");
    }

    /// Setting our keys changes nothing else: every other field of every element stays equal.
    #[test]
    fn edits_touch_only_our_keys(extra in prop::collection::btree_map("[a-z]{1,5}", arb_json(), 0..5),
                                 args in prop::collection::btree_map("[a-z]{1,5}", arb_json(), 0..4),
                                 runtime in any::<bool>(), n in 1usize..4, v: u64) {
        let mut elements = Vec::new();
        for i in 0..n {
            let mut e: Map<String, Value> = extra.clone().into_iter().collect();
            e.insert("name".into(), json!(format!("net{i}")));
            e.insert("cni-args".into(), Value::Object(args.clone().into_iter().collect()));
            elements.push(Value::Object(e));
        }
        let raw = Value::Array(elements).to_string();
        let mut a = NetworksAnnotation::parse(&raw, "ns").unwrap();
        a.set_guid(0, Guid::from_u64(v), runtime);
        a.mark_configured(0, "0x5");
        let out: Value = serde_json::from_str(&a.to_json()).unwrap();
        let mut want: Value = serde_json::from_str(&raw).unwrap();
        if runtime {
            want[0]["infiniband-guid"] = json!(Guid::from_u64(v).to_string());
        } else {
            want[0]["cni-args"]["guid"] = json!(Guid::from_u64(v).to_string());
        }
        want[0]["cni-args"]["mellanox.infiniband.app"] = json!("configured");
        want[0]["cni-args"]["pkey"] = json!("0x5");
        prop_assert_eq!(&out, &want);
        let reparsed = NetworksAnnotation::parse(&a.to_json(), "ns").unwrap();
        prop_assert_eq!(reparsed.selections(), a.selections());
    }
}
