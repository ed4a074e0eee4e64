//! The one HTTP client a [`super::Ufm`] uses, and how the HTTP stack's failures become [`SmError`]s.
//!
//! rustls runs on the ring provider, the one kube-rs uses, so the process carries a single TLS stack.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::config::{CONNECT_TIMEOUT, Scheme, TlsTrust, UfmConfig};
use super::pin::PinnedVerifier;
use crate::manager::SmError;
use crate::redact::Redactor;

/// What the construction errors name as the failing call.
const SETUP: &str = "client setup";

/// Builds the client: timeouts, and server authentication as the configuration asks.
pub fn build_client(config: &UfmConfig) -> Result<reqwest::Client, SmError> {
    // Whoever installed a provider first wins; ours or kube's is ring either way.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        // Proxies from the environment are honoured, as Go's default transport did.
        .timeout(config.request_timeout);
    if config.scheme == Scheme::Https {
        builder = match &config.tls {
            // The platform verifier reads the system's roots.
            TlsTrust::SystemRoots => builder,
            TlsTrust::Pinned(pem) => builder.tls_backend_preconfigured(pinned_tls(pem)?),
            TlsTrust::InsecureSkipVerify => builder.tls_danger_accept_invalid_certs(true),
        };
    }
    builder.build().map_err(|e| SmError::Config(format!("building the HTTP client: {}", chain(&e))))
}

/// The TLS configuration for `UFM_CERTIFICATE`: its certificates, checked by [`PinnedVerifier`]. Unlike
/// the Go plugin, which silently ended up trusting nothing, a certificate that does not parse stops the
/// start.
fn pinned_tls(pem: &str) -> Result<rustls::ClientConfig, SmError> {
    let tls_error = |reason: String| SmError::Tls { call: SETUP.into(), reason };
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("UFM_CERTIFICATE: not readable PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error("UFM_CERTIFICATE holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        PinnedVerifier::new(certs, Arc::clone(&provider)).map_err(|e| tls_error(format!("UFM_CERTIFICATE: {e}")))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // What reqwest offers when it builds the configuration itself: HTTP/2, else HTTP/1.1.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// Sorts a failed request: a timeout, a refused certificate, or any other transport failure, and
/// whether the request may have reached UFM. Only a failure while connecting (TLS handshake included)
/// or while building the request proves that it did not; reqwest's overall timeout is not told apart
/// from one during connection, so it counts as possibly sent. `hint` is added to a refused certificate.
pub fn classify(
    call: &str,
    timeout: Duration,
    err: &reqwest::Error,
    redactor: &Redactor,
    hint: Option<&str>,
) -> SmError {
    let call = call.to_owned();
    let sent = !err.is_connect() && !err.is_builder();
    if err.is_timeout() {
        return SmError::Timeout { call, timeout, sent };
    }
    if let Some(tls) = find_rustls(err) {
        let mut reason = redactor.scrub(&tls.to_string());
        if let (Some(hint), rustls::Error::InvalidCertificate(_)) = (hint, tls) {
            reason = format!("{reason}; {hint}");
        }
        if !sent {
            return SmError::Tls { call, reason };
        }
        // A TLS failure on an established connection, after the request may have been written.
        return SmError::Transport { call, reason: format!("TLS: {reason}"), sent };
    }
    SmError::Transport { call, reason: redactor.scrub(&chain(err)), sent }
}

/// The error and its causes, joined by `: `, skipping causes whose text the previous one already shows.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The rustls error under a failed request. `io::Error` hides a wrapped error from `source()` (it
/// reports the wrapped error's source instead), so look inside it explicitly.
fn find_rustls<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref)
            && let Some(tls) = find_rustls(inner)
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn finds_rustls_inside_io_errors() {
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        let outer = Outer(io);
        let found = find_rustls(&outer).map(ToString::to_string);
        assert!(found.is_some_and(|t| t.contains("UnknownIssuer")));
        assert!(chain(&outer).starts_with("outer: "));
        assert!(find_rustls(&Outer(std::io::Error::other("plain"))).is_none());
    }

    #[test]
    fn unparsable_pins_are_tls_errors() {
        let err = pinned_tls("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").unwrap_err();
        assert_eq!(err.label(), "tls");
        let err = pinned_tls("no pem here").unwrap_err();
        assert_eq!(err.label(), "tls");
    }
}
