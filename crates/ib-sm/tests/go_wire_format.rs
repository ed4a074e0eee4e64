//! The requests reaching UFM are byte for byte the Go plugin's: paths, bodies, and the
//! JSON content type on every method.

mod common;

use common::{JSON, client, guid, pkey, start, within};
use ib_sm::SubnetManager;
use ufm_emulator::{Endpoint, UfmConfig};

const ADD: &str = r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000000","0200000000000001"]}"#;
const REMOVE: &str = r#"{"pkey": "0x0005", "guids": ["0200000000000001"]}"#;

#[tokio::test]
async fn every_call_sends_the_go_plugins_bytes() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let sm = client(&ufm);
    let two = [guid(0x0200000000000000), guid(0x0200000000000001)];

    within(sm.validate()).await.unwrap();
    within(sm.add_guids(pkey(5), &two)).await.unwrap();
    within(sm.remove_guids(pkey(5), &two[1..])).await.unwrap();
    within(sm.list_guids()).await.unwrap();

    let requests = handle.requests();
    let seen: Vec<(&str, &str, Option<&str>, &str)> =
        requests.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_deref(), r.body.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("GET", "/ufmRest/app/ufm_version", None, ""),
            ("POST", "/ufmRest/resources/pkeys", None, ADD),
            ("POST", "/ufmRest/actions/remove_guids_from_pkey", None, REMOVE),
            ("GET", "/ufmRest/resources/pkeys/", Some("guids_data=true"), ""),
        ]
    );
    for r in &requests {
        assert_eq!(r.content_type.as_deref(), Some(JSON), "{} {}", r.method, r.path);
        assert_eq!(r.status, 200, "{} {}: {}", r.method, r.path, r.body);
    }
    assert_eq!(handle.count(Endpoint::RemoveGuidsAction), 1);
    ufm.shutdown().await;
}

#[tokio::test]
async fn empty_guid_lists_send_nothing() {
    let ufm = start(UfmConfig::http()).await;
    let sm = client(&ufm);
    within(sm.add_guids(pkey(5), &[])).await.unwrap();
    within(sm.remove_guids(pkey(5), &[])).await.unwrap();
    assert!(ufm.handle().requests().is_empty());
    ufm.shutdown().await;
}

#[tokio::test]
async fn https_sends_the_same_bytes() {
    let ufm = start(UfmConfig::https()).await;
    let sm = client(&ufm);
    within(sm.add_guids(pkey(5), &[guid(0x0200000000000000), guid(0x0200000000000001)])).await.unwrap();
    let record = &ufm.handle().requests_to(Endpoint::AddGuids)[0];
    assert_eq!(record.body, ADD);
    assert_eq!(record.content_type.as_deref(), Some(JSON));
    ufm.shutdown().await;
}
