use super::*;
use proptest::prelude::*;
use serde_json::json;

fn parse(raw: &str) -> NetworksAnnotation {
    NetworksAnnotation::parse(raw, "default").unwrap_or_else(|e| panic!("{}: {e}", crate::text::shorten(raw, 200)))
}

fn err(raw: &str) -> AnnotationError {
    NetworksAnnotation::parse(raw, "default").expect_err(&crate::text::shorten(raw, 200))
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
            e["namespace"] = Value::String(s.network.namespace.to_string());
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
    assert!(matches!(
        err("Net1"),
        AnnotationError::InvalidName { index: 0, field: "name", value, .. } if value == "Net1"
    ));
    assert!(matches!(
        err("ok, bad_ns/x"),
        AnnotationError::InvalidName { index: 1, field: "namespace", value, .. } if value == "bad_ns"
    ));
    assert!(matches!(
        err("x@-if"),
        AnnotationError::InvalidName { index: 0, field: "interface", value, .. } if value == "-if"
    ));
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
    assert_eq!(err(&big), AnnotationError::TooLarge { bytes: big.len(), limit: MAX_ANNOTATION_BYTES });
    assert!(err(&big).to_string().contains(&format!("{} bytes", big.len())));
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
    assert!(parse("").selections().is_empty());
    assert!(parse("  ").selections().is_empty());
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

/// What the Go daemon writes in each of its cases (numbered below): our output must read, as Multus reads
/// it, exactly as the Go output does.
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

/// The Go daemon dropped every field it did not know (its bug B15, docs/architecture.md); we keep them, in
/// order, with their values.
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
    // Kubernetes caps a subdomain at 253 in all, with no cap per dot-separated part.
    assert!(is_dns1123_subdomain(&"a".repeat(253)) && !is_dns1123_subdomain(&"a".repeat(254)));
    assert!(is_dns1123_subdomain(&format!("{}.{}", "a".repeat(100), "b".repeat(152))));
    assert!(!is_dns1123_subdomain(".a") && !is_dns1123_subdomain("a.") && !is_dns1123_subdomain("a.-b"));
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

/// `n` short-form items `a,a,…`.
fn short_list(n: usize) -> String {
    vec!["a"; n].join(",")
}

/// A JSON list of `n` copies of `element`.
fn json_list(element: &str, n: usize) -> String {
    format!("[{}]", vec![element; n].join(","))
}

#[test]
fn element_limit_holds_in_both_forms() {
    for n in [1, MAX_ELEMENTS - 1, MAX_ELEMENTS] {
        assert_eq!(parse(&short_list(n)).selections().len(), n);
        assert_eq!(parse(&json_list(r#"{"name":"a"}"#, n)).selections().len(), n);
    }
    let n = MAX_ELEMENTS + 1;
    assert_eq!(err(&short_list(n)), AnnotationError::TooManyElements { count: n, limit: MAX_ELEMENTS });
    assert_eq!(
        err(&json_list(r#"{"name":"a"}"#, n)),
        AnnotationError::TooManyElements { count: n, limit: MAX_ELEMENTS }
    );
    let msg = err(&short_list(n)).to_string();
    assert!(msg.contains(&format!("has {n} network selection elements")) && msg.contains("limit of 64"), "{msg}");
    // Empty short-form items count: they are elements Multus would refuse anyway.
    let commas = ",".repeat(MAX_ELEMENTS);
    assert_eq!(err(&commas), AnnotationError::TooManyElements { count: n, limit: MAX_ELEMENTS });
}

/// The attack that took 54–96 s per parse: 240 KB of `a,a,…`. The answer is the refusal, and it names
/// the exact count without building any element.
#[test]
fn a_240_kb_short_form_is_refused_with_its_count() {
    let raw = short_list(120 * 1024);
    assert_eq!(raw.len(), 240 * 1024 - 1);
    assert_eq!(err(&raw), AnnotationError::TooManyElements { count: 120 * 1024, limit: MAX_ELEMENTS });
}

#[test]
fn a_240_kb_json_list_is_refused_with_its_count() {
    let element = r#"{"name":"a"}"#;
    let n = 240 * 1024 / (element.len() + 1);
    assert_eq!(err(&json_list(element, n)), AnnotationError::TooManyElements { count: n, limit: MAX_ELEMENTS });
    // Elements past the limit are skipped, not read: their contents do not change the answer, even
    // when they are not objects or are nested far deeper than serde_json would build.
    let mut raw = json_list(element, MAX_ELEMENTS);
    raw.pop();
    raw.push_str(&format!(",7,\"x\",{}{}]", "[".repeat(50_000), "]".repeat(50_000)));
    assert_eq!(err(&raw), AnnotationError::TooManyElements { count: MAX_ELEMENTS + 3, limit: MAX_ELEMENTS });
    // Broken JSON past the limit is still broken JSON.
    let mut raw = json_list(element, MAX_ELEMENTS + 1);
    raw.pop();
    assert!(matches!(err(&raw), AnnotationError::Json { .. }));
}

/// The largest annotation that is accepted: as many elements as allowed, padded with user fields up to
/// nearly the byte limit (leaving room for what configuring adds, so the result parses too). Every
/// identity, edit and byte of the output is checked.
#[test]
fn the_largest_accepted_annotation_is_handled_exactly() {
    let pad = "p".repeat((MAX_ANNOTATION_BYTES - 16 * 1024) / MAX_ELEMENTS - 64);
    let elements: Vec<Value> = (0..MAX_ELEMENTS)
        .map(|i| {
            let name = ["a", "b", "c"][i % 3];
            json!({"name": name, "x-pad": pad, "i": i})
        })
        .collect();
    let raw = Value::Array(elements.clone()).to_string();
    assert!(raw.len() > MAX_ANNOTATION_BYTES - 20 * 1024 && raw.len() <= MAX_ANNOTATION_BYTES, "{}", raw.len());

    let mut a = parse(&raw);
    assert_eq!(a.selections().len(), MAX_ELEMENTS);
    for (i, s) in a.selections().iter().enumerate() {
        assert_eq!(s.interface, format!("idx_{}", i / 3), "element {i}");
    }
    for i in 0..MAX_ELEMENTS {
        a.set_guid(i, Guid::from_u64(0x0200_0000_0000_0000 + i as u64), i % 2 == 0);
        a.mark_configured(i, "0x5");
    }
    assert!(a.to_json().len() <= MAX_ANNOTATION_BYTES);
    let out: Value = serde_json::from_str(&a.to_json()).unwrap();
    let mut want = Value::Array(elements);
    for i in 0..MAX_ELEMENTS {
        let guid = json!(Guid::from_u64(0x0200_0000_0000_0000 + i as u64).to_string());
        if i % 2 == 0 {
            want[i]["infiniband-guid"] = guid;
        } else {
            want[i]["cni-args"]["guid"] = guid;
        }
        want[i]["cni-args"]["mellanox.infiniband.app"] = json!("configured");
        want[i]["cni-args"]["pkey"] = json!("0x5");
    }
    assert_eq!(out, want);
    assert_eq!(NetworksAnnotation::parse(&a.to_json(), "default").unwrap().selections(), a.selections());
}

/// The identity rule on far more elements than an annotation may hold, against a direct count.
#[test]
fn interface_identities_are_right_for_many_elements() {
    let names = ["a", "b", "c", "d", "e"];
    let mut selections: Vec<Selection> = (0..100_000)
        .map(|i| Selection {
            network: NetworkRef::new(if i % 2 == 0 { "x" } else { "y" }, names[(i * 7 + i / 3) % 5]),
            interface: if i % 11 == 0 { format!("ib{i}") } else { String::new() },
            guid: None,
            configured: false,
            pkey: None,
        })
        .collect();
    let named: Vec<bool> = selections.iter().map(|s| !s.interface.is_empty()).collect();
    assign_interfaces(&mut selections).unwrap();
    let mut counts = std::collections::HashMap::new();
    for (i, s) in selections.iter().enumerate() {
        let k = counts.entry(s.network.name.clone()).or_insert(0usize);
        let want = if named[i] { format!("ib{i}") } else { format!("idx_{k}") };
        assert_eq!(s.interface, want, "element {i}");
        *k += 1;
    }
    // One duplicate at the very end is still found, and named by both positions.
    let last = selections.len();
    selections.push(selections[last - 1].clone());
    assert!(matches!(
        assign_interfaces(&mut selections),
        Err(AnnotationError::DuplicateInterface { first, second, .. }) if first == last - 1 && second == last
    ));
}

#[test]
fn nad_names_are_kubernetes_subdomains_without_a_cap_per_part() {
    let long = "n".repeat(200);
    for raw in [format!(r#"[{{"name":"{long}"}}]"#), long.clone(), format!("ns/{long}@ib0")] {
        assert_eq!(parse(&raw).selections()[0].network.name, long.as_str().into(), "{raw}");
    }
    let max = format!("{}.{}", "a".repeat(126), "b".repeat(126));
    assert_eq!(max.len(), 253);
    assert_eq!(parse(&format!(r#"[{{"name":"{max}"}}]"#)).selections()[0].network.name, max.as_str().into());
    let single = "m".repeat(253);
    assert_eq!(parse(&single).selections()[0].network.name, single.as_str().into());

    for raw in [format!(r#"[{{"name":"{}x"}}]"#, max), "m".repeat(254)] {
        let e = err(&raw);
        assert!(
            matches!(&e, AnnotationError::InvalidName { field: "name", problem, .. } if problem.contains("253")),
            "{e}"
        );
        assert!(e.to_string().contains("(254 bytes)"), "{e}");
    }
    // Dots are for the JSON form; Multus' short form takes no dots.
    assert!(matches!(err("a.b"), AnnotationError::InvalidName { field: "name", .. }));
}

#[test]
fn namespaces_are_dns_labels() {
    let ns63 = "s".repeat(63);
    assert_eq!(parse(&format!("{ns63}/a")).selections()[0].network.namespace, ns63.as_str().into());
    assert_eq!(
        parse(&format!(r#"[{{"name":"a","namespace":"{ns63}"}}]"#)).selections()[0].network.namespace,
        ns63.as_str().into()
    );
    let ns64 = "s".repeat(64);
    for raw in [format!("{ns64}/a"), format!(r#"[{{"name":"a","namespace":"{ns64}"}}]"#)] {
        let e = err(&raw);
        assert!(
            matches!(&e, AnnotationError::InvalidName { field: "namespace", problem, .. } if problem.contains("63")),
            "{e}"
        );
    }
    assert!(matches!(
        err(r#"[{"name":"a","namespace":"a.b"}]"#),
        AnnotationError::InvalidName { field: "namespace", .. }
    ));
}

/// Linux takes at most 15 bytes; the short form follows Multus' character rule too, the JSON form only
/// what Linux refuses.
#[test]
fn interface_names_fit_linux() {
    let if15 = "i".repeat(15);
    assert_eq!(parse(&format!("a@{if15}")).selections()[0].interface, if15);
    assert_eq!(parse(&format!(r#"[{{"name":"a","interface":"{if15}"}}]"#)).selections()[0].interface, if15);
    // Linux names Multus passes on from the JSON form.
    for name in ["IB_0", "ib0.100", "enp1s0f0v1", "é0"] {
        assert_eq!(parse(&format!(r#"[{{"name":"a","interface":"{name}"}}]"#)).selections()[0].interface, name);
    }
    let if16 = "i".repeat(16);
    for raw in [format!("a@{if16}"), format!(r#"[{{"name":"a","interface":"{if16}"}}]"#)] {
        let e = err(&raw);
        assert!(
            matches!(&e, AnnotationError::InvalidName { field: "interface", problem, .. } if problem.contains("15")),
            "{e}"
        );
    }
    // 8 characters, 16 bytes.
    assert!(matches!(err(r#"[{"name":"a","interface":"éééééééé"}]"#), AnnotationError::InvalidName { .. }));
    for bad in [".", "..", "a/b", "a:b", "a b", "a\\tb", "a\\u0000", "a\\n"] {
        let raw = format!(r#"[{{"name":"a","interface":"{bad}"}}]"#);
        assert!(matches!(err(&raw), AnnotationError::InvalidName { field: "interface", .. }), "{raw}");
    }
    assert!(matches!(err("a@IB0"), AnnotationError::InvalidName { field: "interface", .. }));
}

/// A hostile value is echoed at most `ECHO_CHARS` characters long, in the message and in the error
/// value itself (which a pending pod keeps).
#[test]
fn errors_never_carry_a_whole_hostile_value() {
    let huge = "z".repeat(200 * 1024);
    let cases = [
        format!(r#"[{{"name":"{huge}"}}]"#),
        format!(r#"[{{"name":"a","namespace":"{huge}"}}]"#),
        format!(r#"[{{"name":"a","interface":"{huge}"}}]"#),
        format!(r#"[{{"name":"a","cni-args":{{"guid":{{"k":"{huge}"}}}}}}]"#),
        format!(r#"[{{"name":"a","cni-args":"{huge}"}}]"#),
        format!("{huge}/x/y"),
        format!("a@{huge}@c"),
        format!("A{huge}"),
        format!("[{huge}"),
    ];
    for raw in &cases {
        let e = err(raw);
        let msg = e.to_string();
        assert!(msg.len() < 400, "{} bytes: {}", msg.len(), &msg[..200]);
        assert!(format!("{e:?}").len() < 500);
        if !matches!(e, AnnotationError::Json { .. }) {
            assert!(msg.contains("bytes)"), "{msg}");
        }
    }
}

/// What a pod's selections keep is bounded, whatever the annotation holds.
#[test]
fn kept_selections_are_small() {
    let guid = "0".repeat(80 * 1024);
    let raw = format!(
        r#"[{{"name":"{}","namespace":"{}","interface":"{}","cni-args":{{"guid":"{guid}","pkey":"{guid}","mellanox.infiniband.app":"configured","x":"{guid}"}}}}]"#,
        "n".repeat(253),
        "s".repeat(63),
        "i".repeat(15)
    );
    let a = parse(&raw);
    let s = &a.selections()[0];
    let (text, _) = s.guid.as_ref().unwrap();
    assert!(text.ends_with("…(81920 bytes)"), "{text}");
    assert!(Guid::parse(text).is_err() && crate::PKey::parse(s.pkey.as_deref().unwrap()).is_err());
    assert!(s.heap_bytes() <= 253 + 63 + 15 + 2 * (MAX_KEPT_VALUE_CHARS + 20), "{}", s.heap_bytes());
    // Valid values are kept exactly as written.
    let a = parse(
        r#"[{"name":"a","cni-args":{"guid":"02:00:00:00:00:00:AB:CD","pkey":"0x00000000000000000000000000000000000000000000000000000000000005"}}]"#,
    );
    let s = &a.selections()[0];
    assert_eq!(s.guid.as_ref().unwrap().0, "02:00:00:00:00:00:AB:CD");
    assert_eq!(crate::PKey::parse(s.pkey.as_deref().unwrap()).unwrap().get(), 5);

    // The fixed part, on 64-bit targets: the network's two shared names, a string, an optional string
    // with its source, an optional string and a flag.
    if cfg!(target_pointer_width = "64") {
        assert_eq!(std::mem::size_of::<Selection>(), 120);
    }
    let a = parse(r#"[{"name":"ib-a"},{"name":"ib-b","interface":"ib1"}]"#);
    assert_eq!(a.selections()[0].heap_bytes(), "default".len() + "ib-a".len() + "idx_0".len());
    let kept = a.clone().into_selections();
    assert_eq!((kept.as_slice(), a.selections().len()), (a.selections(), 2));
}

#[test]
fn megabyte_inputs_are_refused_by_size_alone() {
    for raw in ["a".repeat(1 << 20), json_list(r#"{"name":"a"}"#, (1 << 20) / 13), "[".repeat(1 << 20)] {
        assert_eq!(err(&raw), AnnotationError::TooLarge { bytes: raw.len(), limit: MAX_ANNOTATION_BYTES });
    }
}

/// serde_json's nesting limit answers deep JSON with an error, never a stack overflow.
#[test]
fn deep_nesting_is_a_clean_error() {
    let depth = 100_000;
    let cases = [
        "[".repeat(depth),
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        format!(r#"[{{"name":"a","x":{}{}}}]"#, "[".repeat(depth), "]".repeat(depth)),
        format!(r#"[{{"name":"a","cni-args":{}1{}}}]"#, r#"{"k":"#.repeat(depth / 5), "}".repeat(depth / 5)),
        format!("{}1{}", r#"{"k":"#.repeat(depth / 5), "}".repeat(depth / 5)),
    ];
    for raw in &cases {
        let e = err(raw);
        assert!(
            matches!(&e, AnnotationError::Json { reason } if reason.contains("recursion limit")),
            "{}: {e}",
            &raw[..40]
        );
    }
    // Within the limit, nesting is just data, kept as written.
    let nested = format!(r#"[{{"name":"a","x":{}{}}}]"#, "[".repeat(100), "]".repeat(100));
    assert_eq!(parse(&nested).to_json(), nested);
}

#[test]
fn duplicate_heavy_lists() {
    let e = err(&vec!["a@ib0"; MAX_ELEMENTS].join(","));
    assert_eq!(
        e,
        AnnotationError::DuplicateInterface {
            first: 0,
            second: 1,
            network: NetworkRef::new("default", "a"),
            interface: "ib0".into()
        }
    );
    let e = err(&json_list(r#"{"name":"a","interface":"ib0","namespace":"x"}"#, MAX_ELEMENTS));
    assert!(matches!(e, AnnotationError::DuplicateInterface { first: 0, second: 1, .. }));
    // An explicit `idx_<k>` meets the derived one.
    let e = err(r#"[{"name":"a"},{"name":"a","interface":"idx_0"}]"#);
    assert!(matches!(e, AnnotationError::DuplicateInterface { first: 0, second: 1, .. }), "{e}");
    // Many unnamed copies are many interfaces.
    let a = parse(&json_list(r#"{"name":"a"}"#, MAX_ELEMENTS));
    assert_eq!(a.selections()[MAX_ELEMENTS - 1].interface, format!("idx_{}", MAX_ELEMENTS - 1));
}

#[test]
fn nul_bytes_and_bad_escapes() {
    // Short form: refused, and the NUL is escaped in the message.
    let e = err("a\0b");
    assert!(matches!(&e, AnnotationError::InvalidName { field: "name", value, .. } if value == "a\0b"));
    assert!(e.to_string().contains(r#""a\0b""#), "{e}");
    // JSON escapes that decode to NUL or a control character.
    assert!(matches!(err(r#"[{"name":"a\u0000"}]"#), AnnotationError::InvalidName { field: "name", .. }));
    assert!(matches!(err(r#"[{"name":"a","namespace":"\u0000"}]"#), AnnotationError::InvalidName { .. }));
    // A raw control character inside a JSON string, escapes that are not UTF-8, and bad escapes.
    for raw in [
        "[{\"name\":\"a\0\"}]",
        r#"[{"name":"\ud800"}]"#,
        r#"[{"name":"a","cni-args":{"guid":"\udc00\ud800"}}]"#,
        r#"[{"name":"\uZZZZ"}]"#,
        r#"[{"name":"\x41"}]"#,
        "[{\"name\":\"a\"}]\0",
    ] {
        assert!(matches!(err(raw), AnnotationError::Json { .. }), "{raw:?}");
    }
    // A NUL in a value ib-kubernetes does not interpret is the user's business, kept as written.
    let raw = r#"[{"name":"a","x":"\u0000","cni-args":{"other":"\u0000"}}]"#;
    assert_eq!(parse(raw).to_json(), raw);
    // Escaped surrogate pairs are valid UTF-16 and decode to one character.
    let raw = r#"[{"name":"a","x":"\ud83e\udd80"}]"#;
    assert_eq!(parse(raw).to_json(), r#"[{"name":"a","x":"🦀"}]"#);
}
