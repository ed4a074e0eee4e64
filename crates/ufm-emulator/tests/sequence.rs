//! Request sequence numbers come from a counter the test can share with other logs (the
//! Kubernetes emulator's), so UFM requests can be ordered against everything else.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{client, go_request, start};
use reqwest::Method;
use ufm_emulator::{Endpoint, UfmConfig, global_sequence};

const ADD: &str = r#"{"pkey": "0x0005", "guids": ["0200000000000000"]}"#;

#[tokio::test]
async fn a_shared_counter_orders_requests_against_other_events() {
    let shared = Arc::new(AtomicU64::new(100));
    let ufm = start(UfmConfig::http().with_sequence(Arc::clone(&shared))).await;
    let c = client(&ufm);

    let before = shared.fetch_add(1, Ordering::SeqCst) + 1; // "another emulator's" event
    let (s, _) = go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(ADD)).await;
    assert_eq!(s, 200);
    let after = shared.fetch_add(1, Ordering::SeqCst) + 1;

    let add = &ufm.handle().requests_to(Endpoint::AddGuids)[0];
    assert!(before < add.seq, "{before} < {}", add.seq);
    assert!(add.seq < add.done_seq);
    assert!(add.done_seq < after, "{} < {after}", add.done_seq);
    ufm.shutdown().await;
}

#[tokio::test]
async fn emulators_without_a_counter_share_the_process_global_one() {
    let a = start(UfmConfig::http()).await;
    let b = start(UfmConfig::https()).await;
    let (ca, cb) = (client(&a), client(&b));
    go_request(&ca, &a, Method::GET, "/ufmRest/app/ufm_version", None).await;
    go_request(&cb, &b, Method::GET, "/ufmRest/app/ufm_version", None).await;
    go_request(&ca, &a, Method::GET, "/ufmRest/app/ufm_version", None).await;
    let ra = a.handle().requests();
    let rb = b.handle().requests();
    assert!(ra[0].done_seq < rb[0].seq);
    assert!(rb[0].done_seq < ra[1].seq);
    assert!(global_sequence().load(Ordering::SeqCst) >= ra[1].done_seq);
    a.shutdown().await;
    b.shutdown().await;
}
