//! The status report, computed from what was read from the cluster: no I/O here, so every rule is
//! tested on plain values.
//!
//! Everything read comes from objects that users may write (pods, NADs, Events in their namespaces)
//! or that may have been damaged (GuidBlocks), so every text kept is bounded and free of control
//! characters before it reaches a terminal or a script.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use ib_controller::records::{Allocation, record};
use ib_model::nad::{NadKind, classify};
use ib_model::{BlockId, Guid, GuidRange, NetworkRef, NetworksAnnotation, PKey, PodPhase, Record};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

/// The pod annotation that lists a pod's networks.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// The longest text kept from any object (names, reasons, notes).
pub const MAX_TEXT_CHARS: usize = 200;
/// Members listed per PKey in the table; the JSON report lists them all.
pub const TABLE_MEMBERS: usize = 20;

/// One pod, as read.
#[derive(Clone, Debug, Default)]
pub struct PodInput {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub phase: Option<String>,
    pub node: Option<String>,
    pub deleting: bool,
    pub networks: Option<String>,
}

/// One NetworkAttachmentDefinition, as read.
#[derive(Clone, Debug, Default)]
pub struct NadInput {
    pub namespace: String,
    pub name: String,
    pub config: Option<String>,
}

/// One GuidBlock, as read: its name and its `spec.allocations`, left undecoded so that one bad
/// entry does not hide the others.
#[derive(Clone, Debug, Default)]
pub struct BlockInput {
    pub name: String,
    pub allocations: Option<serde_json::Value>,
}

/// One Event the controller raised about a pod.
#[derive(Clone, Debug, Default)]
pub struct EventInput {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: Option<String>,
    pub warning: bool,
    pub reason: String,
    pub note: Option<String>,
    pub time: Option<Timestamp>,
}

/// Where the pool's range came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RangeSource {
    /// The command's flags.
    Flags,
    /// The controller's ConfigMap.
    ConfigMap,
}

#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub pods: Vec<PodInput>,
    pub nads: Vec<NadInput>,
    pub blocks: Vec<BlockInput>,
    pub events: Vec<EventInput>,
    pub range: Option<(GuidRange, RangeSource)>,
    /// Why the range is not known, when it is not.
    pub range_note: Option<String>,
}

