//! The "reject GUIDs the fabric has not seen" switch: off by default (UFM accepts
//! undiscovered GUIDs); when on, an add naming any unseen GUID fails whole with 404.

mod common;

use common::{client, go_request, start};
use reqwest::Method;
use serde_json::Value;
use ufm_emulator::{Guid, UfmConfig};

const ADD_TWO: &str = r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000001","0200000000000002"]}"#;

#[tokio::test]
async fn unseen_guids_are_accepted_by_default() {
    let ufm = start(UfmConfig::http()).await;
    let c = client(&ufm);
    let (s, _) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(ADD_TWO)).await;
    assert_eq!(s, 200);
    assert_eq!(ufm.handle().members(5).len(), 2);
    ufm.shutdown().await;
}

#[tokio::test]
async fn unseen_guids_fail_the_whole_request_when_switched_on() {
    let ufm = start(UfmConfig::http().with_reject_unseen_guids(true)).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    handle.mark_seen([Guid::from(0x0200000000000001)]);
    assert!(handle.with_fabric(|f| f.rejects_unseen() && f.is_seen(Guid::from(0x0200000000000001))));

    let (s, body) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(ADD_TWO)).await;
    assert_eq!(s, 404, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(error["error"].as_str().unwrap().contains("0200000000000002"));
    assert!(handle.partition(5).is_none(), "nothing of the request applied");

    handle.mark_seen([Guid::from(0x0200000000000002)]);
    let (s, _) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(ADD_TWO)).await;
    assert_eq!(s, 200);
    assert_eq!(handle.members(5).len(), 2);

    // The switch flips at run time too.
    handle.set_reject_unseen_guids(false);
    let other = r#"{"pkey": "0x0005", "guids": ["02000000000000ff"]}"#;
    let (s, _) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(other)).await;
    assert_eq!(s, 200);
    ufm.shutdown().await;
}
