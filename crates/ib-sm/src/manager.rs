//! The contract every subnet manager meets, and the one error type the controller sees.
//!
//! The trait returns boxed futures rather than using `async fn` so that the controller can hold any
//! implementation as `Arc<dyn SubnetManager>` (chosen at start from `DAEMON_SM_PLUGIN`) without an extra
//! crate. Implementations only report outcomes; the controller records metrics from [`SmError::label`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ib_model::partition::{PartitionOptions, Qos};
use ib_model::{Guid, PKey, SmListing};

/// A `Send` future borrowed from the subnet manager for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A call that changes or checks the subnet manager: done, or why not.
pub type SmCall<'a> = BoxFuture<'a, Result<(), SmError>>;

/// How partition membership reaches the fabric.
///
/// Every method may be called concurrently from several tasks. Calls are not retried inside an
/// implementation: the controller owns backoff, so that one policy covers every kind of manager.
pub trait SubnetManager: Send + Sync + fmt::Debug {
    /// Short name for log lines (`ufm`, `noop`).
    fn name(&self) -> &str;

    /// Checks the manager is reachable and accepts our credentials.
    fn validate(&self) -> SmCall<'_>;

    /// Makes every GUID a full member of `pkey`. Idempotent; duplicates in `guids` are harmless.
    fn add_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a>;

    /// Makes every GUID a member of `pkey` as `options` say: full or limited, at index 0 of the port's
    /// P_Key table or not, with or without IPoIB. When `options.qos` is set, the partition is given that
    /// QoS too, in the same call: the caller sets it when the partition is new or was recreated (a
    /// subnet manager deletes a partition, its QoS with it, when its last member leaves), not on every
    /// add, since a QoS change makes some subnet managers resweep the fabric.
    ///
    /// Idempotent like [`SubnetManager::add_guids`], which is this call with the default options on
    /// every built-in manager. A manager that cannot apply non-default options refuses them with
    /// [`SmError::Config`] before anything is sent.
    fn add_guids_with<'a>(&'a self, pkey: PKey, guids: &'a [Guid], options: &'a PartitionOptions) -> SmCall<'a> {
        if *options == PartitionOptions::default() {
            return self.add_guids(pkey, guids);
        }
        let name = self.name().to_owned();
        Box::pin(async move { Err(unsupported_options(&name, pkey)) })
    }

    /// [`SubnetManager::add_guids_with`], giving the partition `name` if the call creates it. A manager
    /// without partition names ignores `name`.
    fn add_guids_named<'a>(
        &'a self,
        pkey: PKey,
        guids: &'a [Guid],
        options: &'a PartitionOptions,
        name: Option<&'a str>,
    ) -> SmCall<'a> {
        let _ = name;
        self.add_guids_with(pkey, guids, options)
    }

    /// Sets the QoS of an existing partition. A manager without partition QoS refuses with
    /// [`SmError::Config`].
    fn set_qos<'a>(&'a self, pkey: PKey, qos: Qos) -> SmCall<'a> {
        let _ = qos;
        let name = self.name().to_owned();
        Box::pin(async move {
            Err(SmError::Config(format!("the {name} subnet manager cannot set the QoS of partition {pkey}")))
        })
    }

    /// When the subnet manager last applied a change to its partitions, as it writes it (UFM's
    /// `last_updated`: a server-local time whose format differs between versions, so only compare two
    /// answers for equality). `None`: the manager does not say (every change is in effect once its call
    /// returned, or there is no way to tell).
    fn last_updated(&self) -> BoxFuture<'_, Result<Option<String>, SmError>> {
        Box::pin(async { Ok(None) })
    }

    /// The GUIDs of `pkey` as the subnet manager has them in effect; `None` when it has no such
    /// partition. The default reads the whole listing, where a partition without members cannot be told
    /// from a missing one.
    fn partition_members(&self, pkey: PKey) -> BoxFuture<'_, Result<Option<Vec<Guid>>, SmError>> {
        Box::pin(async move {
            let listing = self.list_guids().await?;
            let wanted = ib_model::membership::Partition::Managed(pkey);
            let members: Vec<Guid> = listing
                .into_iter()
                .filter(|(name, _)| ib_model::membership::Partition::from_sm_name(name) == wanted)
                .map(|(_, g)| g)
                .collect();
            Ok((!members.is_empty()).then_some(members))
        })
    }

    /// Whether a change this manager answered may not be in effect yet (UFM answers once the change is
    /// in its model and applies it to the fabric later). The caller then reads the partition back
    /// ([`SubnetManager::partition_members`]) before it relies on the change.
    fn applies_later(&self) -> bool {
        false
    }

    /// Ends the membership of every GUID in `pkey`; GUIDs that are not members are not an error.
    fn remove_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a>;

    /// Every (partition, GUID) membership of the fabric, the partition named exactly as the manager
    /// writes it (UFM: `0x5`, `0x7fff`), including partitions and GUIDs ib-kubernetes does not manage.
    fn list_guids(&self) -> BoxFuture<'_, Result<Vec<(String, Guid)>, SmError>>;

    /// What [`SubnetManager::list_guids`] lists, partition by partition: each partition's name once. The
    /// controller reads the fabric this way; the default groups `list_guids`, a manager whose answer is
    /// grouped already (UFM) reads it so directly and need not build a pair per membership.
    fn list_partitions(&self) -> BoxFuture<'_, Result<SmListing, SmError>> {
        Box::pin(async move { Ok(self.list_guids().await?.into_iter().collect()) })
    }

    /// The longest time one call of this manager may take, any wait for a concurrency slot included:
    /// every method's future ends with a result or an error by then. A caller that bounds a call with
    /// its own timeout sets it slightly above this, so that the manager's own, more precise, error is
    /// the one reported.
    fn call_timeout(&self) -> Duration;
}

