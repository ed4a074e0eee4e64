//! Helpers shared by the scenario tests: a reqwest client that trusts exactly the emulator's
//! CA, and small request builders.
#![allow(dead_code)]

use std::time::Duration;

use ufm_emulator::{RunningUfm, UfmConfig, UfmEmulator};

/// Generous, because the suite must pass on a loaded two-core machine; nothing waits this
/// long when things work.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const USER: &str = "admin";
pub const PASSWORD: &str = "123456";

/// reqwest is built without a default crypto provider; install ring once per process.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn start(config: UfmConfig) -> RunningUfm {
    UfmEmulator::start(config).await.expect("emulator starts")
}

/// A client for the emulator: trusts exactly its CA over HTTPS.
pub fn client(ufm: &RunningUfm) -> reqwest::Client {
    install_provider();
    let mut builder = reqwest::Client::builder().timeout(DEADLINE);
    if let Some(pem) = ufm.ca_pem() {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).expect("CA parses");
        builder = builder.tls_certs_only(certs);
    }
    builder.build().expect("client builds")
}

/// Sends a request the way the Go plugin does: Basic auth and its JSON content type, on
/// every method.
pub async fn go_request(
    client: &reqwest::Client,
    ufm: &RunningUfm,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut request = client
        .request(method, format!("{}{path}", ufm.base_url()))
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", "application/json; charset=utf-8");
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.expect("request is answered");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body reads"))
}
