//! Every UFM response body has a size limit, success bodies included, and reading stops there; and each
//! way a request can fail says whether UFM may have applied it (`SmError::outcome_unknown`).
//!
//! Some answers no emulator gives (a body without end, a connection closed on a request) come from a
//! raw TCP server in this file.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{DEADLINE, basic, config, guid, pkey, start, within};
use ib_sm::ufm::MAX_RESPONSE_BYTES;
use ib_sm::{SmError, SubnetManager, Ufm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ufm_emulator::{FaultRule, Method, UfmConfig};

/// What the raw server does once it has read a request's head.
#[derive(Clone, Copy)]
enum Answer {
    /// A 200 with a chunked body that never ends.
    Endless,
    /// A 200 announcing a body one byte over the limit, then writing one without end.
    Announced,
    /// Closes the connection without answering.
    Close,
}

/// Serves `answer` to every connection on a loopback port, until the test's runtime ends.
async fn raw_server(answer: Answer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, answer));
        }
    });
    addr
}

async fn serve(mut tcp: TcpStream, answer: Answer) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
    }
    let start = match answer {
        Answer::Close => return,
        Answer::Endless => {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
        }
        Answer::Announced => {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                MAX_RESPONSE_BYTES + 1
            )
        }
    };
    if tcp.write_all(start.as_bytes()).await.is_err() {
        return;
    }
    let piece = vec![b' '; 64 * 1024];
    let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
    chunk.extend_from_slice(&piece);
    chunk.extend_from_slice(b"\r\n");
    let body: &[u8] = if matches!(answer, Answer::Endless) { &chunk } else { &piece };
    // Until the client hangs up.
    while tcp.write_all(body).await.is_ok() {}
}

fn client_for(addr: SocketAddr, timeout: Duration) -> Ufm {
    Ufm::new(ib_sm::ufm::UfmConfig {
        address: addr.ip().to_string(),
        scheme: ib_sm::ufm::Scheme::Http,
        port: addr.port(),
        auth: basic("admin", "123456"),
        tls: ib_sm::ufm::TlsTrust::SystemRoots,
        request_timeout: timeout,
        confirm_applied: true,
    })
    .expect("client builds")
}

fn is_too_large(err: &SmError) -> bool {
    matches!(err, SmError::Decode { reason, .. } if reason.contains(&MAX_RESPONSE_BYTES.to_string()))
}

#[tokio::test]
async fn a_success_body_without_end_stops_at_the_limit() {
    let addr = raw_server(Answer::Endless).await;
    // A timeout far beyond the test's deadline: only the limit can end these calls.
    let sm = client_for(addr, DEADLINE * 10);
    let err = within(sm.list_guids()).await.unwrap_err();
    assert!(is_too_large(&err), "{err:?}");
    let err = within(sm.add_guids(pkey(5), &[guid(1)])).await.unwrap_err();
    assert!(is_too_large(&err), "{err:?}");
    // UFM answered 200: the add may well be in place.
    assert!(err.outcome_unknown(), "{err:?}");
}

#[tokio::test]
async fn an_announced_oversized_body_is_refused_unread() {
    let addr = raw_server(Answer::Announced).await;
    let sm = client_for(addr, DEADLINE * 10);
    let err = within(sm.list_guids()).await.unwrap_err();
    assert!(is_too_large(&err), "{err:?}");
}

#[tokio::test]
async fn a_large_listing_within_the_limit_is_read() {
    // 60,000 memberships as UFM writes them: several MB, under the limit.
    let ufm = start(UfmConfig::http()).await;
    let entries: Vec<String> = (0..60_000u64)
        .map(|i| format!(r#"{{"guid": "{:016x}", "membership": "full", "index0": true}}"#, 0x0200_0000_0000_0000 + i))
        .collect();
    let body = format!(r#"{{"0x5": {{"partition": "api_pkey_0x5", "guids": [{}]}}}}"#, entries.join(", "));
    assert!(body.len() > 3_000_000 && body.len() < MAX_RESPONSE_BYTES);
    ufm.handle().inject(FaultRule::respond(Some(Method::GET), "*/resources/pkeys/", 200, body).times(1));
    let sm = common::client(&ufm);
    assert_eq!(within(sm.list_guids()).await.expect("listing").len(), 60_000);
    ufm.shutdown().await;
}

#[tokio::test]
async fn a_connection_closed_on_the_request_leaves_the_outcome_unknown() {
    let addr = raw_server(Answer::Close).await;
    let sm = client_for(addr, DEADLINE);
    let err = within(sm.add_guids(pkey(5), &[guid(1)])).await.unwrap_err();
    assert!(matches!(err, SmError::Transport { sent: true, .. }), "{err:?}");
    assert!(err.outcome_unknown());
}

#[tokio::test]
async fn a_refused_connection_certainly_applied_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let sm = client_for(SocketAddr::from(([127, 0, 0, 1], port)), DEADLINE);
    let err = within(sm.add_guids(pkey(5), &[guid(1)])).await.unwrap_err();
    assert!(matches!(err, SmError::Transport { sent: false, .. }), "{err:?}");
    assert!(!err.outcome_unknown());
}

#[tokio::test]
async fn answers_tell_whether_the_add_may_have_been_applied() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let sm = common::client(&ufm);
    for (status, unknown) in [(500, true), (502, true), (503, true), (400, false), (401, false), (404, false)] {
        handle.inject(FaultRule::respond(Some(Method::POST), "/ufmRest/resources/pkeys", status, "no").times(1));
        let err = within(sm.add_guids(pkey(5), &[guid(1)])).await.unwrap_err();
        assert_eq!((common::http_status(&err), err.outcome_unknown()), (Some(status), unknown), "{err}");
    }

    // A request that hangs past the timeout was sent: UFM may still apply it.
    let mut settings = config(&ufm, basic(common::USER, common::PASSWORD));
    settings.request_timeout = Duration::from_secs(1);
    let sm = Ufm::new(settings).unwrap();
    handle.inject(FaultRule::hang(Some(Method::POST), "/ufmRest/resources/pkeys").times(1));
    let err = within(sm.add_guids(pkey(5), &[guid(1)])).await.unwrap_err();
    assert!(matches!(err, SmError::Timeout { sent: true, .. }), "{err:?}");
    assert!(err.outcome_unknown());
    assert_eq!(sm.call_timeout(), Duration::from_secs(1), "one request per call");
    handle.release_hung();
    ufm.shutdown().await;
}
