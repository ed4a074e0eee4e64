//! The emulator's tracing output never contains the password, a token, or the Basic header,
//! whatever the client sends. Alone in its binary because tracing's per-callsite interest
//! cache is process-wide: a parallel test without a subscriber could hide the events.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::{client, start};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use ufm_emulator::UfmConfig;

const PASSWORD: &str = "s3cret-Pass";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tracing_output_never_contains_the_password() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            Targets::new()
                .with_target("ufm_emulator", tracing::Level::TRACE)
                .with_target("no_secret_in_logs", tracing::Level::TRACE),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(move || writer.clone()));
    // The test runtime is single-threaded, so the server's tasks log through this default.
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = UfmConfig::https().with_credentials("ops", PASSWORD).with_token("tok-SECRET-1");
    tracing::info!(?config, "starting");
    let ufm = start(config).await;
    let c = client(&ufm);
    let url = format!("{}/ufmRest/app/ufm_version", ufm.base_url());
    for pass in [PASSWORD, "wrong-Secret-9"] {
        let _ = c.get(&url).basic_auth("ops", Some(pass)).send().await.unwrap();
    }
    let v3 = format!("{}/ufmRestV3/app/ufm_version", ufm.base_url());
    let _ = c.get(&v3).header("Authorization", "Basic tok-SECRET-1").send().await.unwrap();
    ufm.shutdown().await;

    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("ufm-emulator request"), "tracing was captured: {logged}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("ops:{PASSWORD}"));
    for secret in [PASSWORD, "wrong-Secret-9", "tok-SECRET-1", b64.as_str()] {
        assert!(!logged.contains(secret), "{secret} leaked into: {logged}");
    }
}
