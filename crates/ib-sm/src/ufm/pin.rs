//! Server authentication against `UFM_CERTIFICATE`, which holds either a CA or UFM's own certificate.
//!
//! UFM's own certificate is commonly made with `openssl req -x509 -newkey rsa:4096 -keyout ufm.key -out
//! ufm.crt -days 365 -subj '/CN=<host>'`: self-signed, `CA:TRUE`, no subjectAltName. Ordinary chain
//! verification refuses such a certificate as a server's (`CaUsedAsEndEntity`), and refuses a CA-signed
//! leaf given without its CA (`UnknownIssuer`). So when the server presents exactly a certificate of
//! `UFM_CERTIFICATE` (the same DER bytes), that is the trust the operator chose and it is accepted,
//! whatever its CA flag, key usage, names or dates: a pin is replaced together with the certificate.
//! Any other certificate must chain to one of `UFM_CERTIFICATE`'s as a root, with the usual checks
//! (names, dates, usage). Either way the handshake's signatures are checked with the server's key.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(Debug)]
pub struct PinnedVerifier {
    pinned: Vec<CertificateDer<'static>>,
    /// Chain verification with the pinned certificates as roots.
    chain: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    /// Fails, naming the certificate by its position, when one of `pinned` is not a certificate.
    pub fn new(pinned: Vec<CertificateDer<'static>>, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for (index, cert) in pinned.iter().enumerate() {
            roots.add(cert.clone()).map_err(|e| format!("certificate {} of {}: {e}", index + 1, pinned.len()))?;
        }
        let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(PinnedVerifier { pinned, chain, provider })
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pinned.iter().any(|pin| pin.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        self.chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn named(cn: &str, sans: &[&str], ca: bool) -> CertificateParams {
        let mut params = CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        params
    }

    fn name(text: &str) -> ServerName<'static> {
        ServerName::try_from(text.to_owned()).unwrap()
    }

    fn verify(
        v: &PinnedVerifier,
        cert: &CertificateDer<'_>,
        server: &str,
    ) -> Result<ServerCertVerified, rustls::Error> {
        v.verify_server_cert(cert, &[], &name(server), &[], UnixTime::now())
    }

    #[test]
    fn an_exact_pin_is_accepted_whatever_its_flags_and_names() {
        let key = KeyPair::generate().unwrap();
        let self_signed = named("ufm.example", &[], true).self_signed(&key).unwrap().der().clone();
        let v = PinnedVerifier::new(vec![self_signed.clone()], provider()).unwrap();
        assert!(verify(&v, &self_signed, "ufm.example").is_ok());
        assert!(verify(&v, &self_signed, "10.0.0.7").is_ok(), "names do not matter for an exact pin");

        let other = named("ufm.example", &[], true).self_signed(&KeyPair::generate().unwrap()).unwrap();
        let err = verify(&v, other.der(), "ufm.example").unwrap_err();
        assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err:?}");
    }

    #[test]
    fn a_pinned_ca_checks_the_chain_and_the_name() {
        let ca_key = KeyPair::generate().unwrap();
        let ca_params = named("test CA", &[], true);
        let ca = ca_params.self_signed(&ca_key).unwrap().der().clone();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = named("ufm.example", &["ufm.example"], false)
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap()
            .der()
            .clone();
        let v = PinnedVerifier::new(vec![ca], provider()).unwrap();
        assert!(verify(&v, &leaf, "ufm.example").is_ok());
        let err = verify(&v, &leaf, "impostor.example").unwrap_err();
        assert!(err.to_string().contains("not valid for name"), "{err}");

        // The same leaf pinned by itself: accepted without its CA, for its own name or any other.
        let v = PinnedVerifier::new(vec![leaf.clone()], provider()).unwrap();
        assert!(verify(&v, &leaf, "impostor.example").is_ok());
    }

    #[test]
    fn something_that_is_no_certificate_is_refused_at_start() {
        let good = named("x.example", &[], true).self_signed(&KeyPair::generate().unwrap()).unwrap().der().clone();
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let err = PinnedVerifier::new(vec![good, garbage], provider()).unwrap_err();
        assert!(err.starts_with("certificate 2 of 2"), "{err}");
    }
}
