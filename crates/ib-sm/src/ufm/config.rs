//! The UFM plugin's settings, from the Go plugin's `UFM_*` variables plus explicit TLS and token options.
//!
//! Differences from the Go plugin, each deliberate: HTTPS verifies the server by default (system roots,
//! or exactly `UFM_CERTIFICATE`); skipping verification needs `UFM_INSECURE_SKIP_VERIFY=true`; an
//! unparsable certificate or scheme is a startup error instead of a failure at every request; `UFM_TOKEN`
//! selects token authentication on `/ufmRestV3`; requests time out.

use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::env::{EnvError, EnvErrors, EnvMap};
use crate::secret::Secret;

/// Default request timeout: a UFM answering pkey calls slower than this is treated as down, and the
/// request is retried with backoff rather than blocking its partition's queue forever.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting should take a round trip; anything longer is a network problem worth reporting early.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How UFM is reached (`UFM_HTTP_SCHEMA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP: credentials travel in clear.
    Http,
    /// HTTPS, the server verified as `TlsTrust` says.
    Https,
}

/// How the client logs in to UFM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic on `/ufmRest`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// Access token on `/ufmRestV3` (`Authorization: Basic <token>`, as UFM documents it).
    Token(Secret),
}

/// Which server certificates are accepted over HTTPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsTrust {
    /// The platform's roots.
    SystemRoots,
    /// Exactly the certificates of `UFM_CERTIFICATE` (PEM), as the Go plugin does when it is set.
    Pinned(String),
    /// Any certificate: the Go plugin's behaviour without a certificate. Logged as a warning at start.
    InsecureSkipVerify,
}

/// `UFM_USER`: the Go daemon's README creates the Secret with this key, while both daemons read
/// `UFM_USERNAME`. It is accepted as the older spelling, with a warning naming the new key.
pub const LEGACY_USERNAME_VARIABLE: &str = "UFM_USER";

/// What to tell the operator about `UFM_USER`, if it is set: read in place of an unset
/// `UFM_USERNAME`, or ignored beside a set one. Never contains the value.
pub fn legacy_username_warning(env: &EnvMap) -> Option<String> {
    env.get(LEGACY_USERNAME_VARIABLE)?;
    Some(if env.get("UFM_USERNAME").is_some() {
        format!("{LEGACY_USERNAME_VARIABLE} is ignored because UFM_USERNAME is set; remove the older spelling")
    } else {
        format!(
            "{LEGACY_USERNAME_VARIABLE} is the older spelling of UFM_USERNAME and was read in its place; rename the \
             key to UFM_USERNAME (in the Secret ib-kubernetes-ufm-secret when deployed from deployment/)"
        )
    })
}

/// Everything the UFM client needs, read from the `UFM_*` variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UfmConfig {
    /// UFM's host name or IP address (`UFM_ADDRESS`).
    pub address: String,
    /// HTTP or HTTPS (`UFM_HTTP_SCHEMA`).
    pub scheme: Scheme,
    /// UFM's port (`UFM_PORT`).
    pub port: u16,
    /// The credentials.
    pub auth: Auth,
    /// Which server certificates are trusted over HTTPS.
    pub tls: TlsTrust,
    /// How long one request may take, from connecting to the last byte (`UFM_REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// Read a partition back after each change until the change shows, before it counts as done
    /// (`UFM_CONFIRM_APPLIED`, default on): UFM answers a change once it is in its model and applies it
    /// to the fabric afterwards.
    pub confirm_applied: bool,
}

