//! The Kubernetes side of ib-kubernetes: watches feed one state task that owns every decision (made by
//! `ib_model`), executors carry out the subnet-manager requests and pod patches it asks for while this
//! replica holds the lease, and an admin server exposes metrics and health.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod call;
pub mod config;
pub mod controller;
pub mod events;
pub mod executors;
pub mod input;
pub mod leader;
pub mod metrics;
pub mod patcher;
pub mod pkey_allocator;
pub mod records;
pub mod resources;
mod sm_change;
pub mod startup;
pub mod state_task;
pub mod watch;

pub use config::Config;
pub use controller::{Controller, ControllerError};
