//! The `noop` subnet manager: accepts everything and holds nothing, like the Go noop plugin. For clusters
//! whose partitions are managed elsewhere, and for GUID-only use.

use std::time::Duration;

use ib_model::partition::PartitionOptions;
use ib_model::{Guid, PKey};

use crate::manager::{BoxFuture, SmCall, SmError, SubnetManager};

/// Accepts every call and remembers nothing, like the Go daemon's noop plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

impl SubnetManager for Noop {
    fn name(&self) -> &str {
        "noop"
    }

    fn validate(&self) -> SmCall<'_> {
        Box::pin(async {
            tracing::info!("noop subnet manager: validate");
            Ok(())
        })
    }

    fn add_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a> {
        Box::pin(async move {
            tracing::info!(%pkey, guids = guids.len(), "noop subnet manager: add guids");
            Ok(())
        })
    }

    /// Options are accepted and dropped like everything else: noop holds nothing.
    fn add_guids_with<'a>(&'a self, pkey: PKey, guids: &'a [Guid], options: &'a PartitionOptions) -> SmCall<'a> {
        Box::pin(async move {
            tracing::info!(%pkey, guids = guids.len(), membership = %options.membership, "noop subnet manager: add guids");
            Ok(())
        })
    }

    fn set_qos<'a>(&'a self, pkey: PKey, _qos: ib_model::partition::Qos) -> SmCall<'a> {
        Box::pin(async move {
            tracing::info!(%pkey, "noop subnet manager: set qos");
            Ok(())
        })
    }

    fn remove_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a> {
        Box::pin(async move {
            tracing::info!(%pkey, guids = guids.len(), "noop subnet manager: remove guids");
            Ok(())
        })
    }

    fn list_guids(&self) -> BoxFuture<'_, Result<Vec<(String, Guid)>, SmError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Every partition exists, empty: partitions are managed elsewhere, so a setting that forbids
    /// creating them must not hold pods back.
    fn partition_members(&self, _pkey: PKey) -> BoxFuture<'_, Result<Option<Vec<Guid>>, SmError>> {
        Box::pin(async { Ok(Some(Vec::new())) })
    }

    /// Nothing waits: every call answers at once.
    fn call_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}
