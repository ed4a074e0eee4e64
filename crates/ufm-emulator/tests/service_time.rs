//! The service model: requests hold a slot for their service time, no more of them are served at
//! once than there are slots, and the times drawn repeat with the seed. Every assertion reads the
//! emulator's own log and gauges, so none depends on how fast the machine is.

mod common;

use std::time::Duration;

use common::{DEADLINE, client, go_request, start};
use reqwest::Method;
use ufm_emulator::{Endpoint, FaultRule, RequestRecord, ServiceError, ServiceModel, StartError, UfmConfig};

const VERSION: &str = "/ufmRest/app/ufm_version";

fn model(time_ms: u64, spread_ms: u64, concurrency: Option<usize>, seed: u64) -> ServiceModel {
    ServiceModel::new(Duration::from_millis(time_ms), Duration::from_millis(spread_ms), concurrency, seed).unwrap()
}

fn served(records: &[RequestRecord]) -> Vec<ufm_emulator::ServiceSpan> {
    let mut spans: Vec<_> = records.iter().map(|r| r.service.expect("every request was served")).collect();
    spans.sort_by_key(|s| s.start);
    spans
}

#[tokio::test]
async fn one_slot_serves_simultaneous_requests_one_after_the_other() {
    let ufm = start(UfmConfig::http().with_service(model(50, 0, Some(1), 1))).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    // Both requests are held at a hang until both have arrived, then let go together.
    handle.inject(FaultRule::hang(None, VERSION).times(2));
    let requests: Vec<_> = (0..2)
        .map(|_| {
            let (c, url) = (c.clone(), format!("{}{VERSION}", ufm.base_url()));
            tokio::spawn(async move {
                c.get(url).basic_auth(common::USER, Some(common::PASSWORD)).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    assert!(handle.wait_hung(2, DEADLINE).await, "both requests arrived");
    handle.release_hung();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let records = handle.requests_to(Endpoint::Version);
    assert_eq!(records.len(), 2);
    let spans = served(&records);
    for span in &spans {
        assert_eq!(span.drawn, Duration::from_millis(50));
        assert!(span.end - span.start >= span.drawn, "{span:?}");
    }
    assert!(spans[1].start >= spans[0].end, "the second was served only after the first: {spans:?}");
    let first_start = spans[0].start;
    let last_answer = records.iter().map(|r| r.answered).max().unwrap();
    assert!(last_answer - first_start >= Duration::from_millis(100), "two services of 50 ms one after the other");
    ufm.shutdown().await;
}

#[tokio::test]
async fn n_slots_serve_n_at_once_and_queue_the_rest() {
    // A service time far longer than the test: the requests are still in service when it looks.
    let ufm = start(UfmConfig::http().with_service(model(600_000, 0, Some(2), 1))).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let (c, url) = (c.clone(), format!("{}{VERSION}", ufm.base_url()));
            tokio::spawn(async move { c.get(url).basic_auth(common::USER, Some(common::PASSWORD)).send().await })
        })
        .collect();
    assert!(handle.wait_service(1, 2, DEADLINE).await, "two in service and one queued");
    assert_eq!((handle.in_service(), handle.queued()), (2, 1));
    assert!(handle.requests().is_empty(), "nothing answered yet");
    ufm.shutdown().await;
    for request in requests {
        request.abort();
    }
}

#[tokio::test]
async fn without_a_limit_every_request_is_served_at_once() {
    let ufm = start(UfmConfig::http().with_service(model(600_000, 0, None, 1))).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let (c, url) = (c.clone(), format!("{}{VERSION}", ufm.base_url()));
            tokio::spawn(async move { c.get(url).basic_auth(common::USER, Some(common::PASSWORD)).send().await })
        })
        .collect();
    assert!(handle.wait_service(0, 4, DEADLINE).await, "all four in service");
    assert_eq!(handle.queued(), 0);
    ufm.shutdown().await;
    for request in requests {
        request.abort();
    }
}

/// The service times drawn for `n` requests sent one after another.
async fn drawn_times(service: ServiceModel, n: usize) -> Vec<Duration> {
    let ufm = start(UfmConfig::http().with_service(service)).await;
    let c = client(&ufm);
    for _ in 0..n {
        assert_eq!(go_request(&c, &ufm, Method::GET, VERSION, None).await.0, 200);
    }
    let records = ufm.handle().requests();
    ufm.shutdown().await;
    records
        .iter()
        .map(|r| {
            let span = r.service.expect("served");
            assert!(span.end - span.start >= span.drawn, "{span:?}");
            span.drawn
        })
        .collect()
}

#[tokio::test]
async fn spread_times_repeat_with_the_seed() {
    let a = drawn_times(model(4, 4, Some(1), 42), 8).await;
    assert!(a.iter().all(|d| *d <= Duration::from_millis(8)), "{a:?}");
    assert!(a.windows(2).any(|w| w[0] != w[1]), "the times are spread: {a:?}");
    assert_eq!(a, drawn_times(model(4, 4, Some(1), 42), 8).await, "same seed, same times");
    assert_ne!(a, drawn_times(model(4, 4, Some(1), 43), 8).await, "another seed, other times");
}

#[tokio::test]
async fn bad_settings_are_refused_and_the_default_serves_at_once() {
    let bad = ServiceModel { spread: Duration::from_millis(9), ..model(5, 0, None, 0) };
    match ufm_emulator::UfmEmulator::start(UfmConfig::http().with_service(bad)).await {
        Err(StartError::Service(ServiceError::SpreadAboveTime { .. })) => {}
        other => panic!("a spread above the time must be refused: {other:?}"),
    }
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let err = handle.set_service(bad).unwrap_err();
    assert!(err.to_string().contains("spread 9ms"), "{err}");
    assert!(handle.service().is_instant(), "a refused model changes nothing");
    let c = client(&ufm);
    assert_eq!(go_request(&c, &ufm, Method::GET, VERSION, None).await.0, 200);
    assert_eq!(handle.requests()[0].service, None, "the default has no service step");

    // Switched on through the handle, it applies to the next request.
    handle.set_service(model(20, 0, Some(1), 3)).unwrap();
    assert_eq!(go_request(&c, &ufm, Method::GET, VERSION, None).await.0, 200);
    let span = handle.requests()[1].service.expect("served under the new model");
    assert_eq!(span.drawn, Duration::from_millis(20));
    assert!(span.end - span.start >= Duration::from_millis(20));
    ufm.shutdown().await;
}