/// The refusal of [`SubnetManager::add_guids_with`] by a manager that cannot apply partition options.
pub(crate) fn unsupported_options(manager: &str, pkey: PKey) -> SmError {
    SmError::Config(format!(
        "the {manager} subnet manager cannot apply partition options (limited membership, index0, ip_over_ib, \
         QoS); nothing was sent for partition {pkey}"
    ))
}

/// Longest part of an error response kept in an [`SmError::Status`]: enough for UFM's one-line JSON
/// errors, small enough that an HTML error page cannot flood a log line.
pub const BODY_EXCERPT_BYTES: usize = 512;

/// Why a subnet-manager call failed. Messages name the call and what went wrong, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmError {
    /// The request did not complete: connection refused or reset, DNS, protocol errors; an exec plugin
    /// that could not be started, crashed or exited non-zero without a JSON error.
    ///
    /// `sent`: the request may have reached the subnet manager (it was being written or had been, or the
    /// plugin was running), so the change may have been applied. `false` only when it certainly did not
    /// (connection refused, name resolution, a plugin that could not be started).
    #[error("{call}: cannot reach the subnet manager: {reason}")]
    Transport {
        /// The call: method and path, or the plugin command.
        call: String,
        /// Why, in words.
        reason: String,
        /// Whether the request may have reached the subnet manager.
        sent: bool,
    },
    /// No complete answer within the configured time. `sent` as for [`SmError::Transport`]: `false`
    /// when the time ran out before the request could have reached the subnet manager (connecting, or
    /// waiting for an exec-plugin slot or for the protocol version).
    #[error("{call}: no answer within {timeout:?}")]
    Timeout {
        /// The call: method and path, or the plugin command.
        call: String,
        /// The time allowed.
        timeout: Duration,
        /// Whether the request may have reached the subnet manager.
        sent: bool,
    },
    /// An answer other than success; `body` is an excerpt of at most [`BODY_EXCERPT_BYTES`].
    #[error("{call}: status {status}, expected 200: {body}")]
    Status {
        /// The call: method and path, or the plugin command.
        call: String,
        /// The HTTP status.
        status: u16,
        /// An excerpt of the answer's body.
        body: String,
    },
    /// A success whose content could not be understood.
    #[error("{call}: unreadable response: {reason}")]
    Decode {
        /// The call: method and path, or the plugin command.
        call: String,
        /// Why, in words.
        reason: String,
    },
    /// The server's certificate was refused, or TLS could not be set up: before any request was sent.
    #[error("{call}: TLS: {reason}")]
    Tls {
        /// The call: method and path, or the plugin command.
        call: String,
        /// Why, in words.
        reason: String,
    },
    /// The manager cannot be built from its settings.
    #[error("invalid subnet manager configuration: {0}")]
    Config(String),
    /// An exec plugin reported an error (its JSON error object: `code`, and `msg` with any `details`).
    /// `outcome_unknown` is the object's `outcomeUnknown` or, when the plugin does not say, whether the
    /// code leaves it open (see [`crate::exec::protocol::ErrorResult::outcome_unknown`]).
    #[error("{call}: plugin error {code}: {msg}")]
    Plugin {
        /// The call: method and path, or the plugin command.
        call: String,
        /// The plugin's error code.
        code: u32,
        /// The plugin's message.
        msg: String,
        /// Whether the change may nevertheless have been applied.
        outcome_unknown: bool,
    },
    /// A subnet manager driven through local files and signals (OpenSM) could not apply the call: its
    /// file is missing, unreadable, or holds what must not be overwritten, or OpenSM could not be told
    /// to reload. `outcome_unknown` as for [`SmError::Plugin`].
    #[error("{call}: {reason}")]
    Local {
        /// The call: method and path, or the plugin command.
        call: String,
        /// Why, in words.
        reason: String,
        /// Whether the change may nevertheless have been applied.
        outcome_unknown: bool,
    },
}

