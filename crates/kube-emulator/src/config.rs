//! Emulator settings. The defaults suit integration tests; scale runs raise the queue sizes.

use crate::store::{GracefulFinish, PodDeletion};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// How the emulator behaves. Construct with `EmulatorConfig::default()` and override fields.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Changes retained per resource for watch resumption. Resuming from an RV older than the
    /// oldest retained change answers 410 Expired. Like the apiserver's watch cache, this is a
    /// count of events, so a burst of writes can expire a watcher that stays away too long.
    pub history_capacity: usize,
    /// Events a watcher may fall behind before it is closed (it then resumes by RV). Also the
    /// lag allowed to in-process subscribers before they see `Lagged`.
    pub watch_queue_capacity: usize,
    /// Paged LIST snapshots kept for continue tokens; older ones answer 410 Expired.
    pub list_snapshot_capacity: usize,
    /// How often a watch with `allowWatchBookmarks=true` receives a BOOKMARK when idle. The
    /// apiserver sends one about every minute; tests use about a second.
    pub bookmark_interval: Duration,
    /// Watch duration when the client sends no `timeoutSeconds` (the apiserver picks 30–60 min).
    pub default_watch_timeout: Duration,
    /// How pod DELETE behaves.
    pub pod_deletion: PodDeletion,
    /// Requests kept in the request log.
    pub request_log_capacity: usize,
    /// Largest accepted request body; the apiserver's limit is 3 MiB.
    pub max_body_bytes: usize,
    /// `gitVersion` reported by `/version`.
    pub git_version: String,
    /// A counter shared with other emulators (the UFM emulator's `global_sequence`, say): each
    /// logged request takes its `order` from it, so tests can order requests across servers.
    /// `None` uses a counter of this emulator's own.
    pub sequence: Option<Arc<AtomicU64>>,
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            history_capacity: 16_384,
            watch_queue_capacity: 16_384,
            list_snapshot_capacity: 32,
            bookmark_interval: Duration::from_secs(5),
            default_watch_timeout: Duration::from_secs(1800),
            // A fast stand-in kubelet: terminating pods disappear within a second, so tests see
            // both the terminating and the gone state without waiting out 30 s grace periods.
            pod_deletion: PodDeletion::Graceful { finish: GracefulFinish::After(Duration::from_secs(1)) },
            request_log_capacity: 10_000,
            max_body_bytes: 3 * 1024 * 1024,
            git_version: "v1.33.0".to_string(),
            sequence: None,
        }
    }
}
