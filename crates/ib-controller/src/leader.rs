//! Leader election with a client-go-compatible Lease lock.
//!
//! The Lease is `ib-kubernetes-leader` in `POD_NAMESPACE` and the holder identity `<node>_<pod uid>`,
//! exactly as the Go daemon writes them, so Go and Rust replicas never lead at the same time during a
//! migration. The lock uses only GET, POST and PUT with the Lease's resourceVersion (client-go's
//! `LeaseLock`), and, like client-go, judges a foreign lease expired by the local time at which its
//! record was last seen to change, never by the remote clock.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tracing::{debug, info, info_span, warn};

use crate::call::{CallError, bounded};
use crate::config::LeaseTimings;

/// The name of the Lease the replicas compete for, in the controller's namespace.
pub const LEASE_NAME: &str = "ib-kubernetes-leader";

/// Whether writes may go out now. Checked by the executors right before every write, against the local
/// clock rather than a flag, so that a replica stalled past its renew deadline (a long GC-like pause,
/// CPU starvation) refuses to write even before its election task has run to notice: the renew deadline
/// is shorter than the lease, so it stops before anybody else can have acquired the lease.
#[derive(Clone, Debug)]
pub struct LeaseGate {
    renewed: watch::Receiver<Option<Instant>>,
    valid_for: Duration,
}

impl LeaseGate {
    /// Whether a write started now would still be under a valid leadership.
    pub fn allows_writes(&self) -> bool {
        self.time_left().is_some()
    }

    /// How long writes may still go out under the current renewal (`None`: not now). A write started now
    /// is bounded by this, so that none outlives the leadership it was started under.
    pub fn time_left(&self) -> Option<Duration> {
        let at = (*self.renewed.borrow())?;
        self.valid_for.checked_sub(at.elapsed()).filter(|left| !left.is_zero())
    }
}

/// Why an attempt to acquire or renew the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API server refused or failed the Lease call.
    #[error("lease {namespace}/{LEASE_NAME}: {source}")]
    Api {
        /// The Lease's namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
    /// Another replica holds a Lease that has not expired.
    #[error("lease {namespace}/{LEASE_NAME} is held by {holder}")]
    HeldElsewhere {
        /// The Lease's namespace.
        namespace: String,
        /// The holder's identity.
        holder: String,
    },
}

/// Acquires and renews the Lease so that only one replica writes at a time.
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    identity: String,
    timings: LeaseTimings,
    /// The last record seen and when (local clock) it was first seen.
    observed: Option<(LeaseSpec, Instant)>,
}

impl LeaderElector {
    /// An elector for the Lease in `namespace`, competing as `identity`.
    pub fn new(client: Client, namespace: &str, identity: String, timings: LeaseTimings) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            identity,
            timings,
            observed: None,
        }
    }

    /// The gate the executors check, and its sender for [`run`](Self::run).
    pub fn gate(&self) -> (watch::Sender<Option<Instant>>, LeaseGate) {
        let (tx, renewed) = watch::channel(None);
        (tx, LeaseGate { renewed, valid_for: self.timings.renew_deadline })
    }

    /// Campaigns and renews until `stop` becomes true, publishing leadership on `leading` and each
    /// successful renewal on `renewed`. On stop, a held lease is released so that a follower takes over
    /// at its next retry instead of after expiry.
    pub async fn run(
        mut self,
        leading: watch::Sender<bool>,
        renewed: watch::Sender<Option<Instant>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut last_renew: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            // The lease counts from before the request: the server may have stored it any time after.
            let started = Instant::now();
            let limit = self.timings.renew_deadline;
            let attempt = bounded(limit, info_span!("lease", operation = "renew"), self.try_acquire_or_renew()).await;
            let is_leader = *leading.borrow();
            match attempt {
                Ok(()) => {
                    last_renew = Some(started);
                    renewed.send_replace(Some(started));
                    if !is_leader {
                        info!(identity = %self.identity, "acquired the lease");
                        leading.send_replace(true);
                    }
                }
                Err(CallError::Failed(e)) => {
                    if is_leader {
                        warn!(error = %e, "renewing the lease failed");
                    } else {
                        debug!(error = %e, "not acquired");
                    }
                }
                Err(CallError::TimedOut(_)) => warn!("lease request timed out"),
            }
            // A leader that could not renew within the deadline stops acting before its lease can expire.
            if *leading.borrow() && last_renew.is_none_or(|t| t.elapsed() >= self.timings.renew_deadline) {
                warn!("lease not renewed within the renew deadline: stepping down");
                renewed.send_replace(None);
                leading.send_replace(false);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timings.retry_period) => {}
                _ = stop.changed() => {}
            }
        }
        if *leading.borrow() {
            renewed.send_replace(None);
            leading.send_replace(false);
            let limit = self.timings.renew_deadline;
            match bounded(limit, info_span!("lease", operation = "release"), self.release()).await {
                Ok(()) => info!("lease released"),
                Err(e) => warn!(error = %e, "releasing the lease failed"),
            }
        }
    }

    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api { namespace: self.namespace.clone(), source }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<(), LeaderError> {
        let now = MicroTime(Timestamp::now());
        let duration_secs = i32::try_from(self.timings.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await.map_err(|e| self.api_error(e))? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(LEASE_NAME.into()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            self.api.create(&PostParams::default(), &lease).await.map_err(|e| self.api_error(e))?;
            return Ok(());
        };
        let record = lease.spec.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(seen, _)| seen != &record) {
            self.observed = Some((record.clone(), Instant::now()));
        }
        let holder = record.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        if !holder.is_empty() && !ours {
            let seen_at = self.observed.as_ref().map_or_else(Instant::now, |(_, t)| *t);
            let lasts = Duration::from_secs(record.lease_duration_seconds.unwrap_or(0).max(0) as u64);
            if seen_at.elapsed() < lasts {
                return Err(LeaderError::HeldElsewhere { namespace: self.namespace.clone(), holder });
            }
        }
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(duration_secs),
            acquire_time: if ours { record.acquire_time.clone() } else { Some(now.clone()) },
            renew_time: Some(now),
            lease_transitions: Some(record.lease_transitions.unwrap_or(0) + i32::from(!ours)),
            ..record
        };
        lease.spec = Some(spec.clone());
        // PUT carries the resourceVersion we read: a concurrent change makes it fail with 409.
        let updated =
            self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await.map_err(|e| self.api_error(e))?;
        self.observed = Some((updated.spec.unwrap_or(spec), Instant::now()));
        Ok(())
    }

    /// client-go's ReleaseOnCancel: empty holder and a one-second duration.
    async fn release(&mut self) -> Result<(), LeaderError> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await.map_err(|e| self.api_error(e))? else {
            return Ok(());
        };
        let record = lease.spec.clone().unwrap_or_default();
        if record.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..record
        });
        self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await.map_err(|e| self.api_error(e))?;
        Ok(())
    }
}
