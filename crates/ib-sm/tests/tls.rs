//! Server authentication over HTTPS: `UFM_CERTIFICATE` holds a CA, or the server's own certificate
//! (self-signed the way `openssl req -x509` makes it, or a CA-signed leaf), and nothing else is trusted;
//! system roots do not know the emulator's CA; skipping verification connects to anything.
//!
//! Certificates other than the emulator's own are served by a TLS front: a listener that terminates TLS
//! with the certificate under test and forwards the bytes to a plain-HTTP emulator.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{basic, config, guid, list, pkey, start, within};
use ib_sm::ufm::{Scheme, TlsTrust};
use ib_sm::{SmError, SubnetManager, Ufm};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use ufm_emulator::{RunningUfm, UfmConfig};

/// A certificate with the properties of `openssl req -x509 -newkey rsa:4096 -keyout ufm.key -out ufm.crt
/// -days 365 -subj '/CN=<host>'`: self-signed, basicConstraints `CA:TRUE` (critical), no subjectAltName,
/// the host only in the common name, no key usage. The key is ECDSA P-256 rather than RSA: rcgen on the
/// ring backend cannot generate RSA keys (the `openssl` test below covers RSA 4096).
fn openssl_style(host: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, host);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.use_authority_key_identifier_extension = true;
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
}

fn pem(cert: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// Presents `certified` whatever the client asks: also a certificate with a key that is not its own.
#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesServerCert for Present {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// Terminates TLS on a loopback port with `cert` and `key` (which need not belong together) and forwards
/// every connection to `backend`. Runs until the test's runtime ends.
async fn tls_front(backend: SocketAddr, cert: CertificateDer<'static>, key: &PrivateKeyDer<'static>) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signer = rustls::crypto::ring::sign::any_supported_type(key).expect("signing key");
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Present(Arc::new(CertifiedKey::new(vec![cert], signer)))));
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake ends here: that is what several tests expect.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut back) = TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
            });
        }
    });
    addr
}

/// A client for `front` (forwarding to `ufm`), trusting exactly `pinned`.
fn pinned_client(ufm: &RunningUfm, front: SocketAddr, pinned: String) -> Ufm {
    let mut settings = config(ufm, basic(common::USER, common::PASSWORD));
    settings.scheme = Scheme::Https;
    settings.port = front.port();
    settings.tls = TlsTrust::Pinned(pinned);
    Ufm::new(settings).expect("client builds")
}

/// An add and a listing that show it: the client really talks to UFM through the certificate.
async fn add_and_list(sm: &Ufm, ufm: &RunningUfm) {
    within(sm.validate()).await.expect("validate");
    within(sm.add_guids(pkey(5), &[guid(0x0200_0000_0000_0001)])).await.expect("add");
    assert_eq!(list(sm).await, [("0x5".to_owned(), guid(0x0200_0000_0000_0001))]);
    assert_eq!(ufm.handle().members(5).len(), 1);
}

#[tokio::test]
async fn a_pinned_self_signed_ca_certificate_without_names_is_the_server() {
    let ufm = start(UfmConfig::http()).await;
    let (cert, key) = openssl_style("127.0.0.1");
    let front = tls_front(ufm.addr(), cert.clone(), &key).await;
    let sm = pinned_client(&ufm, front, pem(&cert));
    add_and_list(&sm, &ufm).await;
    ufm.shutdown().await;
}

#[tokio::test]
async fn a_pinned_ca_signed_leaf_is_the_server_without_its_ca() {
    let ufm = start(UfmConfig::https()).await;
    let sm = with_trust(&ufm, TlsTrust::Pinned(ufm.server_cert_pem().expect("leaf").to_owned()));
    within(sm.validate()).await.expect("validate");
    within(sm.add_guids(pkey(7), &[guid(9)])).await.expect("add");
    assert_eq!(list(&sm).await, [("0x7".to_owned(), guid(9))]);
    ufm.shutdown().await;
}

