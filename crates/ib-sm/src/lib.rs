//! Subnet managers for ib-kubernetes: how partition membership reaches the fabric.
//!
//! Knows nothing of Kubernetes. Configuration is read from an [`env::EnvMap`], never from the process
//! environment directly, so that tests pass values in. The controller holds one
//! `Arc<dyn` [`SubnetManager`]`>`: the built-in [`Ufm`], [`OpenSm`] or [`Noop`], chosen by [`builtin`].
#![forbid(unsafe_code)]

pub mod env;
pub mod exec;
pub mod manager;
pub mod noop;
pub mod opensm;
mod redact;
pub mod secret;
pub mod ufm;

use std::sync::Arc;

pub use env::EnvMap;
pub use exec::{ExecConfig, ExecPlugin};
pub use manager::{BoxFuture, SmError, SubnetManager};
pub use noop::Noop;
pub use opensm::OpenSm;
pub use secret::Secret;
pub use ufm::Ufm;

/// Why a built-in subnet manager could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    #[error(transparent)]
    Env(#[from] env::EnvErrors),
    #[error(transparent)]
    Sm(#[from] SmError),
}

/// The built-in manager called `name` (`ufm`, `opensm` or `noop`, as `DAEMON_SM_PLUGIN` names them), configured
/// from `env`; `None` when no built-in has that name.
pub fn builtin(name: &str, env: &EnvMap) -> Result<Option<Arc<dyn SubnetManager>>, BuiltinError> {
    match name {
        "noop" => Ok(Some(Arc::new(Noop))),
        "ufm" => {
            let config = ufm::UfmConfig::from_env(env)?;
            Ok(Some(Arc::new(Ufm::new(config)?)))
        }
        "opensm" => Ok(Some(Arc::new(OpenSm::new(opensm::OpenSmConfig::from_env(env)?)))),
        _ => Ok(None),
    }
}