impl UfmConfig {
    /// Reads and validates every `UFM_*` variable, reporting all problems at once. Error messages never
    /// contain the password or the token.
    pub fn from_env(env: &EnvMap) -> Result<Self, EnvErrors> {
        let mut errors = Vec::new();

        let scheme = match env.get("UFM_HTTP_SCHEMA").map(str::to_ascii_lowercase).as_deref() {
            None | Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            Some(_) => {
                errors.push(EnvError::new(
                    "UFM_HTTP_SCHEMA",
                    env.get("UFM_HTTP_SCHEMA").unwrap_or_default(),
                    "must be https or http",
                ));
                Scheme::Https
            }
        };
        let default_port = if scheme == Scheme::Https { 443 } else { 80 };
        let port = match env.u64("UFM_PORT", 0) {
            Ok(0) => default_port,
            Ok(p) if p <= u64::from(u16::MAX) => p as u16,
            Ok(p) => {
                errors.push(EnvError::new("UFM_PORT", p.to_string(), "must be a port number, 1-65535"));
                default_port
            }
            Err(e) => {
                errors.push(e);
                default_port
            }
        };

        let address = env.get("UFM_ADDRESS").map(|a| a.trim().to_owned()).unwrap_or_default();
        if address.is_empty() {
            errors.push(EnvError::new("UFM_ADDRESS", "", "required: the UFM host name or IP address"));
        } else if address.contains(['/', ' ', '@', '?', '#']) {
            // A URL can carry `user:password@`: only a redacted form is shown.
            errors.push(EnvError::new(
                "UFM_ADDRESS",
                redact_userinfo(&address),
                "must be a host name or IP address, not a URL (scheme, port and credentials have variables of \
                 their own: UFM_HTTP_SCHEMA, UFM_PORT, UFM_USERNAME and UFM_PASSWORD or UFM_TOKEN)",
            ));
        }

        if let Some(warning) = legacy_username_warning(env) {
            tracing::warn!("{warning}");
        }
        let username = env.get("UFM_USERNAME").or_else(|| env.get(LEGACY_USERNAME_VARIABLE));
        let auth = match (env.get("UFM_TOKEN"), username, env.get("UFM_PASSWORD")) {
            (Some(token), _, _) => Some(Auth::Token(Secret::new(token))),
            (None, Some(user), Some(password)) => {
                Some(Auth::Basic { username: user.to_owned(), password: Secret::new(password) })
            }
            (None, user, password) => {
                if user.is_none() {
                    errors.push(EnvError::new("UFM_USERNAME", "", "required (or set UFM_TOKEN)"));
                }
                if password.is_none() {
                    errors.push(EnvError::new("UFM_PASSWORD", "", "required (or set UFM_TOKEN)"));
                }
                None
            }
        };

        let insecure = env.bool("UFM_INSECURE_SKIP_VERIFY", false).unwrap_or_else(|e| {
            errors.push(e);
            false
        });
        let certificate = env.get("UFM_CERTIFICATE");
        if let Some(pem) = certificate
            && let Err(reason) = check_pem(pem)
        {
            errors.push(EnvError::new("UFM_CERTIFICATE", format!("<{} bytes>", pem.len()), reason));
        }
        let tls = match (certificate, insecure) {
            (Some(_), true) => {
                errors.push(EnvError::new(
                    "UFM_INSECURE_SKIP_VERIFY",
                    "true",
                    "contradicts UFM_CERTIFICATE, which pins the server certificate; set only one",
                ));
                TlsTrust::InsecureSkipVerify
            }
            (Some(pem), false) => TlsTrust::Pinned(pem.to_owned()),
            (None, true) => TlsTrust::InsecureSkipVerify,
            (None, false) => TlsTrust::SystemRoots,
        };

        let request_timeout = match env.u64("UFM_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT.as_secs()) {
            Ok(0) => {
                errors.push(EnvError::new("UFM_REQUEST_TIMEOUT", "0", "must be at least 1 second"));
                DEFAULT_REQUEST_TIMEOUT
            }
            Ok(s) => Duration::from_secs(s),
            Err(e) => {
                errors.push(e);
                DEFAULT_REQUEST_TIMEOUT
            }
        };

        let confirm_applied = env.bool("UFM_CONFIRM_APPLIED", true).unwrap_or_else(|e| {
            errors.push(e);
            true
        });

        match auth {
            Some(auth) if errors.is_empty() => {
                Ok(UfmConfig { address, scheme, port, auth, tls, request_timeout, confirm_applied })
            }
            _ => Err(EnvErrors(errors)),
        }
    }

