//! OpenSM, the open subnet manager, through its partitions file (`partitions.conf`), which it shares
//! with the site: our memberships live in one marked block of that file, rewritten atomically, and
//! OpenSM is told to read the file again (`SIGHUP` or a command).
//!
//! - [`partitions`]: the file's format, our block and the site's text around it (pure).
//! - [`file`]: locked reading and atomic replacement of the file.
//! - [`reload`]: telling OpenSM to reload.
//! - [`OpenSm`]: the [`crate::SubnetManager`], with group commit.

pub mod config;
pub mod file;
mod manager;
pub mod partitions;
pub mod reload;

pub use config::{OpenSmConfig, Reload};
pub use manager::{OpenSm, OpenSmStats};
pub use partitions::Membership;
