//! UFM applies partition changes asynchronously. With an apply delay the emulator answers a write at
//! once, checks it against UFM's model of accepted changes, and makes it visible (in the listing, the
//! partition GET and `last_updated`) only when it is applied, in the order the writes were accepted.
//! Without one (the default) every change is visible the moment it is answered.

mod common;

use std::time::{Duration, Instant};

use common::{DEADLINE, client, go_request, start};
use reqwest::Method;
use serde_json::{Value, json};
use ufm_emulator::{ApplyModel, Guid, Membership, Qos, UfmConfig};

const ADD: &str = "/ufmRest/resources/pkeys";
const REMOVE: &str = "/ufmRest/actions/remove_guids_from_pkey";
const LAST_UPDATED: &str = "/ufmRest/resources/pkeys/last_updated";

fn add_body(pkey: &str, guid: &str) -> String {
    format!(r#"{{"pkey": "{pkey}", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["{guid}"]}}"#)
}

async fn get_json(c: &reqwest::Client, ufm: &ufm_emulator::RunningUfm, path: &str) -> Value {
    let (s, body) = go_request(c, ufm, Method::GET, path, None).await;
    assert_eq!(s, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn an_accepted_change_is_invisible_until_applied() {
    // An hour: nothing in this test can reach it; the change is applied by hand.
    let apply = ApplyModel::new(Duration::from_secs(3600), Duration::ZERO, 0).unwrap();
    let ufm = start(UfmConfig::http().with_apply(apply)).await;
    let handle = ufm.handle();
    let c = client(&ufm);

    let (s, _) = go_request(&c, &ufm, Method::POST, ADD, Some(&add_body("0x0005", "0200000000000001"))).await;
    assert_eq!(s, 200, "answered at once");
    assert_eq!(handle.pending_changes(), 1);
    assert!(handle.partition(5).is_none(), "not applied yet");
    assert_eq!(get_json(&c, &ufm, "/ufmRest/resources/pkeys/0x5?guids_data=true").await, json!({}));
    assert_eq!(get_json(&c, &ufm, LAST_UPDATED).await["last_updated"], Value::Null);

    // UFM's model has the partition already: QoS on it is accepted, not refused as unknown.
    let qos = r#"{"pkey": "0x5", "mtu_limit": 4, "service_level": 1, "rate_limit": 100}"#;
    let (s, body) = go_request(&c, &ufm, Method::PUT, "/ufmRest/resources/pkeys/qos_conf", Some(qos)).await;
    assert_eq!(s, 200, "{body}");
    // A malformed write is refused at once and queues nothing.
    let (s, _) = go_request(&c, &ufm, Method::POST, ADD, Some(r#"{"pkey": "0x5", "guids": ["zz"]}"#)).await;
    assert_eq!(s, 400);
    assert_eq!(handle.pending_changes(), 2);

    handle.apply_pending_now();
    assert_eq!(handle.pending_changes(), 0);
    let p = handle.partition(5).expect("applied");
    assert_eq!(p.qos, Qos { mtu_limit: 4, service_level: 1, rate_limit: 100.0 });
    assert!(p.members.contains_key(&Guid::from(0x0200000000000001)));
    assert!(get_json(&c, &ufm, LAST_UPDATED).await["last_updated"].is_string(), "advanced when applied");
    ufm.shutdown().await;
}

#[tokio::test]
async fn a_change_is_applied_no_earlier_than_its_delay() {
    let delay = Duration::from_millis(300);
    let ufm = start(UfmConfig::http().with_apply(ApplyModel::new(delay, Duration::ZERO, 0).unwrap())).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let sent = Instant::now();
    let (s, _) = go_request(&c, &ufm, Method::POST, ADD, Some(&add_body("0x0006", "0200000000000001"))).await;
    assert_eq!(s, 200);
    assert!(handle.wait_applied(DEADLINE).await, "applied within the deadline");
    assert!(sent.elapsed() >= delay, "applied after {:?}", sent.elapsed());
    assert_eq!(handle.members(6).len(), 1);
    let listed = get_json(&c, &ufm, "/ufmRest/resources/pkeys/?guids_data=true").await;
    assert_eq!(listed["0x6"]["guids"][0]["guid"], "0200000000000001");
    assert!(handle.last_updated().is_some());
    ufm.shutdown().await;
}

/// A spread draws different delays, but an add, its removal and a later add are applied in the order
/// UFM accepted them: the end state is the one the writes describe.
#[tokio::test]
async fn a_spread_never_reorders_changes() {
    let apply = ApplyModel::new(Duration::from_millis(60), Duration::from_millis(60), 11).unwrap();
    let ufm = start(UfmConfig::http().with_apply(apply)).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    for round in 0..5u64 {
        let (a, b) = (format!("02000000000000{round:x}a"), format!("02000000000000{round:x}b"));
        go_request(&c, &ufm, Method::POST, ADD, Some(&add_body("0x0007", &a))).await;
        let remove = format!(r#"{{"pkey": "0x0007", "guids": ["{a}"]}}"#);
        go_request(&c, &ufm, Method::POST, REMOVE, Some(&remove)).await;
        go_request(&c, &ufm, Method::POST, ADD, Some(&add_body("0x0007", &b))).await;
    }
    assert!(handle.wait_applied(DEADLINE).await);
    let members: Vec<Guid> = handle.members(7).into_keys().collect();
    let want: Vec<Guid> = (0..5u64).map(|r| Guid::from(0x0200000000000000 | (r << 4) | 0xb)).collect();
    assert_eq!(members, want);
    ufm.shutdown().await;
}

#[tokio::test]
async fn without_a_delay_every_change_is_visible_when_answered() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    assert_eq!(handle.apply_model(), ApplyModel::default());
    go_request(&c, &ufm, Method::POST, ADD, Some(&add_body("0x0008", "0200000000000001"))).await;
    assert_eq!(handle.pending_changes(), 0);
    assert_eq!(handle.members(8).len(), 1);
    // A delay set at run time applies to the changes after it.
    handle.set_apply(ApplyModel::new(Duration::from_secs(3600), Duration::ZERO, 0).unwrap()).unwrap();
    go_request(&c, &ufm, Method::POST, ADD, Some(&add_body("0x0008", "0200000000000002"))).await;
    assert_eq!((handle.pending_changes(), handle.members(8).len()), (1, 1));
    assert!(handle.set_apply(ApplyModel { delay: Duration::ZERO, spread: Duration::from_millis(1), seed: 0 }).is_err());
    ufm.shutdown().await;
}

/// What UFM stores per GUID (membership, index0) comes back in the pkey GET; the last GUID leaving
/// deletes the partition and its QoS, so the POST that recreates it gives it UFM's default QoS.
#[tokio::test]
async fn a_recreated_partition_has_the_default_qos_and_members_keep_their_attributes() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let limited = r#"{"pkey": "0x0009", "index0": false, "ip_over_ib": false, "membership": "limited", "guids": ["0200000000000001"]}"#;
    assert_eq!(go_request(&c, &ufm, Method::POST, ADD, Some(limited)).await.0, 200);
    let qos = r#"{"pkey": "0x9", "mtu_limit": 4, "service_level": 5, "rate_limit": 56}"#;
    assert_eq!(go_request(&c, &ufm, Method::PUT, "/ufmRest/resources/pkeys/qos_conf", Some(qos)).await.0, 200);
    let one = get_json(&c, &ufm, "/ufmRest/resources/pkeys/0x9?guids_data=true&qos_conf=true").await;
    assert_eq!(one["guids"], json!([{"guid": "0200000000000001", "membership": "limited", "index0": false}]));
    assert_eq!(one["ip_over_ib"], false);
    assert_eq!(one["qos_conf"], json!({"mtu_limit": 4, "rate_limit": 56.0, "service_level": 5}));
    assert_eq!(handle.members(9)[&Guid::from(0x0200000000000001)].membership, Membership::Limited);

    let remove = r#"{"pkey": "0x9", "guids": ["0200000000000001"]}"#;
    assert_eq!(go_request(&c, &ufm, Method::POST, REMOVE, Some(remove)).await.0, 200);
    assert_eq!(get_json(&c, &ufm, "/ufmRest/resources/pkeys/0x9?qos_conf=true").await, json!({}));
    go_request(&c, &ufm, Method::POST, ADD, Some(&add_body("0x0009", "0200000000000002"))).await;
    assert_eq!(handle.partition(9).unwrap().qos, Qos::default(), "recreated without its old QoS");
    ufm.shutdown().await;
}
