//! A hung request gets no answer until released (then it is applied), until its own bound
//! passes, or until the emulator shuts down.

mod common;

use std::time::Duration;

use common::{DEADLINE, client, go_request, start};
use reqwest::Method;
use ufm_emulator::{Endpoint, FaultRule, UfmConfig};

const ADD: &str =
    r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000000"]}"#;

#[tokio::test]
async fn hung_request_answers_once_released() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    handle.inject(FaultRule::hang(Some(ufm_emulator::Method::POST), "/ufmRest/resources/pkeys").times(1));

    let pending = tokio::spawn({
        let c = c.clone();
        let url = format!("{}/ufmRest/resources/pkeys", ufm.base_url());
        async move {
            let r = c.post(url).basic_auth(common::USER, Some(common::PASSWORD)).body(ADD).send().await.unwrap();
            r.status().as_u16()
        }
    });
    assert!(handle.wait_hung(1, DEADLINE).await, "request reached the hang");
    assert!(!pending.is_finished());
    assert!(handle.partition(5).is_none(), "nothing applied while hung");

    // Other requests are not held up.
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/app/ufm_version", None).await;
    assert_eq!(s, 200);
    assert_eq!(handle.count(Endpoint::AddGuids), 0, "logged only once answered");

    handle.release_hung();
    assert_eq!(pending.await.unwrap(), 200);
    assert_eq!(handle.members(5).len(), 1);
    assert_eq!(handle.hung(), 0);
    let record = &handle.requests_to(Endpoint::AddGuids)[0];
    assert_eq!(record.fault.as_deref(), Some("hang"));
    ufm.shutdown().await;
}

#[tokio::test]
async fn a_bounded_hang_ends_by_itself() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    handle.inject(FaultRule::hang(None, "/ufmRest/app/ufm_version").at_most(Duration::from_millis(20)).times(1));
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/app/ufm_version", None).await;
    assert_eq!(s, 200);
    assert_eq!(handle.hung(), 0);
    ufm.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_hung_requests() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    handle.inject(FaultRule::hang(None, "*"));
    let url = format!("{}/ufmRest/app/ufm_version", ufm.base_url());
    let pending = tokio::spawn(async move {
        c.get(url).basic_auth(common::USER, Some(common::PASSWORD)).send().await.map(|r| r.status().as_u16())
    });
    assert!(handle.wait_hung(1, DEADLINE).await);
    let addr = ufm.addr();
    tokio::time::timeout(DEADLINE, ufm.shutdown()).await.expect("shutdown does not wait for the hang");
    let outcome = tokio::time::timeout(DEADLINE, pending).await.unwrap().unwrap();
    assert!(!matches!(outcome, Ok(200)), "a hung request is not answered as a success: {outcome:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is closed after shutdown");
}
