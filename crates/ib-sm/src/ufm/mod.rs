//! NVIDIA UFM, reached over its REST API.

mod client;
pub mod config;
mod http;
mod redact;
mod wire;

pub use client::Ufm;
pub use config::{Auth, Scheme, TlsTrust, UfmConfig};