#[tokio::test]
async fn another_self_signed_certificate_is_refused_before_any_request() {
    let ufm = start(UfmConfig::http()).await;
    let (served, key) = openssl_style("127.0.0.1");
    let (pinned, _) = openssl_style("127.0.0.1");
    let front = tls_front(ufm.addr(), served, &key).await;
    let sm = pinned_client(&ufm, front, pem(&pinned));
    for err in [within(sm.validate()).await.unwrap_err(), within(sm.add_guids(pkey(5), &[guid(1)])).await.unwrap_err()]
    {
        assert!(matches!(err, SmError::Tls { .. }), "{err:?}");
        assert!(err.to_string().contains("UFM_CERTIFICATE"), "says what was checked: {err}");
        assert!(!err.outcome_unknown(), "nothing was sent: {err}");
    }
    assert!(ufm.handle().requests().is_empty(), "no request got through");
    ufm.shutdown().await;
}

#[tokio::test]
async fn the_pinned_certificate_without_its_key_is_refused() {
    // An impostor that copied the certificate (it is public) but not the key: the handshake's signature
    // is checked against the pinned certificate's key.
    let ufm = start(UfmConfig::http()).await;
    let (pinned, _) = openssl_style("127.0.0.1");
    let (_, impostor_key) = openssl_style("127.0.0.1");
    let front = tls_front(ufm.addr(), pinned.clone(), &impostor_key).await;
    let sm = pinned_client(&ufm, front, pem(&pinned));
    let err = within(sm.validate()).await.unwrap_err();
    assert!(matches!(err, SmError::Tls { .. } | SmError::Transport { sent: false, .. }), "{err:?}");
    assert!(ufm.handle().requests().is_empty(), "no request got through");
    ufm.shutdown().await;
}

#[tokio::test]
async fn a_certificate_made_exactly_as_the_go_readme_says_is_the_server() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("openssl-ufm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // The documented command; `-passout` only answers the passphrase prompt it would otherwise show.
    let made = Command::new("openssl")
        .current_dir(&dir)
        .args(["req", "-x509", "-newkey", "rsa:4096", "-keyout", "ufm.key", "-out", "ufm.crt", "-days", "365"])
        .args(["-subj", "/CN=127.0.0.1", "-passout", "pass:ufm-test-passphrase"])
        .output();
    let made = match made {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIP: openssl not found");
            return;
        }
        other => other.expect("openssl runs"),
    };
    assert!(made.status.success(), "openssl req: {}", String::from_utf8_lossy(&made.stderr));
    let text = Command::new("openssl").current_dir(&dir).args(["x509", "-in", "ufm.crt", "-noout", "-text"]).output();
    let text = String::from_utf8_lossy(&text.expect("openssl x509").stdout).into_owned();
    assert!(text.contains("CA:TRUE") && !text.contains("Subject Alternative Name"), "the awkward kind: {text}");
    let key = Command::new("openssl")
        .current_dir(&dir)
        .args(["pkey", "-in", "ufm.key", "-passin", "pass:ufm-test-passphrase"])
        .output()
        .expect("openssl pkey");
    let key = PrivateKeyDer::from_pem_slice(&key.stdout).expect("the decrypted key");
    let crt = std::fs::read_to_string(dir.join("ufm.crt")).expect("ufm.crt");
    let cert = CertificateDer::from_pem_slice(crt.as_bytes()).expect("certificate");

    let ufm = start(UfmConfig::http()).await;
    let front = tls_front(ufm.addr(), cert, &key).await;
    // UFM_CERTIFICATE holds the file as written.
    let sm = pinned_client(&ufm, front, crt);
    add_and_list(&sm, &ufm).await;
    ufm.shutdown().await;
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn with_trust(ufm: &ufm_emulator::RunningUfm, tls: TlsTrust) -> Ufm {
    let mut settings = config(ufm, basic(common::USER, common::PASSWORD));
    settings.tls = tls;
    Ufm::new(settings).expect("client builds")
}

#[tokio::test]
async fn pinned_ca_is_trusted() {
    let ufm = start(UfmConfig::https()).await;
    let sm = with_trust(&ufm, TlsTrust::Pinned(ufm.ca_pem().unwrap().to_owned()));
    assert!(format!("{sm:?}").contains("tls: Verified"), "{sm:?}");
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
    assert!(format!("{sm:?}").contains("tls: Insecure"), "{sm:?}");
    within(sm.validate()).await.unwrap();
    ufm.shutdown().await;
}

#[tokio::test]
async fn plain_http_says_so() {
    let ufm = start(UfmConfig::http()).await;
    let sm = common::client(&ufm);
    assert!(format!("{sm:?}").contains("tls: Plaintext"), "{sm:?}");
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
        confirm_applied: true,
    };
    assert_eq!(Ufm::new(settings).unwrap_err().label(), "tls");
}
