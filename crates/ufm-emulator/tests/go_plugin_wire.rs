//! The Go UFM plugin's exact requests (paths and bodies as `crates/ib-sm/src/ufm/wire.rs` writes them) change the fabric as UFM
//! does, and the list answer parses the way the Go plugin parses it.

mod common;

use std::collections::BTreeMap;

use common::{client, go_request, start};
use reqwest::Method;
use serde_json::Value;
use ufm_emulator::{Endpoint, Guid, Member, Membership, UfmConfig};

/// The Go plugin's `ListGuidsInUse`: the top level must be an object of objects; entries
/// without `guids` contribute nothing; every GUID gets `:` after each two characters (case
/// kept) and maps to the PKey key exactly as written.
fn go_list_guids_in_use(body: &str) -> Result<BTreeMap<String, String>, String> {
    let top: serde_json::Map<String, Value> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut in_use = BTreeMap::new();
    for (pkey, entry) in top {
        let entry = entry.as_object().ok_or(format!("{pkey} is not an object"))?;
        let Some(guids) = entry.get("guids") else {
            continue;
        };
        let guids = guids.as_array().ok_or("guids is not a list")?;
        for item in guids {
            let guid = item["guid"].as_str().ok_or("guid is not a string")?;
            let with_colons = guid
                .as_bytes()
                .chunks(2)
                .map(|pair| String::from_utf8_lossy(pair).into_owned())
                .collect::<Vec<_>>()
                .join(":");
            in_use.insert(with_colons, pkey.clone());
        }
    }
    Ok(in_use)
}

/// What the fabric holds, in the Go plugin's terms.
fn expected_from_state(state: &BTreeMap<Guid, Vec<u16>>) -> BTreeMap<String, String> {
    let mut expected = BTreeMap::new();
    for (guid, pkeys) in state {
        let text = guid.to_string();
        let with_colons = text
            .as_bytes()
            .chunks(2)
            .map(|pair| String::from_utf8_lossy(pair).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        for pkey in pkeys {
            expected.insert(with_colons.clone(), format!("{pkey:#x}"));
        }
    }
    expected
}

#[tokio::test]
async fn go_plugin_requests_round_trip() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);

    let (status, body) = go_request(&c, &ufm, Method::GET, "/ufmRest/app/ufm_version", None).await;
    assert_eq!(status, 200, "{body}");
    let version: Value = serde_json::from_str(&body).unwrap();
    assert!(version["ufm_release_version"].is_string());

    let add_5 = r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000000"]}"#;
    let add_a30 = r#"{"pkey": "0x0A30", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["02000ff000ff0009","0200000000000001"]}"#;
    for add in [add_5, add_a30] {
        let (status, body) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(add)).await;
        assert_eq!(status, 200, "{body}");
    }

    let full_index0 = Member { membership: Membership::Full, index0: true, ip_over_ib: true };
    assert_eq!(handle.members(5), BTreeMap::from([(Guid::from(0x0200000000000000), full_index0)]));
    assert_eq!(handle.members(0xa30).len(), 2);
    assert_eq!(handle.partition(0xa30).unwrap().name, "api_pkey_0xa30");

    let (status, list) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/?guids_data=true", None).await;
    assert_eq!(status, 200, "{list}");
    let parsed = go_list_guids_in_use(&list).unwrap();
    assert_eq!(
        parsed,
        BTreeMap::from([
            ("02:00:00:00:00:00:00:00".to_owned(), "0x5".to_owned()),
            ("02:00:00:00:00:00:00:01".to_owned(), "0xa30".to_owned()),
            ("02:00:0f:f0:00:ff:00:09".to_owned(), "0xa30".to_owned()),
        ])
    );
    assert_eq!(parsed, expected_from_state(&handle.guid_pkeys()));

    let remove = r#"{"pkey": "0x0005", "guids": ["0200000000000000"]}"#;
    let (status, body) =
        go_request(&c, &ufm, Method::POST, "/ufmRest/actions/remove_guids_from_pkey", Some(remove)).await;
    assert_eq!(status, 200, "{body}");
    assert!(handle.partition(5).is_none(), "last GUID gone, partition deleted");

    let (_, list) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/?guids_data=true", None).await;
    let parsed = go_list_guids_in_use(&list).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed, expected_from_state(&handle.guid_pkeys()));

    let adds = handle.requests_to(Endpoint::AddGuids);
    assert_eq!(adds.len(), 2);
    assert_eq!(adds[0].body, add_5, "body recorded byte for byte");
    assert_eq!(adds[0].content_type.as_deref(), Some("application/json; charset=utf-8"));
    assert_eq!(handle.count(Endpoint::RemoveGuidsAction), 1);
    assert_eq!(handle.count(Endpoint::ListPkeys), 2);
    assert_eq!(handle.count(Endpoint::Version), 1);
    ufm.shutdown().await;
}

#[tokio::test]
async fn fork_limited_add_and_upper_case_guids_are_accepted() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let limited = r#"{"pkey": "0x0006", "guids": ["02000FF000FF000A"], "membership": "limited", "index0": false}"#;
    let (status, body) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys/", Some(limited)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        handle.members(6),
        BTreeMap::from([(
            Guid::from(0x02000ff000ff000a),
            Member { membership: Membership::Limited, index0: false, ip_over_ib: true }
        )])
    );
    let (status, one) =
        go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/0x0006?guids_data=true", None).await;
    assert_eq!(status, 200);
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(
        one,
        serde_json::json!({
            "partition": "api_pkey_0x6",
            "ip_over_ib": true,
            "guids": [{"guid": "02000ff000ff000a", "membership": "limited", "index0": false}],
        })
    );
    ufm.shutdown().await;
}
