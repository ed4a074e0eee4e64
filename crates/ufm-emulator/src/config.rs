//! How an emulator instance is set up. Credentials live here, so `Debug` redacts them: test
//! output and tracing must never show the password or a token.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::apply::ApplyModel;
use crate::service::ServiceModel;
use crate::wire::Membership;

/// Transport the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    /// TLS with a certificate for `localhost`/`127.0.0.1` signed by a CA generated at start.
    Https,
}

/// What `GET /resources/pkeys/{pkey}` answers for a PKey that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownPkeyGet {
    /// Real UFM: 200 with body `{}`.
    #[default]
    EmptyObject,
    /// What some mocks do: 404.
    NotFound,
}

/// How `GET /resources/pkeys/last_updated` renders its time (both forms exist in the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastUpdatedFormat {
    /// Older UFM: `Thu Sep  3 11:42:39 UTC 2020`.
    #[default]
    Legacy,
    /// Newer UFM: `03-09-2020, 11:42:39`, server-local time without a zone.
    DayFirst,
}

/// Everything `UfmEmulator::start` needs. Build with [`UfmConfig::http`] or
/// [`UfmConfig::https`] and the `with_*` methods.
#[derive(Clone)]
pub struct UfmConfig {
    pub scheme: Scheme,
    pub username: String,
    pub password: String,
    /// Access tokens accepted on `/ufmRestV3`.
    pub tokens: Vec<String>,
    /// Reported as `ufm_release_version`.
    pub version: String,
    /// The management partition's top-level membership (UFM ≥ 6.19 shows one; `None` for
    /// older versions).
    pub management_membership: Option<Membership>,
    pub unknown_pkey_get: UnknownPkeyGet,
    /// Refuse adds of GUIDs the fabric has not discovered (404 for the whole request).
    pub reject_unseen_guids: bool,
    pub last_updated_format: LastUpdatedFormat,
    /// Source of request sequence numbers; `None` uses the process-global counter
    /// ([`crate::global_sequence`]).
    pub sequence: Option<Arc<AtomicU64>>,
    /// Bodies above this size are refused with 413 rather than buffered.
    pub max_body_bytes: usize,
    /// Service time per request and how many requests are served at once.
    pub service: ServiceModel,
    /// How long after its answer a partition change takes effect (default: at once).
    pub apply: ApplyModel,
}

/// UFM's factory-default login, which deployment docs and clients assume.
const DEFAULT_USERNAME: &str = "admin";
const DEFAULT_PASSWORD: &str = "123456";
/// A release recent enough to have the management membership and the token API.
const DEFAULT_VERSION: &str = "6.19.0-7";
/// Room for ~1M GUIDs in one request, far above what any client batches.
const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

impl UfmConfig {
    /// Plain HTTP with UFM's factory defaults.
    pub fn http() -> Self {
        UfmConfig {
            scheme: Scheme::Http,
            username: DEFAULT_USERNAME.to_owned(),
            password: DEFAULT_PASSWORD.to_owned(),
            tokens: Vec::new(),
            version: DEFAULT_VERSION.to_owned(),
            management_membership: Some(Membership::Full),
            unknown_pkey_get: UnknownPkeyGet::EmptyObject,
            reject_unseen_guids: false,
            last_updated_format: LastUpdatedFormat::Legacy,
            sequence: None,
            max_body_bytes: DEFAULT_MAX_BODY,
            service: ServiceModel::instant(),
            apply: ApplyModel::default(),
        }
    }

    /// HTTPS with a freshly generated CA, otherwise as [`UfmConfig::http`].
    pub fn https() -> Self {
        UfmConfig { scheme: Scheme::Https, ..UfmConfig::http() }
    }

    pub fn with_credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = username.into();
        self.password = password.into();
        self
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(token.into());
        self
    }

    /// Shares a sequence counter with other emulators so their request logs interleave.
    pub fn with_sequence(mut self, sequence: Arc<AtomicU64>) -> Self {
        self.sequence = Some(sequence);
        self
    }

    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    pub fn with_unknown_pkey_get(mut self, answer: UnknownPkeyGet) -> Self {
        self.unknown_pkey_get = answer;
        self
    }

    pub fn with_reject_unseen_guids(mut self, on: bool) -> Self {
        self.reject_unseen_guids = on;
        self
    }

    /// Serve requests as `service` says (checked when the emulator starts).
    pub fn with_service(mut self, service: ServiceModel) -> Self {
        self.service = service;
        self
    }

    /// Apply partition changes as `apply` says (checked when the emulator starts).
    pub fn with_apply(mut self, apply: ApplyModel) -> Self {
        self.apply = apply;
        self
    }

    pub fn with_last_updated_format(mut self, format: LastUpdatedFormat) -> Self {
        self.last_updated_format = format;
        self
    }
}

impl Default for UfmConfig {
    fn default() -> Self {
        UfmConfig::http()
    }
}

impl fmt::Debug for UfmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UfmConfig")
            .field("scheme", &self.scheme)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("version", &self.version)
            .field("management_membership", &self.management_membership)
            .field("unknown_pkey_get", &self.unknown_pkey_get)
            .field("reject_unseen_guids", &self.reject_unseen_guids)
            .field("last_updated_format", &self.last_updated_format)
            .field("shared_sequence", &self.sequence.is_some())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("service", &self.service)
            .field("apply", &self.apply)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_credentials() {
        let config = UfmConfig::https().with_credentials("operator", "s3cr3t-pw").with_token("tok-abcdef");
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(!shown.contains("tok-abcdef"), "{shown}");
        assert!(shown.contains("operator"));
        assert!(shown.contains("<redacted>"));
    }
}