/// The report `--json` prints. Field names and meanings are stable: scripts read them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub pool: PoolUse,
    pub pkeys: Vec<PKeyMembers>,
    pub waiting: Vec<WaitingPod>,
    pub skipped: Skipped,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUse {
    /// Readable ownership records (every GUID the controller holds for a pod).
    pub records: u64,
    /// The configured range, when known.
    pub range: Option<RangeUse>,
    /// Why the range is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeUse {
    pub start: String,
    pub end: String,
    pub source: RangeSource,
    pub capacity: u64,
    /// Records whose GUID is inside the range.
    pub in_range: u64,
    /// Records outside it (left from an earlier range).
    pub out_of_range: u64,
    /// `in_range` per hundred of `capacity`.
    pub used_percent: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PKeyMembers {
    /// `0x` and four hex digits, or `none` for GUID-only networks.
    pub pkey: String,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub guid: String,
    pub namespace: String,
    pub pod: String,
    pub network: String,
    pub interface: String,
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingPod {
    pub namespace: String,
    pub pod: String,
    /// The reason of the controller's latest Warning Event, or `NotScheduled` / `NotConfiguredYet`
    /// when there is none (yet).
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When that Event was raised (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// InfiniBand interfaces of the pod not configured yet.
    pub unconfigured_interfaces: u64,
}

/// What could not be read; nothing of it is trusted or counted above.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// GuidBlocks whose name is not a block start.
    pub blocks: u64,
    /// Entries the controller would not have written (bad GUID, fields, or a GUID of another block).
    pub entries: u64,
}

/// Bounded to [`MAX_TEXT_CHARS`], control characters replaced: safe to print.
pub fn clean(text: &str) -> String {
    ib_model::text::shorten(text, MAX_TEXT_CHARS).chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

pub fn compute(inputs: &Inputs) -> Report {
    let mut skipped = Skipped::default();
    let records = read_records(&inputs.blocks, &mut skipped);
    let pool = pool_use(&records, inputs);
    let pkeys = pkey_members(&records);
    let waiting = waiting_pods(inputs);
    Report { pool, pkeys, waiting, skipped }
}

fn read_records(blocks: &[BlockInput], skipped: &mut Skipped) -> Vec<(Guid, Record)> {
    let mut records = Vec::new();
    for block in blocks {
        // The controller ignores such blocks and entries (records::list); the report does the same.
        if BlockId::from_name(&block.name).is_none() {
            skipped.blocks += 1;
            continue;
        }
        let Some(serde_json::Value::Object(entries)) = &block.allocations else {
            if block.allocations.as_ref().is_some_and(|v| !v.is_null()) {
                skipped.entries += 1;
            }
            continue;
        };
        for (guid, value) in entries {
            let parsed = serde_json::from_value::<Allocation>(value.clone()).ok().and_then(|a| record(guid, &a));
            match parsed {
                Some((g, r)) if BlockId::of(g).name() == block.name => records.push((g, r)),
                _ => skipped.entries += 1,
            }
        }
    }
    records.sort_by_key(|(g, _)| *g);
    // Two blocks cannot hold one GUID (a GUID's block is fixed by its value), but a duplicated block
    // name in the input must not count a record twice.
    records.dedup_by_key(|(g, _)| *g);
    records
}

fn pool_use(records: &[(Guid, Record)], inputs: &Inputs) -> PoolUse {
    let range = inputs.range.map(|(range, source)| {
        let in_range = records.iter().filter(|(g, _)| range.contains(*g)).count() as u64;
        let capacity = range.len();
        RangeUse {
            start: range.start().to_string(),
            end: range.end().to_string(),
            source,
            capacity,
            in_range,
            out_of_range: records.len() as u64 - in_range,
            used_percent: if capacity == 0 { 0.0 } else { in_range as f64 * 100.0 / capacity as f64 },
        }
    });
    PoolUse {
        records: records.len() as u64,
        range_note: if range.is_none() { inputs.range_note.as_deref().map(clean) } else { None },
        range,
    }
}

fn pkey_members(records: &[(Guid, Record)]) -> Vec<PKeyMembers> {
    let mut by_pkey: BTreeMap<Option<PKey>, Vec<Member>> = BTreeMap::new();
    for (guid, r) in records {
        by_pkey.entry(r.pkey).or_default().push(Member {
            guid: guid.to_string(),
            namespace: clean(&r.pod_namespace),
            pod: clean(&r.pod_name),
            network: clean(&r.owner.network.to_string()),
            interface: clean(&r.owner.interface),
            state: r.state.as_str().to_owned(),
        });
    }
    by_pkey
        .into_iter()
        .map(|(pkey, members)| PKeyMembers {
            pkey: pkey.map_or_else(|| "none".to_owned(), |p| format!("0x{:04x}", p.get())),
            members,
        })
        .collect()
}

fn waiting_pods(inputs: &Inputs) -> Vec<WaitingPod> {
    let ib_nads: HashMap<(&str, &str), bool> = inputs
        .nads
        .iter()
        .map(|n| {
            let ib = matches!(classify(n.config.as_deref()), Ok(NadKind::InfiniBand(_)));
            ((n.namespace.as_str(), n.name.as_str()), ib)
        })
        .collect();
    // The latest Event per pod; a Normal one (Configured) after a Warning means the wait is over.
    let mut latest: HashMap<(&str, &str), &EventInput> = HashMap::new();
    for event in &inputs.events {
        let key = (event.namespace.as_str(), event.pod.as_str());
        match latest.get(&key) {
            Some(seen) if seen.time > event.time => {}
            _ => {
                latest.insert(key, event);
            }
        }
    }
    let mut waiting = Vec::new();
    for pod in &inputs.pods {
        if pod.deleting || matches!(PodPhase::parse(pod.phase.as_deref()), PodPhase::Succeeded | PodPhase::Failed) {
            continue;
        }
        let event = latest
            .get(&(pod.namespace.as_str(), pod.name.as_str()))
            .filter(|e| e.pod_uid.as_deref().is_none_or(|uid| uid == pod.uid))
            .filter(|e| e.warning);
        let unconfigured = match pod.networks.as_deref() {
            None => Ok(0),
            Some(raw) => NetworksAnnotation::parse(raw, &pod.namespace)
                .map(|a| a.selections().iter().filter(|s| !s.configured && is_ib(&ib_nads, &s.network)).count() as u64),
        };
        let reason = match (event, &unconfigured) {
            (Some(e), _) => clean(&e.reason),
            (None, Err(_)) => "InvalidNetworkAnnotation".to_owned(),
            (None, Ok(0)) => continue,
            (None, Ok(_)) if pod.node.as_deref().is_none_or(str::is_empty) => "NotScheduled".to_owned(),
            (None, Ok(_)) => "NotConfiguredYet".to_owned(),
        };
        waiting.push(WaitingPod {
            namespace: clean(&pod.namespace),
            pod: clean(&pod.name),
            reason,
            message: event.and_then(|e| e.note.as_deref()).map(clean),
            since: event.and_then(|e| e.time).map(|t| t.to_string()),
            unconfigured_interfaces: unconfigured.unwrap_or(0),
        });
    }
    waiting.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    waiting
}

fn is_ib(nads: &HashMap<(&str, &str), bool>, network: &NetworkRef) -> bool {
    nads.get(&(&*network.namespace, &*network.name)).copied().unwrap_or(false)
}

/// Two decimals, except that a pool in use never reads as 0.00% (a large range often is used that
/// little).
fn percent(value: f64) -> String {
    if value > 0.0 && value < 0.01 { "< 0.01%".to_owned() } else { format!("{value:.2}%") }
}

/// The table for people.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let pool = &report.pool;
    match &pool.range {
        Some(r) => {
            let _ = writeln!(
                out,
                "GUID pool   {} .. {} ({}): {} of {} GUIDs recorded ({})",
                r.start,
                r.end,
                match r.source {
                    RangeSource::Flags => "from the flags",
                    RangeSource::ConfigMap => "from the ConfigMap",
                },
                r.in_range,
                r.capacity,
                percent(r.used_percent)
            );
            if r.out_of_range > 0 {
                let _ = writeln!(out, "            {} more recorded outside the range", r.out_of_range);
            }
        }
        None => {
            let _ = writeln!(
                out,
                "GUID pool   {} GUIDs recorded; range unknown{}",
                pool.records,
                pool.range_note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            );
        }
    }
    if report.skipped.blocks > 0 || report.skipped.entries > 0 {
        let _ = writeln!(
            out,
            "            skipped as unreadable: {} blocks, {} entries",
            report.skipped.blocks, report.skipped.entries
        );
    }
    let _ = writeln!(out, "\nPKEY    MEMBERS");
    if report.pkeys.is_empty() {
        let _ = writeln!(out, "(none)");
    }
    for p in &report.pkeys {
        let _ = writeln!(out, "{:<7} {}", p.pkey, p.members.len());
        for m in p.members.iter().take(TABLE_MEMBERS) {
            let _ = writeln!(
                out,
                "        {}  {}/{}  {} {}  {}",
                m.guid, m.namespace, m.pod, m.network, m.interface, m.state
            );
        }
        if p.members.len() > TABLE_MEMBERS {
            let _ = writeln!(out, "        … {} more (--json lists all)", p.members.len() - TABLE_MEMBERS);
        }
    }
    let _ = writeln!(out, "\nWAITING PODS ({})", report.waiting.len());
    for w in &report.waiting {
        let _ = write!(out, "{}/{}  {}", w.namespace, w.pod, w.reason);
        if let Some(since) = &w.since {
            let _ = write!(out, "  since {since}");
        }
        if let Some(message) = &w.message {
            let _ = write!(out, "  {message}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
