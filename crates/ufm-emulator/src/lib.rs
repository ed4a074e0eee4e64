//! An in-process NVIDIA UFM REST emulator (partition keys) for tests.
//!
//! Serves UFM's partition-key REST API (add, remove, list, version) on loopback over HTTP or
//! HTTPS, with UFM's observable semantics, so the real controller's UFM client can be tested
//! over a real socket. A [`UfmHandle`] lets the test inspect and seed the fabric, read every
//! request, inject faults, and set how long UFM takes per request and how many requests it
//! serves at once ([`ServiceModel`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ufm_emulator::StartError> {
//! use ufm_emulator::{UfmConfig, UfmEmulator};
//! let ufm = UfmEmulator::start(UfmConfig::https()).await?;
//! let url = ufm.base_url(); // https://127.0.0.1:<port>
//! let ca = ufm.ca_pem().map(str::to_owned); // trust exactly this
//! let members = ufm.handle().members(0x5);
//! ufm.shutdown().await;
//! # let _ = (url, ca, members); Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod api;
mod apply;
mod auth;
mod config;
mod control;
mod dispatch;
mod faults;
mod journal;
mod routes;
mod server;
mod service;
mod state;
mod tls;
mod wire;

pub use apply::{ApplyError, ApplyModel};
pub use auth::TokenInfo;
pub use axum::http::Method;
pub use config::{LastUpdatedFormat, Scheme, UfmConfig, UnknownPkeyGet};
pub use control::UfmHandle;
pub use faults::{FaultAction, FaultId, FaultRule};
pub use journal::{RequestRecord, global_sequence};
pub use routes::Endpoint;
pub use server::{RunningUfm, StartError, UfmEmulator};
pub use service::{ServiceError, ServiceModel, ServiceSpan};
pub use state::{Fabric, Member, Partition, default_name};
pub use tls::TlsError;
pub use wire::{Guid, MANAGEMENT_PKEY, Membership, Qos, WireError, format_pkey};
