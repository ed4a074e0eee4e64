//! UFM's membership semantics over HTTP: removing the last GUID deletes the partition,
//! removing a non-member is a no-op success, and the other write forms (E3', E6, E7, E8, E9)
//! behave as UFM documents.

mod common;

use common::{client, go_request, start};
use reqwest::Method;
use serde_json::{Value, json};
use ufm_emulator::{Guid, Membership, Qos, UfmConfig};

#[tokio::test]
async fn removing_the_last_guid_deletes_and_non_members_are_no_ops() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let add = r#"{"pkey": "0x0010", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000001","0200000000000002"]}"#;
    let (s, _) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(add)).await;
    assert_eq!(s, 200);

    let stranger = r#"{"pkey": "0x0010", "guids": ["02000000000000ff"]}"#;
    let action = "/ufmRest/actions/remove_guids_from_pkey";
    let (s, body) = go_request(&c, &ufm, Method::POST, action, Some(stranger)).await;
    assert_eq!((s, body.as_str()), (200, "{}"));
    assert_eq!(handle.members(0x10).len(), 2, "non-member removal changed nothing");

    let one = r#"{"pkey": "0x0010", "guids": ["0200000000000001"]}"#;
    let (s, _) = go_request(&c, &ufm, Method::POST, action, Some(one)).await;
    assert_eq!(s, 200);
    assert_eq!(handle.members(0x10).len(), 1);
    assert!(handle.partition(0x10).is_some());

    // The current API form, GUIDs comma-joined in the path.
    let (s, _) = go_request(
        &c,
        &ufm,
        Method::DELETE,
        "/ufmRest/resources/pkeys/0x10/guids/0200000000000002,02000000000000fe",
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(handle.partition(0x10).is_none(), "last member gone: partition deleted");

    // Removing from a partition that no longer exists is still a no-op success.
    let (s, _) = go_request(&c, &ufm, Method::POST, action, Some(one)).await;
    assert_eq!(s, 200);
    let (s, body) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/0x10", None).await;
    assert_eq!((s, body.as_str()), (200, "{}"));
    assert!(handle.partition(0x7fff).is_some(), "management partition stays");
    ufm.shutdown().await;
}

#[tokio::test]
async fn set_create_qos_and_delete() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);

    let create = r#"{"pkey": "0x20", "partition_name": "tenant-a", "ip_over_ib": false, "mtu_limit": 4, "service_level": 3, "rate_limit": 200}"#;
    let (s, body) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys/add", Some(create)).await;
    assert_eq!(s, 200, "{body}");
    let p = handle.partition(0x20).unwrap();
    assert_eq!(p.name, "tenant-a");
    assert!(!p.ip_over_ib);
    assert!(p.members.is_empty());
    assert_eq!(p.qos, Qos { mtu_limit: 4, service_level: 3, rate_limit: 200.0 });

    let set = r#"{"pkey": "0x20", "guids": ["0200000000000001","0200000000000002"], "memberships": ["full","limited"], "index0": true}"#;
    let (s, _) = go_request(&c, &ufm, Method::PUT, "/ufmRest/resources/pkeys", Some(set)).await;
    assert_eq!(s, 200);
    let set2 = r#"{"pkey": "0x20", "guids": ["0200000000000002","0200000000000003"], "membership": "limited"}"#;
    let (s, _) = go_request(&c, &ufm, Method::PUT, "/ufmRest/resources/pkeys", Some(set2)).await;
    assert_eq!(s, 200);
    let members = handle.members(0x20);
    assert_eq!(
        members.keys().copied().collect::<Vec<_>>(),
        vec![Guid::from(0x0200000000000002), Guid::from(0x0200000000000003)]
    );
    assert!(members.values().all(|m| m.membership == Membership::Limited));

    let qos = r#"{"pkey": "0x20", "mtu_limit": 2, "service_level": 0, "rate_limit": 2.5}"#;
    let (s, _) = go_request(&c, &ufm, Method::PUT, "/ufmRest/resources/pkeys/qos_conf", Some(qos)).await;
    assert_eq!(s, 200);
    let (s, body) =
        go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/0x20?guids_data=true&qos_conf=true", None).await;
    assert_eq!(s, 200);
    let one: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(one["qos_conf"], json!({"mtu_limit": 2, "rate_limit": 2.5, "service_level": 0}));
    assert_eq!(one["guids"].as_array().unwrap().len(), 2);

    let (s, _) = go_request(&c, &ufm, Method::DELETE, "/ufmRest/resources/pkeys/0x20", None).await;
    assert_eq!(s, 200);
    assert!(handle.partition(0x20).is_none());
    let (s, body) = go_request(&c, &ufm, Method::DELETE, "/ufmRest/resources/pkeys/0x20", None).await;
    assert_eq!(s, 404, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
    let (s, _) = go_request(&c, &ufm, Method::PUT, "/ufmRest/resources/pkeys/qos_conf", Some(qos)).await;
    assert_eq!(s, 404, "QoS of an unknown partition");
    ufm.shutdown().await;
}
