//! The controller's metrics, registered once and shared (`Arc<Metrics>`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a metric split by one bounded reason word.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The reason word, from a fixed list.
    pub reason: &'static str,
}

/// The `error` label of a request that did not fail.
pub const NO_ERROR: &str = "none";

/// A subnet-manager request: `error` is the kind of error (`timeout`, `status`, `transport`, …) or
/// [`NO_ERROR`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SmLabels {
    /// `add`, `remove` or `list`.
    pub operation: &'static str,
    /// `success`, `failure`, or `unknown` when the change may or may not have been applied.
    pub outcome: &'static str,
    /// The kind of error, or `none`.
    pub error: &'static str,
}

/// Labels of a subnet-manager metric split by operation only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// `add`, `remove` or `list`.
    pub operation: &'static str,
}

/// An API request (a pod patch, a record write): `error` is the kind of error (`timeout`,
/// `forbidden`, `conflict`, …) or [`NO_ERROR`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success`/`failure` for record writes; `applied`, `conflict`, `not_found`, … for patches.
    pub outcome: &'static str,
    /// The kind of error, or `none`.
    pub error: &'static str,
}

/// Every metric the controller exports under the `ib_kubernetes_` prefix.
#[derive(Debug)]
pub struct Metrics {
    /// Pods whose configured annotation has been stored.
    pub pods_configured: Counter,
    /// IB pods that cannot be configured yet, by the reason they wait.
    pub pending_pods: Family<ReasonLabels, Gauge>,
    /// GUIDs of the pool range owned by pods or held by the subnet manager.
    pub pool_used: Gauge,
    /// GUIDs in the pool range.
    pub pool_capacity: Gauge,
    /// Subnet-manager requests by operation, outcome and error kind.
    pub sm_requests: Family<SmLabels, Counter>,
    /// Subnet-manager request latency by operation.
    pub sm_request_seconds: Family<OperationLabels, Histogram>,
    /// GUIDs carried by one subnet-manager request, by operation.
    pub sm_request_guids: Family<OperationLabels, Histogram>,
    /// From the first sight of an unconfigured IB pod to its configured annotation being stored.
    pub pod_configure_seconds: Histogram,
    /// Pod annotation patches by outcome and error kind.
    pub patches: Family<OutcomeLabels, Counter>,
    /// Memberships removed because no ownership record explained them.
    pub drift_repairs: Counter,
    /// 1 while this replica holds the Lease, else 0.
    pub leader: Gauge,
    /// Watch stream errors by resource.
    pub watch_errors: Family<ReasonLabels, Counter>,
    /// GUIDs with an ownership record.
    pub records: Gauge,
    /// Ownership record writes by outcome and error kind.
    pub record_writes: Family<OutcomeLabels, Counter>,
    /// Pool GUIDs in a partition that no ownership record explains.
    pub unrecorded: Gauge,
    /// GUIDs whose last subnet-manager change has an unknown outcome.
    pub uncertain: Gauge,
}

impl Metrics {
    /// Creates every metric and registers it in `registry`, pending-pod gauges at 0 for every reason.
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
