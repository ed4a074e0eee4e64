//! The one HTTP client a [`super::Ufm`] uses, and how the HTTP stack's failures become [`SmError`]s.
//!
//! rustls runs on the ring provider, the one kube-rs uses, so the process carries a single TLS stack.

use std::error::Error as StdError;
use std::time::Duration;

use super::config::{CONNECT_TIMEOUT, Scheme, TlsTrust, UfmConfig};
use super::redact::Redactor;
use crate::manager::SmError;

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
            TlsTrust::Pinned(pem) => builder.tls_certs_only(pinned_roots(pem)?),
            TlsTrust::InsecureSkipVerify => builder.tls_danger_accept_invalid_certs(true),
        };
    }
    builder.build().map_err(|e| SmError::Config(format!("building the HTTP client: {}", chain(&e))))
}

/// Exactly the PEM's certificates. Unlike the Go plugin, which silently ended up trusting nothing, a
/// certificate that does not parse stops the start.
fn pinned_roots(pem: &str) -> Result<Vec<reqwest::Certificate>, SmError> {
    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| SmError::Tls { call: SETUP.into(), reason: format!("UFM_CERTIFICATE: {}", chain(&e)) })?;
    if certs.is_empty() {
        return Err(SmError::Tls { call: SETUP.into(), reason: "UFM_CERTIFICATE holds no certificate".into() });
    }
    Ok(certs)
}

/// Sorts a failed request: a timeout, a refused certificate, or any other transport failure.
pub fn classify(call: &str, timeout: Duration, err: &reqwest::Error, redactor: &Redactor) -> SmError {
    let call = call.to_owned();
    if err.is_timeout() {
        return SmError::Timeout { call, timeout };
    }
    if let Some(tls) = find_rustls(err) {
        return SmError::Tls { call, reason: redactor.scrub(&tls.to_string()) };
    }
    SmError::Transport { call, reason: redactor.scrub(&chain(err)) }
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
        let err = pinned_roots("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").unwrap_err();
        assert_eq!(err.label(), "tls");
        let err = pinned_roots("no pem here").unwrap_err();
        assert_eq!(err.label(), "tls");
    }
}
