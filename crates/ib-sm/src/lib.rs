//! Subnet managers for ib-kubernetes: how partition membership reaches the fabric.
//!
//! Knows nothing of Kubernetes. Configuration is read from an [`env::EnvMap`], never from the process
//! environment directly, so that tests pass values in. The controller holds one
//! `Arc<dyn` [`SubnetManager`]`>`: the built-in [`Ufm`], [`OpenSm`] or [`Noop`], or an
//! [`ExecPlugin`]; the controller chooses among them from its configuration.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod env;
pub mod exec;
pub mod manager;
pub mod noop;
pub mod opensm;
mod redact;
pub mod secret;
pub mod ufm;

pub use env::EnvMap;
pub use exec::{ExecConfig, ExecPlugin};
pub use manager::{BoxFuture, SmCall, SmError, SubnetManager};
pub use noop::Noop;
pub use opensm::OpenSm;
pub use secret::Secret;
pub use ufm::Ufm;
