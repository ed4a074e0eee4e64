//! The demo's result: one value, printed as a table for people and as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ib_model::partition::{Membership, PartitionOptions};
use serde::Serialize;

use super::floor::Floor;
use super::stats::Percentiles;
use super::verify::Verification;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub settings: Settings,
    pub duration_s: f64,
    pub pods: PodCounts,
    pub interfaces: InterfaceCounts,
    pub guids: GuidCounts,
    pub ufm: UfmStats,
    pub latency: Latency,
    pub events: EventStats,
    /// With `--opensm`: the real subnet manager behind the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opensm: Option<OpenSmRun>,
    pub verification: Verification,
}

/// The `--opensm` run: OpenSM on a simulated fabric whose ports carry the pool's GUIDs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpenSmRun {
    /// Host ports of the simulated fabric, one per pool GUID.
    pub fabric_ports: usize,
    /// Batches of subnet-manager calls applied together.
    pub batches: u64,
    pub partitions_file_rewrites: u64,
    pub reloads: u64,
    /// Ports whose P_Key table was read (`smpquery pkeys`) for the verification.
    pub ports_read: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub pods: usize,
    pub rate_per_s: f64,
    pub seed: u64,
    pub ufm: String,
    pub guid_pool: String,
    /// `DEFAULT_LIMITED_PARTITION`: every GUID handed out also joins it as a limited member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_limited_partition: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PodCounts {
    pub created: usize,
    /// Pods with at least one InfiniBand interface ib-kubernetes must configure.
    pub infiniband: usize,
    pub no_networks: usize,
    /// Pods ib-kubernetes must refuse.
    pub bad: usize,
    /// Pods seen with every InfiniBand interface configured.
    pub configured: usize,
    /// Pods the simulated kubelet started.
    pub running: usize,
    pub deleted: usize,
    pub finished: usize,
    /// Neither deleted nor finished at the end.
    pub live_at_end: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InterfaceCounts {
    /// InfiniBand interfaces requested by the pods that should be configured.
    pub infiniband: usize,
    pub configured: usize,
    /// By NAD name.
    pub by_network: BTreeMap<String, NetworkInterfaces>,
    /// Interfaces on other CNIs (not ib-kubernetes' business).
    pub other: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NetworkInterfaces {
    /// `None` for a GUID-only network.
    pub pkey: Option<String>,
    /// How its GUIDs join the partition, where that differs from full, at index 0, without QoS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    pub interfaces: usize,
}

/// `limited, not at index 0`, `QoS mtu_limit 4, service_level 2, rate_limit 100`: what a network's
/// joins do differently from the Go daemon's (full, at index 0, IPoIB, the partition's QoS untouched).
pub fn join_text(join: &PartitionOptions) -> Option<String> {
    let mut parts = Vec::new();
    if join.membership == Membership::Limited {
        parts.push("limited".to_owned());
    }
    if !join.index0 {
        parts.push("not at index 0".to_owned());
    }
    if !join.ip_over_ib {
        parts.push("no IPoIB".to_owned());
    }
    if let Some(q) = &join.qos {
        parts.push(format!(
            "QoS mtu_limit {}, service_level {}, rate_limit {}",
            q.mtu_limit.ufm(),
            q.service_level,
            q.rate_limit
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GuidCounts {
    pub allocated_from_pool: usize,
    pub requested_by_pods: usize,
    /// GUIDs of deleted and finished pods, verified to have left their partitions.
    pub released: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UfmStats {
    pub requests: usize,
    pub by_endpoint: BTreeMap<String, usize>,
    pub add_requests: usize,
    pub add_guids: usize,
    pub mean_guids_per_add: f64,
    pub remove_requests: usize,
    pub remove_guids: usize,
    /// Answers other than 200.
    pub failed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// How the latency was measured.
    pub source: String,
    pub pod_to_configured: Percentiles,
    pub pod_to_running: Percentiles,
    pub floor: Floor,
    pub p50_over_floor: f64,
    pub p99_over_floor: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EventStats {
    pub total: usize,
    pub by_reason: BTreeMap<String, usize>,
    /// The Warning Event of each bad pod.
    pub bad_pods: Vec<QuotedEvent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuotedEvent {
    pub pod: String,
    pub reason: String,
    pub note: String,
}

fn ms(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0} ms") } else { format!("{v:.1} ms") }
}

impl Summary {
    /// The table printed at the end of the demo.
    pub fn render(&self) -> String {
        let mut t = String::new();
        let s = &self.settings;
        let _ = writeln!(
            t,
            "ib-kubernetes demo: {} pods at {}/s (seed {}), the real controller over HTTP against the emulated \
             Kubernetes API and UFM ({}), {:.1} s\n",
            s.pods, s.rate_per_s, s.seed, s.ufm, self.duration_s
        );
        let p = &self.pods;
        let row = |t: &mut String, label: &str, text: String| {
            let _ = writeln!(t, "  {label:<13}{text}");
        };
        row(
            &mut t,
            "Pods",
            format!(
                "{} created: {} InfiniBand, {} without extra networks, {} bad",
                p.created, p.infiniband, p.no_networks, p.bad
            ),
        );
        row(
            &mut t,
            "",
            format!(
                "{} configured, {} running; then {} deleted, {} finished; {} live at the end",
                p.configured, p.running, p.deleted, p.finished, p.live_at_end
            ),
        );
        let i = &self.interfaces;
        let networks: Vec<String> = i
            .by_network
            .iter()
            .map(|(name, n)| match (&n.pkey, &n.options) {
                (Some(pkey), Some(options)) => format!("{} on {name} (pkey {pkey}, {options})", n.interfaces),
                (Some(pkey), None) => format!("{} on {name} (pkey {pkey})", n.interfaces),
                (None, _) => format!("{} on {name} (GUID only)", n.interfaces),
            })
            .collect();
        row(&mut t, "Interfaces", format!("{} InfiniBand, {} configured", i.infiniband, i.configured));
        row(&mut t, "", networks.join(", "));
        if i.other > 0 {
            row(&mut t, "", format!("{} on other CNIs (left alone)", i.other));
        }
        if let Some(pkey) = &s.default_limited_partition {
            row(
                &mut t,
                "Partitions",
                format!("every GUID also joins {pkey} as a limited member (DEFAULT_LIMITED_PARTITION)"),
            );
        }
        let g = &self.guids;
        row(
            &mut t,
            "GUIDs",
            format!(
                "{} allocated from the pool ({}), {} requested by a pod, {} released",
                g.allocated_from_pool, s.guid_pool, g.requested_by_pods, g.released
            ),
        );
        let u = &self.ufm;
        row(
            &mut t,
            "UFM requests",
            format!(
                "{} total: {} add ({} GUIDs, {:.1} per request), {} remove ({} GUIDs), {} failed",
                u.requests,
                u.add_requests,
                u.add_guids,
                u.mean_guids_per_add,
                u.remove_requests,
                u.remove_guids,
                u.failed
            ),
        );
        let others: Vec<String> = u
            .by_endpoint
            .iter()
            .filter(|(e, _)| !matches!(e.as_str(), "add_guids" | "remove_guids_from_pkey" | "delete_guids"))
            .map(|(e, c)| format!("{e} {c}"))
            .collect();
        if !others.is_empty() {
            row(&mut t, "", format!("also {}", others.join(", ")));
        }
        let l = &self.latency;
        let c = &l.pod_to_configured;
        row(&mut t, "Latency", format!("pod created -> configured ({} pods; {})", c.samples, l.source));
        row(
            &mut t,
            "",
            format!("p50 {}  p90 {}  p99 {}  max {}", ms(c.p50_ms), ms(c.p90_ms), ms(c.p99_ms), ms(c.max_ms)),
        );
        row(
            &mut t,
            "",
            format!(
                "floor {} (one pod PATCH {} + one UFM add {}, median of {}): p50 = {:.1}x floor, p99 = {:.1}x",
                ms(l.floor.total_ms),
                ms(l.floor.patch_ms),
                ms(l.floor.ufm_add_ms),
                l.floor.samples,
                l.p50_over_floor,
                l.p99_over_floor
            ),
        );
        let r = &l.pod_to_running;
        row(
            &mut t,
            "",
            format!("pod created -> Running (simulated kubelet): p50 {}  p99 {}", ms(r.p50_ms), ms(r.p99_ms)),
        );
        let e = &self.events;
        let reasons: Vec<String> = e.by_reason.iter().map(|(r, c)| format!("{r} {c}")).collect();
        row(&mut t, "Events", format!("{} raised: {}", e.total, reasons.join(", ")));
        for q in &e.bad_pods {
            row(&mut t, "", format!("{} {}: \"{}\"", q.pod, q.reason, q.note));
        }
        if let Some(o) = &self.opensm {
            row(
                &mut t,
                "OpenSM",
                format!(
                    "real OpenSM on a simulated fabric of {} host ports: {} partitions.conf rewrites, {} reloads \
                     ({} batches)",
                    o.fabric_ports, o.partitions_file_rewrites, o.reloads, o.batches
                ),
            );
            row(
                &mut t,
                "",
                format!(
                    "memberships verified from {} ports' P_Key tables (smpquery pkeys), not from a file",
                    o.ports_read
                ),
            );
        }
        let v = &self.verification;
        row(&mut t, "Verification", if v.passed { "PASSED".to_owned() } else { "FAILED".to_owned() });
        for check in &v.checks {
            let mark = if check.passed { "ok  " } else { "FAIL" };
            row(&mut t, "", format!("{mark} {} ({})", check.name, check.detail));
        }
        t
    }
}
