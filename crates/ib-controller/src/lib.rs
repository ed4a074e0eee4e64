//! The Kubernetes side of ib-kubernetes: configuration now; watchers, the state task, executors,
//! leader election and the admin server build on it.
#![forbid(unsafe_code)]

pub mod config;

pub use config::Config;
