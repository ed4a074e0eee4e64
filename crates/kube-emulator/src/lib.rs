//! An in-process Kubernetes API server emulator (pods, NADs, leases, events, the controller's
//! GuidBlock ownership records, plus the types of the deployment manifests: ConfigMaps, Secrets,
//! ServiceAccounts, Deployments, RBAC, CustomResourceDefinitions and ValidatingAdmissionPolicies
//! with their bindings, stored only) for tests.
//!
//! The real controller, kube-rs client and kubectl talk to it over plain HTTP/1.1 on loopback,
//! so tests exercise the same LIST/WATCH/PATCH wire protocol a cluster serves: one global
//! resourceVersion, paged LISTs pinned to a snapshot, watches with replay, bookmarks and
//! in-stream 410s, optimistic concurrency, finalizers and graceful pod deletion, and the exact
//! `Status` errors clients branch on. Objects are stored as untyped JSON.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kube_emulator::{EmulatorConfig, KubeEmulator, Resource};
//! let emulator = KubeEmulator::start(EmulatorConfig::default()).await?;
//! let handle = emulator.handle();
//! handle.create(Resource::Pods, serde_json::json!({
//!     "metadata": { "name": "p", "namespace": "default" }
//! }))?;
//! println!("kube::Config::new({:?})", emulator.url());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Module map: `server` (HTTP routing) → `store` (state, RVs, history, fan-out) with `patch`,
//! `selector`, `meta`; `watch` (event streams); `table` and `discovery` (kubectl); `control`,
//! `faults` and `request_log` (the in-process handle); `status` (errors on the wire).
#![forbid(unsafe_code)]

mod config;
mod control;
mod discovery;
mod emulator;
mod event_views;
mod faults;
mod meta;
mod openapi;
mod patch;
mod protobuf;
mod request_log;
mod resource;
mod selector;
mod server;
mod status;
mod store;
mod table;
mod watch;

pub use config::EmulatorConfig;
pub use control::{DeleteOutcome, EmulatorHandle, Subscription, SubscriptionError};
pub use emulator::{KubeEmulator, RunningEmulator, StartError};
pub use faults::{Fault, FaultRule};
pub use request_log::RequestRecord;
pub use resource::Resource;
pub use status::ApiError;
pub use store::{Change, ChangeKind, GracefulFinish, PodDeletion};
