use super::*;

fn pkey(v: u32) -> PKey {
    PKey::new(v).unwrap()
}

fn guids(vs: &[u64]) -> Vec<Guid> {
    vs.iter().copied().map(Guid::from_u64).collect()
}

#[test]
fn add_body_is_the_go_plugins() {
    assert_eq!(
        add_body(pkey(5), &guids(&[0x0200000000000000, 0x0200000000000001])),
        r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000000","0200000000000001"]}"#
    );
    assert_eq!(
        add_body(pkey(0xa30), &guids(&[0x02000ff000ff0009])),
        r#"{"pkey": "0x0A30", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["02000ff000ff0009"]}"#
    );
}

#[test]
fn add_body_carries_the_options_and_qos_its_own_body() {
    use ib_model::partition::{Membership, MtuLimit, RateLimit};
    let options = PartitionOptions { membership: Membership::Limited, index0: false, ip_over_ib: false, qos: None };
    assert_eq!(
        add_body_with(pkey(5), &guids(&[1]), &options),
        r#"{"pkey": "0x0005", "index0": false, "ip_over_ib": false, "membership": "limited", "guids": ["0000000000000001"]}"#
    );
    assert_eq!(add_body_with(pkey(5), &guids(&[1]), &PartitionOptions::default()), add_body(pkey(5), &guids(&[1])));
    let qos = Qos { mtu_limit: MtuLimit::Mtu4K, service_level: 7, rate_limit: RateLimit::from_gbps(2.5).unwrap() };
    let body = qos_body(pkey(0x7ffe), &qos);
    assert_eq!(body, r#"{"pkey": "0x7FFE", "mtu_limit": 4, "service_level": 7, "rate_limit": 2.5}"#);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rate_limit"].as_f64(), Some(2.5));
}

#[test]
fn last_updated_is_kept_as_written_and_refused_when_malformed() {
    assert_eq!(parse_last_updated(br#"{"last_updated": null}"#), Ok(None));
    assert_eq!(parse_last_updated(b"{}"), Ok(None));
    assert_eq!(
        parse_last_updated(br#"{"last_updated": "Thu Sep  3 11:42:39 UTC 2020"}"#),
        Ok(Some("Thu Sep  3 11:42:39 UTC 2020".to_owned()))
    );
    assert!(matches!(parse_last_updated(br#"{"last_updated": 5}"#), Err(WireError::LastUpdated(_))));
    assert!(parse_last_updated(b"<html>").is_err());
    let huge = format!(r#"{{"last_updated": "{}"}}"#, "9".repeat(1 << 20));
    assert!(parse_last_updated(huge.as_bytes()).unwrap().unwrap().len() < 200);
}

#[test]
fn remove_body_is_the_go_plugins() {
    assert_eq!(
        remove_body(pkey(0x7ffe), &guids(&[1, u64::MAX])),
        r#"{"pkey": "0x7FFE", "guids": ["0000000000000001","ffffffffffffffff"]}"#
    );
}

#[test]
fn bodies_are_valid_json() {
    let body = add_body(pkey(5), &guids(&[1, 2, 3]));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["guids"].as_array().unwrap().len(), 3);
}

#[test]
fn listing_keeps_pkey_names_and_skips_empty_partitions() {
    let body = br#"{
        "0x7fff": {"partition": "management", "ip_over_ib": true, "membership": "full", "guids": []},
        "0x31a": {"partition": "api_pkey_0x31a", "guids": [
            {"guid": "946dae03005985c8", "membership": "full", "index0": true},
            {"guid": "02000FF000FF0009"}]},
        "0x2fb": {"partition": "api_pkey_0x2fb", "qos_conf": {}},
        "0x10": {"guids": null}
    }"#;
    assert_eq!(
        parse_listing(body).unwrap(),
        vec![
            ("0x31a".to_owned(), Guid::from_u64(0x946dae03005985c8)),
            ("0x31a".to_owned(), Guid::from_u64(0x02000ff000ff0009)),
        ]
    );
    assert_eq!(parse_listing(b"{}").unwrap(), vec![]);
}

#[test]
fn malformed_listings_name_the_culprit() {
    let cases: [(&[u8], &[&str]); 6] = [
        (br#"{"0x5": {"guids": [{"guid": "zz"}]}}"#, &["0x5", "\"zz\""]),
        (br#"{"0x5": 3}"#, &["0x5", "expected an object", "3"]),
        (br#"{"0x5": {"guids": "a"}}"#, &["0x5", "must be a list"]),
        (br#"{"0x5": {"guids": [{"id": 1}]}}"#, &["0x5", "entry 0", "{\"id\":1}"]),
        (br#"[1, 2]"#, &["not a JSON object"]),
        (b"<html>", &["not a JSON object"]),
    ];
    for (body, words) in cases {
        let err = parse_listing(body).unwrap_err().to_string();
        for word in words {
            assert!(err.contains(word), "{err} lacks {word}");
        }
    }
}

#[test]
fn one_partition_reads_its_guids_and_tells_a_missing_one() {
    assert_eq!(parse_partition(b"{}").unwrap(), None);
    let body = br#"{"partition_name":"api_pkey_0x5","ip_over_ib":true,"guids":[{"guid":"0002c903000e0b72","membership":"limited","index0":false}]}"#;
    assert_eq!(parse_partition(body).unwrap(), Some(vec![Guid::parse_ufm("0002c903000e0b72").unwrap()]));
    assert_eq!(parse_partition(br#"{"partition_name":"x","guids":null}"#).unwrap(), Some(vec![]));
    let e = parse_partition(br#"{"pkey":"0x5","guids":[{"guid":"zz"}]}"#).unwrap_err();
    assert!(e.to_string().contains("\"0x5\"") && e.to_string().contains("zz"), "{e}");
    assert!(parse_partition(b"[]").is_err());
    assert!(parse_partition(br#"{"guids":"all"}"#).is_err());
}

#[test]
fn a_named_add_is_the_plain_add_with_the_name_last() {
    let options = PartitionOptions::default();
    assert_eq!(add_body_named(pkey(5), &guids(&[1]), &options, None), add_body_with(pkey(5), &guids(&[1]), &options));
    let body = add_body_named(pkey(5), &guids(&[1]), &options, Some("tenant_a\"x"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["partition_name"], "tenant_a\"x");
    assert_eq!(v["pkey"], "0x0005");
    assert!(
        body.starts_with(&add_body_with(pkey(5), &guids(&[1]), &options)[..body.find(", \"partition_name\"").unwrap()])
    );
}

/// UFM's listing of a large fabric is read straight into GUIDs, partition by partition, each
/// partition's name once; the same as the JSON tree reads it.
#[test]
fn a_large_listing_is_read_partition_by_partition() {
    let mut body = String::from("{");
    for p in 0..4u64 {
        if p > 0 {
            body.push_str(", ");
        }
        body.push_str(&format!(
            r#""0x{:x}": {{"partition": "api_pkey_0x{:x}", "ip_over_ib": true, "guids": ["#,
            p + 1,
            p + 1
        ));
        for i in 0..10_000u64 {
            if i > 0 {
                body.push_str(", ");
            }
            let guid = Guid::from_u64((p << 32) | i).to_ufm();
            body.push_str(&format!(r#"{{"guid": "{guid}", "membership": "full", "index0": true}}"#));
        }
        body.push_str("]}");
    }
    body.push('}');
    let listing = parse_partitions(body.as_bytes()).unwrap();
    let partitions: Vec<(&str, usize)> = listing.partitions().map(|(n, g)| (n, g.len())).collect();
    assert_eq!(partitions, vec![("0x1", 10_000), ("0x2", 10_000), ("0x3", 10_000), ("0x4", 10_000)]);
    assert_eq!(listing.partitions().nth(2).unwrap().1[7], Guid::from_u64((2 << 32) | 7));
    assert_eq!(typed::listing(body.as_bytes()).unwrap(), value_listing(body.as_bytes()).unwrap());
}

/// What the direct read does not take is read as a tree: the error names the culprit as before, and a
/// valid body of an unusual shape (a key given twice) is read as the tree reads it.
#[test]
fn unusual_listings_are_read_as_the_tree_reads_them() {
    let twice = br#"{"0x5": {"guids": [{"guid": "0000000000000001"}]}, "0x6": {}, "0x5": {"guids": [{"guid": "0000000000000002", "guid": "0000000000000003"}]}}"#;
    assert!(typed::listing(twice).is_err(), "the direct read takes a member with two GUIDs");
    assert_eq!(parse_listing(twice).unwrap(), vec![("0x5".to_owned(), Guid::from_u64(3))]);
    // A partition or a member given as a list is not an object, whatever the list holds.
    assert!(matches!(parse_listing(br#"{"0x5": [null]}"#), Err(WireError::PartitionNotAnObject { .. })));
    assert!(matches!(
        parse_listing(br#"{"0x5": {"guids": [["0000000000000001"]]}}"#),
        Err(WireError::MissingGuid { .. })
    ));
    assert!(matches!(parse_partition(br#"[{"guids": []}]"#), Err(WireError::NotAnObject(_))));
    assert_eq!(parse_partition(br#"{"pkey": "0x5"}"#).unwrap(), Some(vec![]));
}

/// Fields the listing does not read are skipped without being kept, however deeply nested: no stack is
/// used per level, and the membership around them is still read.
#[test]
fn deeply_nested_fields_that_are_not_read_are_skipped() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"{{"0x5": {{"qos_conf": {deep}, "guids": [{{"guid": "0000000000000001", "x": {deep}}}]}}}}"#);
    assert_eq!(parse_listing(body.as_bytes()).unwrap(), vec![("0x5".to_owned(), Guid::from_u64(1))]);
    // Nested where a partition is expected, it is refused, not followed.
    let body = format!(r#"{{"0x5": {deep}}}"#);
    assert!(parse_listing(body.as_bytes()).is_err());
}