    /// `scheme://host:port`, with IPv6 literals bracketed (the Go plugin forgot the brackets).
    pub fn base_url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let host = if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        };
        format!("{scheme}://{host}:{}", self.port)
    }

    /// What an operator should be told at start about how UFM is reached; no credential in any of them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        match (self.scheme, &self.tls) {
            (Scheme::Http, _) => out.push(format!(
                "UFM_HTTP_SCHEMA=http: UFM at {} is reached over plain HTTP; the UFM credentials and every \
                 partition change travel unencrypted and unauthenticated",
                self.base_url()
            )),
            (Scheme::Https, TlsTrust::InsecureSkipVerify) => {
                out.push("UFM_INSECURE_SKIP_VERIFY=true: the UFM server certificate is not verified".to_owned())
            }
            (Scheme::Https, _) => {}
        }
        out
    }

    /// `/ufmRest` for Basic authentication, `/ufmRestV3` for tokens.
    pub fn api_prefix(&self) -> &'static str {
        match self.auth {
            Auth::Basic { .. } => "/ufmRest",
            Auth::Token(_) => "/ufmRestV3",
        }
    }
}

/// What may be shown of an address that is a URL: its scheme and host, with any user information
/// (`user:password@`, found by the last `@`, as a password may hold `/`, `?` or `#`) and anything after
/// the host (a path or query can carry a token) replaced.
fn redact_userinfo(value: &str) -> String {
    let (scheme, rest) = match value.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), value),
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((_, host)) => ("<redacted>@", host),
        None => ("", rest),
    };
    let (host, more) = match rest.find(['/', '?', '#', ' ']) {
        Some(end) => (&rest[..end], "/…"),
        None => (rest, ""),
    };
    format!("{scheme}{userinfo}{host}{more}")
}

/// At least one certificate, and nothing unreadable.
fn check_pem(pem: &str) -> Result<(), String> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        cert.map_err(|e| format!("is not readable PEM: {e}"))?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no certificate: expected PEM text with -----BEGIN CERTIFICATE-----".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `ufm.example` (openssl req -x509, P-256).
    const PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBgjCCASegAwIBAgIUQwyQo/vqYKC4ctaRn7iYHuH6EY8wCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLdWZtLmV4YW1wbGUwHhcNMjYxMTI3MTcxNTU3WhcNMzYxMTI0
