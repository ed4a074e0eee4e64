//! Helpers shared by the emulator scenarios: start a UFM emulator and point an `Ufm` client at it.
#![allow(dead_code)]

use std::time::Duration;

use ib_model::{Guid, PKey};
use ib_sm::secret::Secret;
use ib_sm::ufm::{Auth, Scheme, TlsTrust, UfmConfig};
use ib_sm::{SubnetManager, Ufm};
use ufm_emulator::{RunningUfm, UfmConfig as EmulatorConfig, UfmEmulator};

/// Generous, because the suite must pass on a loaded two-core machine; nothing waits this long when
/// things work.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The emulator's factory login.
pub const USER: &str = "admin";
pub const PASSWORD: &str = "123456";

pub const JSON: &str = "application/json; charset=utf-8";

pub async fn start(config: EmulatorConfig) -> RunningUfm {
    UfmEmulator::start(config).await.expect("emulator starts")
}

pub fn basic(user: &str, password: &str) -> Auth {
    Auth::Basic { username: user.to_owned(), password: Secret::new(password) }
}

/// A client configuration for `ufm`: its address and scheme, trusting exactly its CA over HTTPS.
pub fn config(ufm: &RunningUfm, auth: Auth) -> UfmConfig {
    let (scheme, tls) = match ufm.ca_pem() {
        Some(ca) => (Scheme::Https, TlsTrust::Pinned(ca.to_owned())),
        None => (Scheme::Http, TlsTrust::SystemRoots),
    };
    UfmConfig {
        address: ufm.addr().ip().to_string(),
        scheme,
        port: ufm.addr().port(),
        auth,
        tls,
        request_timeout: DEADLINE,
        confirm_applied: true,
    }
}

/// The client as the controller would build it, with the emulator's default login.
pub fn client(ufm: &RunningUfm) -> Ufm {
    Ufm::new(config(ufm, basic(USER, PASSWORD))).expect("client builds")
}

pub fn pkey(value: u32) -> PKey {
    PKey::new(value).expect("valid pkey")
}

pub fn guid(value: u64) -> Guid {
    Guid::from_u64(value)
}

/// Bounds a call by [`DEADLINE`] so a broken client fails the test instead of hanging it.
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f).await.expect("call ends within the deadline")
}

/// Lists through the trait object, as the controller does.
pub async fn list(sm: &dyn SubnetManager) -> Vec<(String, Guid)> {
    within(sm.list_guids()).await.expect("list succeeds")
}

/// The HTTP status UFM answered, when the error is a refused or failed answer.
pub fn http_status(err: &ib_sm::SmError) -> Option<u16> {
    match err {
        ib_sm::SmError::Status { status, .. } => Some(*status),
        _ => None,
    }
}
