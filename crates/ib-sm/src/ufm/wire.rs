//! UFM's JSON, byte for byte as the Go plugin wrote it (tests/go_wire_format.rs pins it), and the parse of its partition
//! listing.
//!
//! Request bodies are built by string formatting, not serde, because the Go plugin's exact spacing (a
//! space after each `:` and `,` of the outer object, none between array items) is part of the contract
//! the emulator and any recorded traffic check.

use ib_model::partition::{PartitionOptions, Qos};
use ib_model::{Guid, PKey};
use serde_json::Value;

/// Why a partition listing could not be read. Names the partition key and the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a JSON object of partitions: {0}")]
    NotAnObject(String),
    #[error("partition {pkey:?}: expected an object, got {got}")]
    PartitionNotAnObject { pkey: String, got: String },
    #[error("partition {pkey:?}: \"guids\" must be a list, got {got}")]
    GuidsNotAList { pkey: String, got: String },
    #[error("partition {pkey:?}: guid entry {index} has no \"guid\" string: {got}")]
    MissingGuid { pkey: String, index: usize, got: String },
    #[error("partition {pkey:?}: bad GUID {value:?}: expected 16 hex digits")]
    BadGuid { pkey: String, value: String },
    #[error("\"last_updated\" must be a string or null, got {0}")]
    LastUpdated(String),
}

/// The add body: full members, in index 0, with IPoIB, as the Go plugin always asked.
pub fn add_body(pkey: PKey, guids: &[Guid]) -> String {
    add_body_with(pkey, guids, &PartitionOptions::default())
}

/// The add body with `options`' membership, `index0` and `ip_over_ib`, in the Go plugin's layout: the
/// default options give its bytes exactly. QoS is not part of it: UFM sets QoS through `qos_conf`.
pub fn add_body_with(pkey: PKey, guids: &[Guid], options: &PartitionOptions) -> String {
    format!(
        r#"{{"pkey": "{pkey}", "index0": {}, "ip_over_ib": {}, "membership": "{}", "guids": [{}]}}"#,
        options.index0,
        options.ip_over_ib,
        options.membership.as_str(),
        guid_list(guids)
    )
}

/// `PUT /resources/pkeys/qos_conf`: `{"pkey": "0x0005", "mtu_limit": 4, "service_level": 0, "rate_limit": 2.5}`.
pub fn qos_body(pkey: PKey, qos: &Qos) -> String {
    format!(
        r#"{{"pkey": "{pkey}", "mtu_limit": {}, "service_level": {}, "rate_limit": {}}}"#,
        qos.mtu_limit.ufm(),
        qos.service_level,
        qos.rate_limit
    )
}

/// Reads `GET /resources/pkeys/last_updated`: `{"last_updated": "<time>" | null}`. The time is kept as
/// UFM wrote it, cut to a sane length; it is only ever compared with an earlier answer.
pub fn parse_last_updated(body: &[u8]) -> Result<Option<String>, WireError> {
    let top: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| WireError::NotAnObject(e.to_string()))?;
    match top.get("last_updated") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(crate::manager::excerpt(text, VALUE_EXCERPT))),
        Some(other) => Err(WireError::LastUpdated(brief(other))),
    }
}

pub fn remove_body(pkey: PKey, guids: &[Guid]) -> String {
    format!(r#"{{"pkey": "{pkey}", "guids": [{}]}}"#, guid_list(guids))
}

/// `"g1","g2"`: Go's `%q` of each UFM-form GUID joined by a bare comma.
fn guid_list(guids: &[Guid]) -> String {
    let mut out = String::with_capacity(guids.len() * 19);
    for (i, guid) in guids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(&guid.to_ufm());
        out.push('"');
    }
    out
}

/// Reads `GET /resources/pkeys/?guids_data=true`: `{ "<pkey>": { "guids": [ {"guid": "…"}, … ], … } }`.
/// A partition without `guids`, or with `null` or `[]`, contributes nothing; anything else malformed fails
/// the whole listing, since a partial listing would make the controller believe GUIDs are free.
pub fn parse_listing(body: &[u8]) -> Result<Vec<(String, Guid)>, WireError> {
    let top: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| WireError::NotAnObject(e.to_string()))?;
    let mut out = Vec::new();
    for (pkey, entry) in top {
        let Value::Object(entry) = entry else {
            return Err(WireError::PartitionNotAnObject { pkey, got: brief(&entry) });
        };
        let guids = match entry.get("guids") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(guids)) => guids,
            Some(other) => return Err(WireError::GuidsNotAList { pkey, got: brief(other) }),
        };
        for (index, item) in guids.iter().enumerate() {
            let Some(text) = item.get("guid").and_then(Value::as_str) else {
                return Err(WireError::MissingGuid { pkey, index, got: brief(item) });
            };
            let guid =
                Guid::parse_ufm(text).map_err(|_| WireError::BadGuid { pkey: pkey.clone(), value: text.to_owned() })?;
            out.push((pkey.clone(), guid));
        }
    }
    Ok(out)
}

/// Longest rendering of an unexpected value kept in an error: enough to recognise it.
const VALUE_EXCERPT: usize = 80;

fn brief(value: &Value) -> String {
    crate::manager::excerpt(&value.to_string(), VALUE_EXCERPT)
}

#[cfg(test)]
mod tests {
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
}

/// Fuzzing of the listing parser with arbitrary bytes and arbitrary JSON; the case count follows
/// `PROPTEST_CASES` (default 2,000), so `PROPTEST_CASES=1000000 cargo test --release -p ib-sm --lib
/// fuzz` is the long run.
#[cfg(test)]
mod fuzz {
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
    }
}
