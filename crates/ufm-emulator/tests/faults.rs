//! Injected faults are observable: the next N matching requests get the chosen status and
//! body without touching the fabric, then service resumes; latency rules delay but do not
//! change the answer; every faulted request is logged and counted.

mod common;

use std::time::Duration;

use common::{client, go_request, start};
use reqwest::Method;
use ufm_emulator::{Endpoint, FaultRule, UfmConfig};

const ADD: &str =
    r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000000"]}"#;

#[tokio::test]
async fn next_n_matching_requests_fail_then_service_resumes() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    handle.inject(
        FaultRule::respond(
            Some(ufm_emulator::Method::POST),
            "/ufmRest/resources/pkeys*",
            503,
            r#"{"error": "UFM is restarting"}"#,
        )
        .times(2),
    );

    // A GET on the same path does not match the POST rule.
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/?guids_data=true", None).await;
    assert_eq!(s, 200);

    for _ in 0..2 {
        let (s, body) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(ADD)).await;
        assert_eq!((s, body.as_str()), (503, r#"{"error": "UFM is restarting"}"#));
        assert!(handle.partition(5).is_none(), "a faulted request has no effect");
    }
    let (s, _) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(ADD)).await;
    assert_eq!(s, 200);
    assert_eq!(handle.members(5).len(), 1);
    assert!(handle.faults().is_empty(), "spent rule is gone");

    let adds = handle.requests_to(Endpoint::AddGuids);
    let statuses: Vec<u16> = adds.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(adds[0].fault.as_deref(), Some("respond 503"));
    assert_eq!(adds[2].fault, None);
    assert_eq!(handle.count(Endpoint::AddGuids), 3);
    ufm.shutdown().await;
}

#[tokio::test]
async fn faults_answer_before_authentication_and_can_be_withdrawn() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let id = handle.inject(FaultRule::respond(None, "*", 500, "internal error"));
    let url = format!("{}/ufmRest/app/ufm_version", ufm.base_url());
    let unauthenticated = c.get(&url).send().await.unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 500, "an outage answers everyone");
    assert_eq!(unauthenticated.text().await.unwrap(), "internal error");
    assert!(handle.remove_fault(id));
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/app/ufm_version", None).await;
    assert_eq!(s, 200);
    ufm.shutdown().await;
}

#[tokio::test]
async fn latency_delays_without_changing_the_answer() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    handle.inject(FaultRule::delay(None, "/ufmRest/resources/pkeys", Duration::from_millis(50)).times(1));
    let (s, _) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(ADD)).await;
    assert_eq!(s, 200);
    assert_eq!(handle.members(5).len(), 1);
    let record = &handle.requests_to(Endpoint::AddGuids)[0];
    assert_eq!(record.status, 200);
    assert_eq!(record.fault.as_deref(), Some("delay 50ms"));
    ufm.shutdown().await;
}

#[tokio::test]
async fn global_latency_composes_with_rules() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    handle.set_latency(Duration::from_millis(20));
    handle.inject(FaultRule::respond(None, "/ufmRest/app/ufm_version", 503, "{}").times(1));
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/app/ufm_version", None).await;
    assert_eq!(s, 503, "the rule still fires under global latency");
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/app/ufm_version", None).await;
    assert_eq!(s, 200);
    handle.set_latency(Duration::ZERO);
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/app/ufm_version", None).await;
    assert_eq!(s, 200);
    assert_eq!(handle.count(Endpoint::Version), 3);
    ufm.shutdown().await;
}
