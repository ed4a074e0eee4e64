//! A throwaway PKI for HTTPS: a CA and a `localhost`/`127.0.0.1` server certificate signed by
//! it, generated at every start. Clients are meant to trust exactly the CA (as ib-kubernetes
//! does with `UFM_CERTIFICATE`), so the server certificate is deliberately not self-signed:
//! that exercises a real chain.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS server configuration failed: {0}")]
    Config(#[from] rustls::Error),
}

/// Names the server certificate is valid for; the emulator listens on loopback only.
const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The generated material.
pub struct Pki {
    /// PEM of the CA certificate: what a client should trust.
    pub ca_pem: String,
    /// PEM of the server certificate (for tests that pin the leaf).
    pub server_pem: String,
    pub server_config: Arc<ServerConfig>,
}

impl Pki {
    pub fn generate() -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca_params.distinguished_name = name("ufm-emulator test CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())?;
        server_params.distinguished_name = name("localhost");
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        let chain = vec![server_cert.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let server_config = server_config(chain, key)?;
        Ok(Pki { ca_pem: ca_cert.pem(), server_pem: server_cert.pem(), server_config: Arc::new(server_config) })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "ib-kubernetes tests");
    dn
}

/// Uses the ring provider explicitly rather than the process default, so the emulator works
/// whatever provider (if any) the test process installed.
fn server_config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_ca_and_a_distinct_leaf() {
        let pki = Pki::generate().unwrap();
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.server_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(pki.ca_pem, pki.server_pem);
        assert!(pki.server_config.alpn_protocols.contains(&b"h2".to_vec()));
    }
}
