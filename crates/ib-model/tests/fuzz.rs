//! Fuzzing of everything in the model that reads outside input: the networks annotation (parse and
//! edit), the network-status annotation, NAD configs, GUIDs and PKeys. The case count follows
//! `PROPTEST_CASES` (default 2,000); the long run is `PROPTEST_CASES=1000000 cargo test --release -p ib-model --test fuzz`.

use ib_model::annotation::network_status::parse_ib_addresses;
use ib_model::annotation::{AnnotationError, MAX_ELEMENTS, NetworksAnnotation};
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

    /// Identities, duplicates and the element limit, against the rule written out directly: an unnamed
    /// element is `idx_<k>`, k counting every earlier element with the same name; the first repeated
    /// (namespace, name, interface) is refused, naming both positions. Small alphabets make repeats
    /// common; lengths go past the limit.
    #[test]
    fn identities_and_limits_match_the_rule(
        list in prop::collection::vec((0..3usize, 0..3usize, 0..5usize), 0..(MAX_ELEMENTS + 40)),
        short: bool,
    ) {
        const NAMES: [&str; 3] = ["a", "b", "c"];
        const NAMESPACES: [Option<&str>; 3] = [None, Some("x"), Some("y")];
        // The short form cannot write `idx_…` (no '_'); the JSON form can, and meets derived identities.
        const INTERFACES: [Option<&str>; 5] = [None, Some("ib0"), Some("ib1"), Some("idx_0"), Some("idx_1")];
        let list: Vec<(usize, usize, usize)> =
            list.into_iter().map(|(n, ns, i)| (n, ns, if short && i > 2 { 0 } else { i })).collect();
        let raw = if short {
            list.iter()
                .map(|&(n, ns, i)| {
                    let ns = NAMESPACES[ns].map(|ns| format!("{ns}/")).unwrap_or_default();
                    let i = INTERFACES[i].map(|i| format!("@{i}")).unwrap_or_default();
                    format!("{ns}{}{i}", NAMES[n])
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            let elements: Vec<Value> = list
                .iter()
                .map(|&(n, ns, i)| {
                    let mut e = json!({"name": NAMES[n]});
                    if let Some(ns) = NAMESPACES[ns] { e["namespace"] = json!(ns); }
                    if let Some(i) = INTERFACES[i] { e["interface"] = json!(i); }
                    e
                })
                .collect();
            Value::Array(elements).to_string()
        };
        let got = NetworksAnnotation::parse(&raw, "pod-ns");

        if list.len() > MAX_ELEMENTS {
            prop_assert_eq!(got, Err(AnnotationError::TooManyElements { count: list.len(), limit: MAX_ELEMENTS }));
            return Ok(());
        }
        let identities: Vec<(&str, &str, String)> = list
            .iter()
            .enumerate()
            .map(|(index, &(n, ns, i))| {
                let k = list[..index].iter().filter(|e| e.0 == n).count();
                let interface = INTERFACES[i].map_or_else(|| format!("idx_{k}"), str::to_owned);
                (NAMESPACES[ns].unwrap_or("pod-ns"), NAMES[n], interface)
            })
            .collect();
        let duplicate = (0..identities.len())
            .find_map(|second| (0..second).find(|&first| identities[first] == identities[second]).map(|first| (first, second)));
        match (duplicate, got) {
            (Some((first, second)), Err(AnnotationError::DuplicateInterface { first: f, second: s, network, interface })) => {
                prop_assert_eq!((f, s), (first, second));
                prop_assert_eq!((&*network.namespace, &*network.name, interface), identities[second].clone());
            }
            (None, Ok(a)) => {
                let got: Vec<(&str, &str, String)> = a
                    .selections()
                    .iter()
                    .map(|s| (&*s.network.namespace, &*s.network.name, s.interface.clone()))
                    .collect();
                prop_assert_eq!(got, identities);
            }
            (want, got) => prop_assert!(false, "{raw}: expected duplicate {want:?}, got {got:?}"),
        }
    }

    /// Whatever field a long hostile value lands in, the error that refuses it stays short: at most 64
    /// characters of the value, each at most 10 bytes once escaped (`\u{1cf30}`).
    #[test]
    fn errors_stay_short_whatever_the_value(
        field in prop::sample::select(vec!["name", "namespace", "interface", "infiniband-guid", "cni-args", "x"]),
        unit in "\\PC{1,3}",
        repeat in 1usize..20_000,
        as_string: bool,
    ) {
        let text = unit.repeat(repeat);
        let value = if as_string { json!(text) } else { json!({ "k": [text] }) };
        let mut element = json!({"name": "a"});
        element[field] = value;
        for raw in [json!([element]).to_string(), format!("{text}/a"), format!("a@{text}"), format!("{text}@b@c")] {
            if let Err(e) = NetworksAnnotation::parse(&raw, "default") {
                let msg = e.to_string();
                prop_assert!(msg.len() < 1024, "{} bytes: {}", msg.len(), ib_model::text::shorten(&msg, 300));
            }
        }
    }

    /// The network-status annotation: nothing panics, errors stay short, and a GUID comes only from a
    /// 20-byte address of an entry naming a NAD, as the address's last 8 bytes.
    #[test]
    fn network_status_reads_only_ipoib_addresses(
        v in json(),
        bytes in prop::collection::vec(any::<u8>(), 0..24),
        name in prop::sample::select(vec!["ns/ib", "ib", "k8s-pod-network", "Ns/ib", "ns/ib/x", ""]),
        interface in prop::sample::select(vec!["net1", "", "a/b"]),
    ) {
        for raw in [v.to_string(), json!([v]).to_string()] {
            if let Err(e) = parse_ib_addresses(&raw) {
                prop_assert!(e.to_string().len() < 1024, "{}", e.to_string().len());
            }
        }
        let mac = bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        let raw = json!([{"name": name, "interface": interface, "mac": mac}]).to_string();
        match parse_ib_addresses(&raw) {
            Ok(found) => {
                let ipoib = bytes.len() == 20 && name == "ns/ib";
                prop_assert_eq!(found.len(), usize::from(ipoib));
                if ipoib {
                    let guid = bytes[12..].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                    prop_assert_eq!(found[0].guid, Guid::from_u64(guid));
                }
            }
            // A bad name or interface of an entry naming a NAD, or an address longer than IPoIB's.
            Err(e) => prop_assert!(
                name.starts_with("Ns") || name.ends_with("/x") || interface == "a/b" || bytes.len() > 20,
                "{e}"
            ),
        }
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
