//! The controller's metrics, registered once and shared (`Arc<Metrics>`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// The `error` label of a request that did not fail.
pub const NO_ERROR: &str = "none";

/// A subnet-manager request: `error` is the kind of error (`timeout`, `status`, `transport`, …) or
/// [`NO_ERROR`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SmLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

/// An API request (a pod patch, a record write): `error` is the kind of error (`timeout`,
/// `forbidden`, `conflict`, …) or [`NO_ERROR`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
    pub error: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    pub pods_configured: Counter,
    pub pending_pods: Family<ReasonLabels, Gauge>,
    pub pool_used: Gauge,
    pub pool_capacity: Gauge,
    pub sm_requests: Family<SmLabels, Counter>,
    pub sm_request_seconds: Family<OperationLabels, Histogram>,
    pub sm_request_guids: Family<OperationLabels, Histogram>,
    pub pod_configure_seconds: Histogram,
    pub patches: Family<OutcomeLabels, Counter>,
    pub drift_repairs: Counter,
    pub leader: Gauge,
    pub watch_errors: Family<ReasonLabels, Counter>,
    pub records: Gauge,
    pub record_writes: Family<OutcomeLabels, Counter>,
    pub unrecorded: Gauge,
    pub uncertain: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        // 1 ms … ~65 s: from an idle loopback round trip to a UFM that is timing out.
        let latency = || Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let m = Metrics {
            pods_configured: Counter::default(),
            pending_pods: Family::default(),
            pool_used: Gauge::default(),
            pool_capacity: Gauge::default(),
            sm_requests: Family::default(),
            sm_request_seconds: Family::new_with_constructor(latency),
            sm_request_guids: Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 2.0, 14))),
            pod_configure_seconds: latency(),
            patches: Family::default(),
            drift_repairs: Counter::default(),
            leader: Gauge::default(),
            watch_errors: Family::default(),
            records: Gauge::default(),
            record_writes: Family::default(),
            unrecorded: Gauge::default(),
            uncertain: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("ib_kubernetes");
        r.register("pods_configured", "Pods marked configured", m.pods_configured.clone());
        r.register("pending_pods", "IB pods that cannot be configured yet, by reason", m.pending_pods.clone());
        r.register(
            "guid_pool_used",
            "GUIDs of the pool range owned by pods or held by the subnet manager",
            m.pool_used.clone(),
        );
        r.register("guid_pool_capacity", "GUIDs in the pool range (saturates at 2^63-1)", m.pool_capacity.clone());
        r.register(
            "sm_requests",
            "Subnet-manager requests by operation, outcome and error kind",
            m.sm_requests.clone(),
        );
        r.register("sm_request_duration_seconds", "Subnet-manager request latency", m.sm_request_seconds.clone());
        r.register("sm_request_guids", "GUIDs carried by one subnet-manager request", m.sm_request_guids.clone());
        r.register(
            "pod_configure_duration_seconds",
            "From the first sight of an unconfigured IB pod to its configured annotation being stored",
            m.pod_configure_seconds.clone(),
        );
        r.register("pod_patches", "Pod annotation patches by outcome and error kind", m.patches.clone());
        r.register(
            "drift_repairs",
            "Memberships of pool GUIDs removed because no ownership record explained them (only with REMOVE_UNRECORDED_MEMBERSHIPS=true)",
            m.drift_repairs.clone(),
        );
        r.register("ownership_records", "GUIDs with an ownership record (GuidBlock entries)", m.records.clone());
        r.register("ownership_record_writes", "GuidBlock writes by outcome and error kind", m.record_writes.clone());
        r.register(
            "unrecorded_memberships",
            "Pool GUIDs in a partition that no ownership record explains (another cluster's, a person's, a leak)",
            m.unrecorded.clone(),
        );
        r.register(
            "uncertain_guids",
            "GUIDs whose last subnet-manager change has an unknown outcome, held until a listing settles them",
            m.uncertain.clone(),
        );
        r.register("leader", "1 while this replica holds the lease", m.leader.clone());
        r.register("watch_errors", "Watch stream errors by resource", m.watch_errors.clone());
        for reason in ib_model::PendingReason::LABELS {
            m.pending_pods.get_or_create(&ReasonLabels { reason }).set(0);
        }
        m
    }
}