impl SmError {
    /// A short, fixed label per kind, for metric outcomes.
    pub fn label(&self) -> &'static str {
        match self {
            SmError::Transport { .. } => "transport",
            SmError::Timeout { .. } => "timeout",
            SmError::Status { .. } => "status",
            SmError::Decode { .. } => "decode",
            SmError::Tls { .. } => "tls",
            SmError::Config(_) => "config",
            SmError::Plugin { .. } => "plugin",
            SmError::Local { .. } => "local",
        }
    }

    /// Whether a write that failed with this error may nevertheless have been applied by the subnet
    /// manager. `true`: the request may have reached it and no answer says it was refused (a timeout or
    /// a broken connection after sending, a 5xx or other non-4xx answer, a success whose body could not
    /// be read, an exec plugin killed on timeout or dead without a JSON error); the membership must be
    /// treated as possibly present until a listing settles it. `false`: it certainly was not applied
    /// (connection refused, a certificate refused before anything was sent, a 4xx answer, a
    /// configuration error, a plugin's JSON error that says so).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            SmError::Transport { sent, .. } | SmError::Timeout { sent, .. } => *sent,
            // 4xx: the request was refused as a whole. Anything else but 200 (5xx, a redirect left
            // unfollowed, 201/204) leaves the effect open.
            SmError::Status { status, .. } => !(400..500).contains(status),
            // The manager answered success (UFM's 200, a plugin's exit status 0) with something that
            // cannot be read: the change may well be in place.
            SmError::Decode { .. } => true,
            SmError::Tls { .. } | SmError::Config(_) => false,
            SmError::Plugin { outcome_unknown, .. } | SmError::Local { outcome_unknown, .. } => *outcome_unknown,
        }
    }
}

/// The first `max` bytes of `text`, cut at a character boundary, marked with `…` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_per_kind() {
        let call = || "GET /x".to_owned();
        let all = [
            SmError::Transport { call: call(), reason: "r".into(), sent: false },
            SmError::Timeout { call: call(), timeout: Duration::from_secs(1), sent: true },
            SmError::Status { call: call(), status: 500, body: String::new() },
            SmError::Decode { call: call(), reason: "r".into() },
            SmError::Tls { call: call(), reason: "r".into() },
            SmError::Config("c".into()),
            SmError::Plugin { call: call(), code: 5, msg: "m".into(), outcome_unknown: true },
            SmError::Local { call: call(), reason: "r".into(), outcome_unknown: false },
        ];
        let labels: std::collections::BTreeSet<_> = all.iter().map(SmError::label).collect();
        assert_eq!(labels.len(), all.len());
    }

    #[test]
    fn outcome_is_unknown_only_when_the_write_may_have_been_applied() {
        let call = || "POST /ufmRest/resources/pkeys (pkey 0x0005, 1 GUIDs)".to_owned();
        let t = Duration::from_secs(30);
        let status = |status| SmError::Status { call: call(), status, body: String::new() };
        let plugin = |code, outcome_unknown| SmError::Plugin { call: call(), code, msg: "m".into(), outcome_unknown };
        let unknown = [
            SmError::Timeout { call: call(), timeout: t, sent: true },
            SmError::Transport { call: call(), reason: "connection reset".into(), sent: true },
            status(500),
            status(502),
            status(503),
            status(201),
            status(302),
            SmError::Decode { call: call(), reason: "body larger than the limit".into() },
            plugin(5, true),
        ];
        let not_applied = [
            SmError::Timeout { call: call(), timeout: t, sent: false },
            SmError::Transport { call: call(), reason: "connection refused".into(), sent: false },
            SmError::Tls { call: call(), reason: "invalid peer certificate: UnknownIssuer".into() },
            status(400),
            status(401),
            status(403),
            status(404),
            status(499),
            SmError::Config("UFM_TOKEN".into()),
            plugin(6, false),
        ];
        for e in &unknown {
            assert!(e.outcome_unknown(), "{e:?}");
        }
        for e in &not_applied {
            assert!(!e.outcome_unknown(), "{e:?}");
        }
    }

    #[test]
    fn status_message_names_call_and_code() {
        let e = SmError::Status { call: "POST /ufmRest/resources/pkeys".into(), status: 503, body: "down".into() };
        assert_eq!(e.to_string(), "POST /ufmRest/resources/pkeys: status 503, expected 200: down");
    }

    #[test]
    fn excerpts_cut_at_char_boundaries() {
        assert_eq!(excerpt("short", 10), "short");
        let long = "é".repeat(10); // 20 bytes
        let cut = excerpt(&long, 5);
        assert_eq!(cut, "éé…");
    }

    #[test]
    fn usable_as_a_trait_object() {
        fn takes(_: std::sync::Arc<dyn SubnetManager>) {}
        takes(std::sync::Arc::new(crate::Noop));
    }
}
