use super::*;
use crate::partition::{Membership, MtuLimit, PartitionOptions, Qos, RateLimit};
use proptest::prelude::*;

fn ib(config: &str) -> IbSriovSpec {
    match classify(Some(config)) {
        Ok(NadKind::InfiniBand(spec)) => spec,
        other => panic!("{config}: {other:?}"),
    }
}

#[test]
fn single_plugin_config() {
    let spec = ib(
        r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"sriov-network","pkey":"0x5","link_state":"enable","ipam":{}}"#,
    );
    assert_eq!(spec.pkey, Some(PKey::parse("0x5").unwrap()));
    assert_eq!(spec.pkey_text, "0x5");
    assert!(!spec.runtime_config_guid);
}

#[test]
fn conflist_uses_the_first_ib_sriov_plugin() {
    let spec = ib(
        r#"{"cniVersion":"0.3.1","name":"ib-net","plugins":[{"type":"tuning"},{"type":"ib-sriov","pkey":"0x00FF","capabilities":{"infinibandGUID":true}},{"type":"ib-sriov","pkey":"0x6"}]}"#,
    );
    assert_eq!((spec.pkey_text.as_str(), spec.runtime_config_guid), ("0x00FF", true));
}

#[test]
fn guid_only_networks() {
    assert_eq!(ib(r#"{"type":"ib-sriov"}"#).pkey, None);
    assert_eq!(
        ib(r#"{"type":"ib-sriov","pkey":""}"#),
        IbSriovSpec {
            pkey: None,
            pkey_text: String::new(),
            runtime_config_guid: false,
            options: NadOptions::default()
        }
    );
}

#[test]
fn other_networks() {
    for config in [
        r#"{"type":"macvlan","master":"eth0"}"#,
        r#"{"type":"ib-sriov-cni"}"#,
        r#"{"plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
        r#"{"name":"x"}"#,
    ] {
        assert_eq!(classify(Some(config)), Ok(NadKind::Other), "{config}");
    }
    assert_eq!(classify(None), Ok(NadKind::Other));
    assert_eq!(classify(Some("  ")), Ok(NadKind::Other));
}

#[test]
fn errors_name_the_field_and_value() {
    assert!(matches!(classify(Some("{not json")), Err(NadError::Json { .. })));
    assert_eq!(classify(Some("[1]")), Err(NadError::NotAnObject { found: "a list" }));
    let e = classify(Some(r#"{"type":"ib-sriov","pkey":5}"#)).unwrap_err();
    assert_eq!(e.to_string(), "spec.config field \"pkey\" must be a string such as \"0x5\"");
    let e = classify(Some(r#"{"plugins":[{"type":"ib-sriov","pkey":"1234"}]}"#)).unwrap_err();
    assert!(e.to_string().contains("\"1234\""), "{e}");
    for (pkey, word) in [("0x0", "0x0000"), ("0x7fff", "management"), ("0x8000", "15 bits")] {
        let e = classify(Some(&format!(r#"{{"type":"ib-sriov","pkey":"{pkey}"}}"#))).unwrap_err();
        assert!(e.to_string().contains(word) && e.to_string().contains(pkey), "{e}");
    }
    assert_eq!(
        classify(Some(r#"{"plugins":{"type":"ib-sriov"}}"#)),
        Err(NadError::FieldType { field: "plugins".into(), expected: "a list" })
    );
    assert_eq!(
        classify(Some(r#"{"plugins":[{"type":"x"},"ib-sriov"]}"#)),
        Err(NadError::FieldType { field: "plugins[1]".into(), expected: "an object" })
    );
    assert_eq!(
        classify(Some(r#"{"type":"ib-sriov","capabilities":{"infinibandGUID":"yes"}}"#)),
        Err(NadError::FieldType { field: "capabilities.infinibandGUID".into(), expected: "a boolean" })
    );
    assert!(classify(Some(r#"{"type":7}"#)).is_err());
}

#[test]
fn pkey_text_has_a_length_limit() {
    let at_limit = format!("0x{}5", "0".repeat(MAX_PKEY_BYTES - 3));
    assert_eq!(at_limit.len(), MAX_PKEY_BYTES);
    assert_eq!(ib(&format!(r#"{{"type":"ib-sriov","pkey":"{at_limit}"}}"#)).pkey, Some(PKey::parse("0x5").unwrap()));
    for (text, field) in [(format!("0{at_limit}"), "pkey"), (format!("0x{}", "0".repeat(200 * 1024)), "pkey")] {
        let config = format!(r#"{{"type":"ib-sriov","pkey":"{text}"}}"#);
        assert_eq!(
            classify(Some(&config)),
            Err(NadError::PKeyTooLong { field: field.into(), bytes: text.len(), limit: MAX_PKEY_BYTES })
        );
        let config = format!(r#"{{"plugins":[{{"type":"ib-sriov","pkey":"{text}"}}]}}"#);
        let e = classify(Some(&config)).unwrap_err();
        assert!(matches!(&e, NadError::PKeyTooLong { field, .. } if field == "plugins[0].pkey"), "{e}");
        assert!(e.to_string().contains(&format!("{} bytes", text.len())) && e.to_string().len() < 200, "{e}");
    }
}

/// Field names come from the config; a 200 KB one is shortened, in the error value and its message.
#[test]
fn hostile_field_names_are_shortened() {
    let key = "k".repeat(200 * 1024);
    let config = format!(r#"{{"type":"ib-sriov","capabilities":{{"{key}":1}}}}"#);
    let e = classify(Some(&config)).unwrap_err();
    assert!(matches!(&e, NadError::FieldType { field, .. } if field.ends_with("…(204800 bytes)")), "{e}");
    assert!(e.to_string().len() < 300, "{}", e.to_string().len());
}

#[test]
fn deep_nesting_is_a_clean_error() {
    let depth = 100_000;
    for config in [
        "[".repeat(depth),
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        format!(r#"{{"type":"ib-sriov","ipam":{}{}}}"#, "[".repeat(depth), "]".repeat(depth)),
        format!(r#"{{"plugins":[{}1{}]}}"#, r#"{"k":"#.repeat(depth / 5), "}".repeat(depth / 5)),
    ] {
        let e = classify(Some(&config)).unwrap_err();
        assert!(matches!(&e, NadError::Json { reason } if reason.contains("recursion limit")), "{e}");
    }
}

/// NAD configs have no size limit of their own (the API server's object limit applies); a megabyte
/// one is read in one linear pass and means what it says.
#[test]
fn megabyte_config_is_read() {
    let filler = "f".repeat(1 << 20);
    let config =
        format!(r#"{{"type":"ib-sriov","note":"{filler}","pkey":"0x7","capabilities":{{"infinibandGUID":true}}}}"#);
    let spec = ib(&config);
    assert_eq!((spec.pkey_text.as_str(), spec.runtime_config_guid), ("0x7", true));
    let plugins = vec![r#"{"type":"tuning"}"#; 100_000].join(",");
    let config = format!(r#"{{"plugins":[{plugins},{{"type":"ib-sriov","pkey":"0x8"}}]}}"#);
    assert_eq!(ib(&config).pkey_text, "0x8");
}

#[test]
fn nul_bytes_and_bad_escapes() {
    for config in [
        "{\"type\":\"ib-sriov\0\"}",
        r#"{"type":"\ud800"}"#,
        r#"{"type":"ib-sriov","pkey":"\uZZZZ"}"#,
        "{\"type\":\"ib-sriov\"}\0",
    ] {
        assert!(matches!(classify(Some(config)), Err(NadError::Json { .. })), "{config:?}");
    }
    // An escaped NUL is a character: the type is not ib-sriov, the pkey not a pkey.
    assert_eq!(classify(Some(r#"{"type":"ib-sriov\u0000"}"#)), Ok(NadKind::Other));
    let e = classify(Some(r#"{"type":"ib-sriov","pkey":"0x5\u0000"}"#)).unwrap_err();
    assert!(e.to_string().contains(r#""0x5\0""#), "{e}");
}

fn options(extra: &str) -> Result<NadOptions, NadError> {
    classify(Some(&format!(r#"{{"type":"ib-sriov","pkey":"0x5"{extra}}}"#))).map(|kind| match kind {
        NadKind::InfiniBand(spec) => spec.options,
        NadKind::Other => panic!("{extra}: not InfiniBand"),
    })
}

#[test]
fn a_nad_without_options_keeps_todays_behaviour() {
    let spec = ib(r#"{"type":"ib-sriov","pkey":"0x5"}"#);
    assert_eq!(spec.options, NadOptions::default());
    let resolved = spec.partition_options(&PartitionOptions::default());
    assert_eq!(resolved, PartitionOptions { membership: Membership::Full, index0: true, ip_over_ib: true, qos: None });
}

#[test]
fn every_option_is_read_in_single_configs_and_conflists() {
    let extra = r#","membership":"limited","ip_over_ib":false,"index0":false,"mtu_limit":4,"service_level":15,"rate_limit":2.5"#;
    let want = NadOptions {
        membership: Some(Membership::Limited),
        ip_over_ib: Some(false),
        index0: Some(false),
        qos: Some(Qos {
            mtu_limit: MtuLimit::Mtu4K,
            service_level: 15,
            rate_limit: RateLimit::from_gbps(2.5).unwrap(),
        }),
        allocate_pkey: false,
    };
    assert_eq!(options(extra), Ok(want));
    let conflist = format!(r#"{{"plugins":[{{"type":"tuning","membership":"bogus"}},{{"type":"ib-sriov"{extra}}}]}}"#);
    assert_eq!(ib(&conflist).options, want);
    // Nulls are absent values, as for pkey.
    assert_eq!(options(r#","membership":null,"index0":null,"rate_limit":null"#), Ok(NadOptions::default()));
}

#[test]
fn stated_options_override_the_cluster_defaults_and_the_rest_come_from_them() {
    let defaults = PartitionOptions { membership: Membership::Full, index0: false, ip_over_ib: false, qos: None };
    let spec = ib(r#"{"type":"ib-sriov","pkey":"0x5","ip_over_ib":true,"service_level":3}"#);
    let got = spec.partition_options(&defaults);
    assert_eq!((got.membership, got.index0, got.ip_over_ib), (Membership::Full, false, true));
    // One QoS key given: the others are UFM's defaults for a new partition.
    assert_eq!(got.qos, Some(Qos { service_level: 3, ..Qos::default() }));
}

#[test]
fn allocated_pkey_is_asked_without_a_pkey() {
    let spec = ib(r#"{"type":"ib-sriov","allocate_pkey":true}"#);
    assert!(spec.options.allocate_pkey && spec.pkey.is_none());
    assert!(!ib(r#"{"type":"ib-sriov","allocate_pkey":false}"#).options.allocate_pkey);
    let e = classify(Some(r#"{"plugins":[{"type":"ib-sriov","pkey":"0x5","allocate_pkey":true}]}"#)).unwrap_err();
    assert_eq!(e, NadError::AllocateWithPKey { field: "plugins[0].allocate_pkey".into(), pkey: "0x5".into() });
    assert!(e.to_string().contains("\"0x5\""), "{e}");
}

#[test]
fn bad_option_values_name_the_field_and_the_value() {
    for (extra, field, value) in [
        (r#","membership":"admin""#, "membership", "\"admin\""),
        (r#","membership":"Full""#, "membership", "\"Full\""),
        (r#","membership":"full ""#, "membership", "\"full \""),
        (r#","membership":"both""#, "membership", "\"both\""),
        (r#","membership":"""#, "membership", "\"\""),
        (r#","mtu_limit":3"#, "mtu_limit", "3"),
        (r#","mtu_limit":2048"#, "mtu_limit", "2048"),
        (r#","mtu_limit":-2"#, "mtu_limit", "-2"),
        (r#","mtu_limit":2.5"#, "mtu_limit", "2.5"),
        (r#","service_level":16"#, "service_level", "16"),
        (r#","service_level":-1"#, "service_level", "-1"),
        (r#","service_level":1.5"#, "service_level", "1.5"),
        (r#","service_level":18446744073709551616"#, "service_level", "1.8446744073709552e+19"),
        (r#","rate_limit":7"#, "rate_limit", "7"),
        (r#","rate_limit":0"#, "rate_limit", "0"),
        (r#","rate_limit":-2.5"#, "rate_limit", "-2.5"),
        (r#","rate_limit":1e300"#, "rate_limit", "1e+300"),
    ] {
        let e = options(extra).unwrap_err();
        assert!(
            matches!(&e, NadError::OptionValue { field: f, value: v, .. } if f == field && v == value),
            "{extra}: {e:?}"
        );
        let text = e.to_string();
        assert!(text.contains(&format!("{field:?}")) && text.contains(value), "{text}");
    }
    let e = options(r#","rate_limit":7"#).unwrap_err().to_string();
    assert!(e.contains("2.5, 5, 10") && e.contains("300"), "{e}");
    let e = options(r#","membership":"admin""#).unwrap_err().to_string();
    assert_eq!(e, "spec.config field \"membership\" is \"admin\": must be \"full\" or \"limited\"");
}

#[test]
fn wrong_types_are_refused_naming_the_field() {
    for (extra, field) in [
        (r#","membership":1"#, "membership"),
        (r#","membership":["full"]"#, "membership"),
        (r#","membership":true"#, "membership"),
        (r#","ip_over_ib":"true""#, "ip_over_ib"),
        (r#","ip_over_ib":1"#, "ip_over_ib"),
        (r#","index0":{}"#, "index0"),
        (r#","allocate_pkey":"yes""#, "allocate_pkey"),
        (r#","mtu_limit":"4""#, "mtu_limit"),
        (r#","service_level":[1]"#, "service_level"),
        (r#","rate_limit":"200""#, "rate_limit"),
        (r#","rate_limit":false"#, "rate_limit"),
    ] {
        let e = options(extra).unwrap_err();
        assert!(matches!(&e, NadError::FieldType { field: f, .. } if f == field), "{extra}: {e:?}");
    }
    let e = classify(Some(r#"{"plugins":[{"type":"ib-sriov","index0":"no"}]}"#)).unwrap_err();
    assert_eq!(e, NadError::FieldType { field: "plugins[0].index0".into(), expected: "true or false" });
}

/// A megabyte value is refused with a short message that still shows its start and its size.
#[test]
fn megabyte_option_values_give_short_errors() {
    let big = "l".repeat(1 << 20);
    let e = options(&format!(r#","membership":"{big}""#)).unwrap_err();
    let text = e.to_string();
    assert!(text.len() < 300 && text.contains(&format!("({} bytes)", 1 << 20)), "{}", &text[..text.len().min(400)]);
    // A megabyte of digits: a number JSON can hold only as a float, refused as out of range.
    let digits = "9".repeat(1 << 20);
    match options(&format!(r#","service_level":{digits}"#)) {
        Err(NadError::OptionValue { value, .. }) => assert!(value.len() < 200, "{}", value.len()),
        Err(NadError::Json { reason }) => assert!(reason.len() < 300, "{reason}"),
        other => panic!("{other:?}"),
    }
    let e = options(&format!(r#","rate_limit":0.{digits}"#)).unwrap_err().to_string();
    assert!(e.len() < 400, "{}", e.len());
}

/// A key written twice counts with its last value, as Go's encoding/json (and so ib-sriov-cni)
/// reads it: ib-kubernetes and the CNI never disagree on what a config says.
#[test]
fn duplicate_keys_take_the_last_value_like_go() {
    let o = options(r#","membership":"full","membership":"limited","index0":true,"index0":false"#).unwrap();
    assert_eq!((o.membership, o.index0), (Some(Membership::Limited), Some(false)));
    // A bad value hidden behind a good one, or the other way round, is judged on the last one.
    assert!(options(r#","membership":"evil","membership":"full""#).is_ok());
    assert!(options(r#","membership":"full","membership":"evil""#).is_err());
    let spec = ib(r#"{"type":"ib-sriov","pkey":"0x5","pkey":"0x6"}"#);
    assert_eq!(spec.pkey_text, "0x6");
}

proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,64}") {
        let _ = classify(Some(&s));
        let _ = classify(Some(&format!(r#"{{"type":"ib-sriov","pkey":{s:?}}}"#)));
        let _ = classify(Some(&format!(r#"{{"type":"ib-sriov","membership":{s:?},"rate_limit":{s}}}"#)));
    }
}
