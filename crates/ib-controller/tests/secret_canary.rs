//! The UFM password and token never appear in any log line, at any level, from any crate, whatever
//! fails.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::{Cluster, IB5, UFM_PASSWORD, UFM_TOKEN, wait_for};
use tracing_subscriber::fmt::MakeWriter;
use ufm_emulator::{FaultRule, Method};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_logged() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this test binary");

    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    // Basic auth replica, then a token replica; both see failures.
    let a = cluster.spawn_replica("a", &[]);
    a.wait_leading().await;
    cluster.pod("default", "ok", "ib");
    cluster.wait_configured("default", "ok", 1).await;
    // A UFM error whose body echoes the credentials, then a wrong password (401).
    let header = base64::engine::general_purpose::STANDARD.encode(format!("admin:{UFM_PASSWORD}"));
    cluster.fabric().inject(
        FaultRule::respond(
            Some(Method::POST),
            "/ufmRest/resources/pkeys*",
            500,
            format!("echo {UFM_PASSWORD} {header}"),
        )
        .times(2),
    );
    cluster.pod("default", "fails-first", "ib");
    cluster.wait_configured("default", "fails-first", 1).await;
    cluster.fabric().set_password("another-password");
    cluster.pod("default", "unauthorized", "ib");
    wait_for("a 401 answered", || cluster.fabric().requests().iter().any(|r| r.status == 401).then_some(())).await;
    a.kill();
    let b = cluster.spawn_replica("b", &[("UFM_TOKEN", UFM_TOKEN)]);
    b.wait_leading().await;
    cluster.wait_configured("default", "unauthorized", 1).await;
    b.stop();

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(logs.len() > 10_000, "trace logging captured too little ({} bytes) to prove anything", logs.len());
    if common::exec_plugin().is_none() {
        // With the exec plugin the UFM client runs in the plugin's process, outside this capture.
        assert!(logs.contains("ufm_request"), "UFM spans are in the capture");
    }
    let token_b64 = base64::engine::general_purpose::STANDARD.encode(UFM_TOKEN);
    for canary in [UFM_PASSWORD, UFM_TOKEN, header.as_str(), token_b64.as_str()] {
        assert!(!logs.contains(canary), "{canary} leaked into the logs");
    }
}
