//! Any answer but 200 is an error carrying the status and a bounded excerpt of the body, and nothing is
//! retried inside the client.

mod common;

use common::{client, guid, pkey, start, within};
use ib_sm::{BoxFuture, SmError, SubnetManager};
use ufm_emulator::{Endpoint, FaultRule, Method, UfmConfig};

#[tokio::test]
async fn outages_surface_their_status() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let sm = client(&ufm);
    let guids = [guid(1)];

    handle.inject(
        FaultRule::respond(Some(Method::POST), "/ufmRest/resources/pkeys", 500, r#"{"error": "sweep failed"}"#)
            .times(1),
    );
    let err = within(sm.add_guids(pkey(5), &guids)).await.unwrap_err();
    assert_eq!((err.label(), common::http_status(&err)), ("status", Some(500)), "{err}");
    let text = err.to_string();
    assert!(text.contains("sweep failed") && text.contains("0x0005") && text.contains("500"), "{text}");
    assert!(handle.partition(5).is_none());

    handle.inject(FaultRule::respond(None, "*", 503, "down for maintenance").times(4));
    let calls: [BoxFuture<'_, Result<(), SmError>>; 4] = [
        sm.validate(),
        sm.add_guids(pkey(5), &guids),
        sm.remove_guids(pkey(5), &guids),
        Box::pin(async { sm.list_guids().await.map(drop) }),
    ];
    for call in calls {
        let err = within(call).await.unwrap_err();
        assert_eq!(common::http_status(&err), Some(503), "{err}");
        assert!(err.to_string().contains("down for maintenance"), "{err}");
    }
    assert_eq!(handle.count(Endpoint::AddGuids), 2, "one request per call, no retries");

    // Success needs exactly 200, as in the Go plugin.
    handle.inject(FaultRule::respond(None, "*", 201, "{}").times(1));
    assert_eq!(common::http_status(&within(sm.validate()).await.unwrap_err()), Some(201));
    within(sm.validate()).await.unwrap();
    ufm.shutdown().await;
}

#[tokio::test]
async fn huge_error_bodies_are_cut() {
    let ufm = start(UfmConfig::http()).await;
    let sm = client(&ufm);
    ufm.handle().inject(FaultRule::respond(None, "*", 502, "x".repeat(1 << 20)));
    let err = within(sm.validate()).await.unwrap_err();
    match &err {
        SmError::Status { status: 502, body, .. } => {
            assert!(body.len() <= ib_sm::manager::BODY_EXCERPT_BYTES + '…'.len_utf8(), "{} bytes", body.len());
            assert!(body.ends_with('…'));
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    ufm.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_ufm_is_a_transport_error() {
    let ufm = start(UfmConfig::http()).await;
    let sm = client(&ufm);
    ufm.shutdown().await;
    let err = within(sm.validate()).await.unwrap_err();
    assert_eq!(err.label(), "transport", "{err}");
    assert!(err.to_string().contains("/ufmRest/app/ufm_version"), "{err}");
}

#[tokio::test]
async fn a_credential_at_the_cut_is_not_half_shown() {
    const SECRET: &str = "straddle-SECRET-99";
    let ufm = start(UfmConfig::http().with_credentials("ops", SECRET)).await;
    let sm = ib_sm::Ufm::new(common::config(&ufm, common::basic("ops", SECRET))).unwrap();
    let limit = ib_sm::manager::BODY_EXCERPT_BYTES;
    let echo = format!("{}{SECRET}{}", "x".repeat(limit - 8), "y".repeat(4096));
    ufm.handle().inject(FaultRule::respond(None, "*", 500, echo));
    let err = within(sm.validate()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("straddle"), "{shown}");
    assert!(shown.contains("xxxxxxxx<redact"), "{shown}");
    ufm.shutdown().await;
}
