//! NVIDIA UFM, reached over its REST API.

mod client;
pub mod config;
mod http;
mod pin;
mod wire;

pub use client::{MAX_RESPONSE_BYTES, Ufm};
pub use config::{Auth, Scheme, TlsTrust, UfmConfig};
