//! Server authentication over HTTPS: the pinned CA is trusted and nothing else; system roots do not know
//! the emulator's CA; skipping verification connects to anything.

mod common;

use common::{basic, config, list, start, within};
use ib_sm::ufm::TlsTrust;
use ib_sm::{SubnetManager, Ufm};
use ufm_emulator::UfmConfig;

fn with_trust(ufm: &ufm_emulator::RunningUfm, tls: TlsTrust) -> Ufm {
    let mut settings = config(ufm, basic(common::USER, common::PASSWORD));
    settings.tls = tls;
    Ufm::new(settings).expect("client builds")
}

#[tokio::test]
async fn pinned_ca_is_trusted() {
    let ufm = start(UfmConfig::https()).await;
    let sm = with_trust(&ufm, TlsTrust::Pinned(ufm.ca_pem().unwrap().to_owned()));
    assert!(!sm.is_insecure() && !sm.is_plaintext());
    within(sm.validate()).await.unwrap();
    assert!(list(&sm).await.is_empty());
    ufm.shutdown().await;
}

#[tokio::test]
async fn system_roots_refuse_the_emulators_ca() {
    let ufm = start(UfmConfig::https()).await;
    let sm = with_trust(&ufm, TlsTrust::SystemRoots);
    let err = within(sm.validate()).await.unwrap_err();
    assert_eq!(err.label(), "tls", "{err}");
    assert!(ufm.handle().requests().is_empty(), "no request got through");
    ufm.shutdown().await;
}

#[tokio::test]
async fn another_ca_is_refused() {
    let ufm = start(UfmConfig::https()).await;
    let other = start(UfmConfig::https()).await;
    let sm = with_trust(&ufm, TlsTrust::Pinned(other.ca_pem().unwrap().to_owned()));
    let err = within(sm.validate()).await.unwrap_err();
    assert_eq!(err.label(), "tls", "{err}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    assert!(ufm.handle().requests().is_empty());
    other.shutdown().await;
    ufm.shutdown().await;
}

#[tokio::test]
async fn insecure_skip_verify_connects_and_says_so() {
    let ufm = start(UfmConfig::https()).await;
    let sm = with_trust(&ufm, TlsTrust::InsecureSkipVerify);
    assert!(sm.is_insecure());
    within(sm.validate()).await.unwrap();
    ufm.shutdown().await;
}

#[tokio::test]
async fn plain_http_says_so() {
    let ufm = start(UfmConfig::http()).await;
    let sm = common::client(&ufm);
    assert!(sm.is_plaintext() && !sm.is_insecure());
    within(sm.validate()).await.unwrap();
    ufm.shutdown().await;
}

#[test]
fn a_pin_without_certificates_fails_at_start() {
    let settings = ib_sm::ufm::UfmConfig {
        address: "127.0.0.1".into(),
        scheme: ib_sm::ufm::Scheme::Https,
        port: 443,
        auth: basic("a", "b"),
        tls: TlsTrust::Pinned("not a certificate".into()),
        request_timeout: common::DEADLINE,
    };
    assert_eq!(Ufm::new(settings).unwrap_err().label(), "tls");
}