MTcxNTU3WjAWMRQwEgYDVQQDDAt1Zm0uZXhhbXBsZTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABJMKEwKNfOel+/a2q77sICEG7BPKS6hwrdsPjut4hoaI/0PUPN7y
9MLQbabOMmEWc/yBCPojOTZij6vy1P+QH4mjUzBRMB0GA1UdDgQWBBTYElbQ5xoh
ZyjZV8LGhY4V73GP/jAfBgNVHSMEGDAWgBTYElbQ5xohZyjZV8LGhY4V73GP/jAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCfyyEAHYG4bBgscFzs
jfPF3KKfTJ7+ZlnZKRoXIXm8rQIhAKSI0u4cPW3gzkIc58tv6TlUlClnmoFl2fVw
xBswlBpW
-----END CERTIFICATE-----
";

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![("UFM_USERNAME", "admin"), ("UFM_PASSWORD", "canary-pw"), ("UFM_ADDRESS", "ufm.example")]
    }

    #[test]
    fn go_defaults_with_verification_on() {
        let c = UfmConfig::from_env(&env(&base())).unwrap();
        assert_eq!((c.scheme, c.port, c.tls.clone()), (Scheme::Https, 443, TlsTrust::SystemRoots));
        assert_eq!(c.base_url(), "https://ufm.example:443");
        assert_eq!(c.api_prefix(), "/ufmRest");
        assert_eq!(c.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert!(c.confirm_applied, "changes are read back unless told otherwise");
        assert!(!format!("{c:?}").contains("canary-pw"));
    }

    #[test]
    fn confirming_changes_can_be_turned_off_and_a_bad_value_is_named() {
        let mut e = base();
        e.push(("UFM_CONFIRM_APPLIED", "false"));
        assert!(!UfmConfig::from_env(&env(&e)).unwrap().confirm_applied);
        let mut e = base();
        e.push(("UFM_CONFIRM_APPLIED", "sometimes"));
        let err = UfmConfig::from_env(&env(&e)).unwrap_err().to_string();
        assert!(err.contains("UFM_CONFIRM_APPLIED") && err.contains("sometimes"), "{err}");
    }

    #[test]
    fn http_port_and_schema_case() {
        let mut e = base();
        e.push(("UFM_HTTP_SCHEMA", "HTTP"));
        let c = UfmConfig::from_env(&env(&e)).unwrap();
        assert_eq!((c.scheme, c.port), (Scheme::Http, 80));
        e.push(("UFM_PORT", "8080"));
        assert_eq!(UfmConfig::from_env(&env(&e)).unwrap().base_url(), "http://ufm.example:8080");
        let mut e = base();
        e.push(("UFM_PORT", "0"));
        assert_eq!(UfmConfig::from_env(&env(&e)).unwrap().port, 443);
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let mut e = base();
        e[2] = ("UFM_ADDRESS", "fd00::1");
        assert_eq!(UfmConfig::from_env(&env(&e)).unwrap().base_url(), "https://[fd00::1]:443");
    }

    #[test]
    fn missing_credentials_are_all_reported_without_values() {
        let err = UfmConfig::from_env(&env(&[("UFM_PASSWORD", "")])).unwrap_err();
        let vars: Vec<&str> = err.0.iter().map(|e| e.variable).collect();
        assert_eq!(vars, ["UFM_ADDRESS", "UFM_USERNAME", "UFM_PASSWORD"]);
        let err = UfmConfig::from_env(&env(&[("UFM_ADDRESS", "u"), ("UFM_PASSWORD", "canary-pw")])).unwrap_err();
        assert!(!err.to_string().contains("canary-pw"), "{err}");
        assert!(err.to_string().contains("UFM_USERNAME"));
    }

    #[test]
    fn token_replaces_basic_auth() {
        let c = UfmConfig::from_env(&env(&[("UFM_ADDRESS", "u"), ("UFM_TOKEN", "canary-token")])).unwrap();
        assert_eq!(c.api_prefix(), "/ufmRestV3");
        assert!(!format!("{c:?}").contains("canary-token"));
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        for (var, value, words) in [
            ("UFM_PORT", "https", "whole number"),
            ("UFM_PORT", "70000", "1-65535"),
            ("UFM_HTTP_SCHEMA", "ftp", "https or http"),
            ("UFM_INSECURE_SKIP_VERIFY", "maybe", "true or false"),
            ("UFM_REQUEST_TIMEOUT", "0", "at least 1"),
            ("UFM_ADDRESS", "https://ufm/", "not a URL"),
        ] {
            let mut e: Vec<(&str, &str)> = base().into_iter().filter(|(k, _)| *k != var).collect();
            e.push((var, value));
            let err = UfmConfig::from_env(&env(&e)).unwrap_err().to_string();
            assert!(err.contains(var) && err.contains(words), "{err}");
        }
    }

    #[test]
    fn an_address_with_credentials_is_refused_without_echoing_them() {
        for address in [
            "https://admin:canary-pw@ufm.example/",
            "admin:canary-pw@ufm.example",
            "canary-pw@ufm.example",
            "https://admin:canary/pw@ufm.example:443/ufmRest",
            "admin:canary@pw@ufm.example",
            "https://ufm.example@/?token=canary",
        ] {
            let mut e = base();
            e[2] = ("UFM_ADDRESS", address);
            let err = UfmConfig::from_env(&env(&e)).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("canary"), "{shown}");
            assert!(shown.contains("UFM_ADDRESS") && shown.contains("not a URL"), "{shown}");
            assert!(shown.contains("<redacted>@"), "a redacted form: {shown}");
        }
        assert_eq!(redact_userinfo("https://u:p@ufm/x"), "https://<redacted>@ufm/…");
        assert_eq!(redact_userinfo("https://ufm.example/?token=canary"), "https://ufm.example/…");
        assert_eq!(redact_userinfo("ufm canary"), "ufm/…");
    }

    #[test]
    fn ufm_user_is_the_older_spelling_of_ufm_username() {
        let mut e = base();
        e.retain(|(k, _)| *k != "UFM_USERNAME");
        e.push(("UFM_USER", "legacy-admin"));
        let config = UfmConfig::from_env(&env(&e)).unwrap();
        assert!(matches!(&config.auth, Auth::Basic { username, .. } if username == "legacy-admin"));
        let warning = legacy_username_warning(&env(&e)).unwrap();
        assert!(warning.contains("UFM_USER ") && warning.contains("rename the key to UFM_USERNAME"), "{warning}");
        assert!(!warning.contains("legacy-admin") && !warning.contains("canary-pw"), "{warning}");

        // Both set: the new key wins, and the warning says the old one is ignored.
        e.push(("UFM_USERNAME", "admin"));
        let config = UfmConfig::from_env(&env(&e)).unwrap();
        assert!(matches!(&config.auth, Auth::Basic { username, .. } if username == "admin"));
        assert!(legacy_username_warning(&env(&e)).unwrap().contains("UFM_USER is ignored"));

        // An empty UFM_USER (an optional Secret key left blank) is unset, as every variable is.
        let mut e = base();
        e.retain(|(k, _)| *k != "UFM_USERNAME");
        e.push(("UFM_USER", ""));
        let err = UfmConfig::from_env(&env(&e)).unwrap_err();
        assert!(err.to_string().contains("UFM_USERNAME"), "{err}");
        assert!(legacy_username_warning(&env(&base())).is_none());
    }

    #[test]
    fn plain_http_and_skipped_verification_are_warned_about_without_credentials() {
        let mut e = base();
        e.push(("UFM_HTTP_SCHEMA", "http"));
        let warnings = UfmConfig::from_env(&env(&e)).unwrap().warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("plain HTTP") && warnings[0].contains("http://ufm.example:80"), "{warnings:?}");
        assert!(!warnings[0].contains("canary-pw") && !warnings[0].contains("admin"), "{warnings:?}");
        let mut e = base();
        e.push(("UFM_INSECURE_SKIP_VERIFY", "true"));
        let warnings = UfmConfig::from_env(&env(&e)).unwrap().warnings();
        assert!(warnings.len() == 1 && warnings[0].contains("not verified"), "{warnings:?}");
        assert!(UfmConfig::from_env(&env(&base())).unwrap().warnings().is_empty());
    }

    #[test]
    fn certificate_is_pinned_or_refused() {
        let mut e = base();
        e.push(("UFM_CERTIFICATE", PEM));
        assert_eq!(UfmConfig::from_env(&env(&e)).unwrap().tls, TlsTrust::Pinned(PEM.into()));
        e.push(("UFM_INSECURE_SKIP_VERIFY", "true"));
        assert!(UfmConfig::from_env(&env(&e)).unwrap_err().to_string().contains("contradicts"));

        let mut e = base();
        e.push(("UFM_CERTIFICATE", "TUlJQmVEQ0NBU"));
        let err = UfmConfig::from_env(&env(&e)).unwrap_err().to_string();
        assert!(err.contains("UFM_CERTIFICATE") && err.contains("no certificate"), "{err}");
        let mut e = base();
        e.push(("UFM_CERTIFICATE", "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"));
        assert!(UfmConfig::from_env(&env(&e)).is_err());

        let mut e = base();
        e.push(("UFM_INSECURE_SKIP_VERIFY", "true"));
        assert_eq!(UfmConfig::from_env(&env(&e)).unwrap().tls, TlsTrust::InsecureSkipVerify);
    }
}
