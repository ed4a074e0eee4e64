//! HTTPS: a client that trusts exactly the generated CA gets through (HTTP/1.1 and HTTP/2);
//! one that trusts nothing, or the platform roots only, fails certificate verification.

mod common;

use common::{DEADLINE, PASSWORD, USER, install_provider, start};
use ufm_emulator::UfmConfig;

#[tokio::test]
async fn the_generated_ca_is_the_only_root_needed() {
    let ufm = start(UfmConfig::https()).await;
    assert!(ufm.base_url().starts_with("https://127.0.0.1:"));
    let ca = ufm.ca_pem().expect("HTTPS has a CA");
    assert!(ca.contains("BEGIN CERTIFICATE"));
    assert_ne!(Some(ca), ufm.server_cert_pem(), "leaf is signed by the CA, not self-signed");

    install_provider();
    let certs = reqwest::Certificate::from_pem_bundle(ca.as_bytes()).unwrap();
    let trusted = reqwest::Client::builder().tls_certs_only(certs).timeout(DEADLINE).build().unwrap();
    let url = format!("{}/ufmRest/app/ufm_version", ufm.base_url());
    let response = trusted.get(&url).basic_auth(USER, Some(PASSWORD)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // The certificate also names localhost.
    let by_name = format!("https://localhost:{}/ufmRest/app/ufm_version", ufm.addr().port());
    let certs = reqwest::Certificate::from_pem_bundle(ca.as_bytes()).unwrap();
    let pinned = reqwest::Client::builder()
        .tls_certs_only(certs)
        .resolve("localhost", ufm.addr())
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let response = pinned.get(&by_name).basic_auth(USER, Some(PASSWORD)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let untrusting = reqwest::Client::builder().tls_certs_only(Vec::new()).timeout(DEADLINE).build().unwrap();
    let err = untrusting.get(&url).basic_auth(USER, Some(PASSWORD)).send().await.expect_err("no root, no connection");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    assert_eq!(ufm.handle().requests().len(), 2, "the refused client never got a request through");
    ufm.shutdown().await;
}

#[tokio::test]
async fn http2_is_negotiated_over_tls() {
    let ufm = start(UfmConfig::https()).await;
    install_provider();
    let certs = reqwest::Certificate::from_pem_bundle(ufm.ca_pem().unwrap().as_bytes()).unwrap();
    let client =
        reqwest::Client::builder().tls_certs_only(certs).http2_prior_knowledge().timeout(DEADLINE).build().unwrap();
    let response = client
        .get(format!("{}/ufmRest/resources/pkeys?guids_data=true", ufm.base_url()))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status().as_u16(), 200);
    ufm.shutdown().await;
}
