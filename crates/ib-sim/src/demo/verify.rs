//! The demo's verdict, from the final state of the API server and the UFM emulator only: what a user
//! with kubectl and the UFM console could check by hand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ib_model::partition::{Membership, Qos};
use ib_model::{Guid, GuidRange};
use serde_json::Value;

use super::observer::{ConfiguredInterface, configured_interfaces};
use crate::workload::{IbNetworks, Joins, PodKind, REQUESTED_GUID};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// How many things the check looked at (pods, memberships, partitions): a check that passes
    /// having looked at nothing says so with 0.
    pub checked: usize,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    pub passed: bool,
    pub checks: Vec<Check>,
}

/// Where the memberships were read: the checks' names and details say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The UFM emulator's partitions: each member's membership and index0, each partition's QoS.
    Ufm,
    /// The ports' P_Key tables (the membership bit of each entry) and OpenSM's `partitions.conf` (each
    /// partition's QoS flags).
    OpenSm,
}

/// One GUID's membership of one partition, as the subnet manager shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub pkey: u16,
    pub membership: Membership,
    /// Whether the partition is at index 0 of the port's P_Key table; `None` where the source does
    /// not show it per member (OpenSM: `indx0` is a flag of the whole partition, and the P_Key table
    /// is read as a set).
    pub index0: Option<bool>,
}

/// Every GUID with the partitions it is a member of.
pub type SeenMemberships = BTreeMap<u64, Vec<Seen>>;

/// Everything the verdict is drawn from.
pub struct Inputs<'a> {
    /// Every pod of the demo namespace, as stored now.
    pub pods: &'a [Arc<Value>],
    /// What each pod name was created as.
    pub kinds: &'a HashMap<String, PodKind>,
    pub ib: &'a IbNetworks,
    /// How each InfiniBand network's GUIDs must join its partition.
    pub joins: &'a Joins,
    /// The subnet manager: every GUID with the partitions it is a member of.
    pub memberships: &'a SeenMemberships,
    /// The subnet manager: each partition's QoS; `None` for a partition that has none set.
    pub partition_qos: &'a BTreeMap<u16, Option<Qos>>,
    /// The cluster's default limited partition, which every configured GUID must have joined.
    pub default_limited: Option<u16>,
    pub source: Source,
    pub range: GuidRange,
    /// Events of the demo namespace (`events.k8s.io/v1`).
    pub events: &'a [Arc<Value>],
    /// Pods the demo deleted: they must be gone.
    pub deleted: &'a BTreeSet<String>,
    /// GUIDs of pods that were deleted or finished: they must be in no partition.
    pub released: &'a [Guid],
}

fn name_of(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap_or_default()
}

fn phase_of(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

/// Not terminating and not finished: its GUIDs must be in place.
pub fn is_live(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null() && !matches!(phase_of(pod), "Succeeded" | "Failed")
}

fn check(name: &'static str, checked: usize, failures: Vec<String>, ok: String) -> Check {
    const SHOWN: usize = 5;
    if failures.is_empty() {
        return Check { name, passed: true, checked, detail: ok };
    }
    let more = failures.len().saturating_sub(SHOWN);
    let mut detail = failures.into_iter().take(SHOWN).collect::<Vec<_>>().join("; ");
    if more > 0 {
        detail.push_str(&format!("; and {more} more"));
    }
    Check { name, passed: false, checked, detail }
}

/// A partition's QoS as the source shows it: UFM's fields, or OpenSM's IBTA-coded flags.
fn qos_text(source: Source, qos: Option<&Qos>) -> String {
    match (source, qos) {
        (_, None) => "no QoS".to_owned(),
        (Source::Ufm, Some(q)) => {
            format!("mtu_limit {}, service_level {}, rate_limit {}", q.mtu_limit.ufm(), q.service_level, q.rate_limit)
        }
        (Source::OpenSm, Some(q)) => {
            format!("mtu={},rate={},sl={}", q.mtu_limit.ibta(), q.rate_limit.ibta(), q.service_level)
        }
    }
}

pub fn verify(inputs: &Inputs<'_>) -> Verification {
    let kind_of = |pod: &Value| inputs.kinds.get(name_of(pod)).copied();
    let live: Vec<&Value> = inputs.pods.iter().map(|p| p.as_ref()).filter(|p| is_live(p)).collect();
    let ufm = inputs.source == Source::Ufm;
    let mut checks = Vec::new();

    // Live InfiniBand pods and their interfaces.
    let mut interfaces: Vec<(&str, ConfiguredInterface)> = Vec::new();
    let mut unconfigured = Vec::new();
    let mut ib_pods = 0;
    for pod in &live {
        let Some(kind) = kind_of(pod) else { continue };
        let expected = crate::workload::ib_interface_count(kind);
        if expected == 0 {
            continue;
        }
        ib_pods += 1;
        match configured_interfaces(pod, inputs.ib) {
            Some(found) if found.len() == expected => {
                interfaces.extend(found.into_iter().map(|i| (name_of(pod), i)));
            }
            _ => unconfigured.push(format!("{} is not configured", name_of(pod))),
        }
    }
    checks.push(check(
        "every live InfiniBand pod is configured",
        ib_pods,
        unconfigured,
        format!("{ib_pods} pods, {} interfaces", interfaces.len()),
    ));

    let member_of =
        |guid: Guid| -> &[Seen] { inputs.memberships.get(&guid.as_u64()).map(Vec::as_slice).unwrap_or(&[]) };
    let seen_in = |guid: Guid, pkey: u16| member_of(guid).iter().find(|s| s.pkey == pkey).copied();
    let shared = inputs.default_limited;
    let mut wrong = Vec::new();
    let mut with_pkey = 0;
    for (pod, i) in &interfaces {
        match i.pkey {
            Some(pkey) => {
                with_pkey += 1;
                if seen_in(i.guid, pkey).is_none() {
                    wrong.push(format!("{pod} {}: {} is not a member of 0x{pkey:x}", i.interface, i.guid));
                }
            }
            None => {
                let others: Vec<String> = member_of(i.guid)
                    .iter()
                    .filter(|s| Some(s.pkey) != shared)
                    .map(|s| format!("0x{:x}", s.pkey))
                    .collect();
                if !others.is_empty() {
                    wrong.push(format!("{pod} {}: GUID-only {} is in {}", i.interface, i.guid, others.join(",")));
                }
            }
        }
    }
    let guid_only = interfaces.len() - with_pkey;
    checks.push(check(
        if ufm {
            "their GUIDs are members of the right PKeys in UFM"
        } else {
            "their GUIDs are members of the right PKeys in their ports' P_Key tables"
        },
        interfaces.len(),
        wrong,
        match shared {
            Some(_) => format!(
                "{with_pkey} memberships checked, {guid_only} GUID-only interfaces in no PKey but the default limited one"
            ),
            None => format!("{with_pkey} memberships checked, {guid_only} GUID-only interfaces in no PKey"),
        },
    ));

    // Full or limited, at index 0 or not, as each network's NAD (or the cluster's default) says.
    let mut wrong = Vec::new();
    let (mut full, mut limited, mut index0_checked) = (0, 0, 0);
    let mut limited_networks = BTreeSet::new();
    for (pod, i) in &interfaces {
        let (Some(pkey), Some(join)) = (i.pkey, inputs.joins.get(&i.network)) else { continue };
        let Some(seen) = seen_in(i.guid, pkey) else { continue };
        match seen.membership {
            Membership::Full => full += 1,
            Membership::Limited => {
                limited += 1;
                limited_networks.insert(&*i.network.name);
            }
        }
        if seen.membership != join.membership {
            wrong.push(format!(
                "{pod} {}: {} is a {} member of 0x{pkey:x}, {} wants {}",
                i.interface, i.guid, seen.membership, i.network.name, join.membership
            ));
        }
        if let Some(index0) = seen.index0 {
            index0_checked += 1;
            if index0 != join.index0 {
                wrong.push(format!(
                    "{pod} {}: {} has index0 {index0} in 0x{pkey:x}, {} wants {}",
                    i.interface, i.guid, i.network.name, join.index0
                ));
            }
        }
    }
    let limited_on = match limited_networks.into_iter().collect::<Vec<_>>().join(", ") {
        on if on.is_empty() => String::new(),
        on => format!(", on {on}"),
    };
    checks.push(check(
        if ufm {
            "each membership is full or limited, and at index 0 or not, as its NAD says"
        } else {
            "each port's membership bit is full or limited as its NAD says"
        },
        full + limited,
        wrong,
        if ufm {
            format!("{full} full, {limited} limited{limited_on}; index0 checked on {index0_checked}")
        } else {
            format!("{full} full (bit set), {limited} limited (bit clear{limited_on})")
        },
    ));

    if let Some(shared) = shared {
        let mut wrong = Vec::new();
        for (pod, i) in &interfaces {
            match seen_in(i.guid, shared) {
                None => wrong.push(format!("{pod} {}: {} is not a member of 0x{shared:x}", i.interface, i.guid)),
                Some(s) if s.membership != Membership::Limited => wrong
                    .push(format!("{pod} {}: {} is a {} member of 0x{shared:x}", i.interface, i.guid, s.membership)),
                Some(Seen { index0: Some(true), .. }) => {
                    wrong.push(format!("{pod} {}: {} has 0x{shared:x} at index 0", i.interface, i.guid))
                }
                Some(_) => {}
            }
        }
        checks.push(check(
            if ufm {
                "every configured GUID is a limited member of the default limited partition"
            } else {
                "every configured GUID's port holds the default limited partition with the membership bit clear"
            },
            interfaces.len(),
            wrong,
            if ufm {
                format!("{} GUIDs in 0x{shared:04x}, all limited, none at index 0", interfaces.len())
            } else {
                format!("{} ports hold 0x{shared:04x}, all limited", interfaces.len())
            },
        ));
    }

    // Each partition of a network with QoS, while the partition has live members (UFM deletes a
    // partition with its last member, and its QoS with it).
    let mut wrong = Vec::new();
    let mut shown = Vec::new();
    let mut qos_networks: Vec<(&ib_model::NetworkRef, Qos)> =
        inputs.joins.iter().filter_map(|(net, join)| join.qos.map(|q| (net, q))).collect();
    qos_networks.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for (network, want) in qos_networks {
        let Some(Some(pkey)) = inputs.ib.get(network) else { continue };
        let members = interfaces.iter().filter(|(_, i)| &i.network == network).count();
        if members == 0 {
            continue;
        }
        let seen = inputs.partition_qos.get(pkey).copied().flatten();
        if seen == Some(want) {
            let plural = if members == 1 { "" } else { "s" };
            shown.push(format!(
                "0x{pkey:04x} of {}: {}, {members} live member{plural}",
                network.name,
                qos_text(inputs.source, seen.as_ref())
            ));
        } else {
            wrong.push(format!(
                "0x{pkey:04x} of {} has {}, its NAD asks for {}",
                network.name,
                qos_text(inputs.source, seen.as_ref()),
                qos_text(inputs.source, Some(&want))
            ));
        }
    }
    checks.push(check(
        if ufm {
            "partitions with QoS have their NAD's QoS in UFM"
        } else {
            "partitions with QoS carry their NAD's mtu=, rate=, sl= in partitions.conf"
        },
        shown.len() + wrong.len(),
        wrong,
        if shown.is_empty() { "no live member of a partition with QoS".to_owned() } else { shown.join("; ") },
    ));

    let mut expected: HashMap<Guid, BTreeSet<u16>> = HashMap::new();
    for (_, i) in &interfaces {
        let entry = expected.entry(i.guid).or_default();
        entry.extend(i.pkey);
        entry.extend(shared);
    }
    let mut strays = Vec::new();
    let mut in_range = 0;
    for (guid, seen) in inputs.memberships {
        let guid = Guid::from_u64(*guid);
        if !inputs.range.contains(guid) {
            continue;
        }
        in_range += 1;
        let want = expected.get(&guid).cloned().unwrap_or_default();
        let extra: Vec<String> =
            seen.iter().filter(|s| !want.contains(&s.pkey)).map(|s| format!("0x{:x}", s.pkey)).collect();
        if !extra.is_empty() {
            strays.push(format!("{guid} is a member of {} without a live owner", extra.join(",")));
        }
    }
    checks.push(check(
        "nothing else in the pool range is a member of any PKey",
        in_range,
        strays,
        if ufm {
            format!("{in_range} pool GUIDs in UFM, all owned by live pods")
        } else {
            format!("{in_range} pool ports in a partition, all owned by live pods")
        },
    ));

    let mut owners: HashMap<Guid, &str> = HashMap::new();
    let mut sharing = Vec::new();
    for (pod, i) in &interfaces {
        if let Some(first) = owners.insert(i.guid, pod) {
            sharing.push(format!("{} is used by {first} and {pod}", i.guid));
        }
    }
    checks.push(check("no GUID is shared", owners.len(), sharing, format!("{} distinct GUIDs", owners.len())));

    let leaked: Vec<String> = inputs
        .released
        .iter()
        .filter_map(|g| {
            let left: Vec<String> = member_of(*g).iter().map(|s| format!("0x{:x}", s.pkey)).collect();
            (!left.is_empty())
                .then(|| format!("{g} of a deleted or finished pod is still a member of {}", left.join(",")))
        })
        .collect();
    let lingering: Vec<String> = inputs
        .pods
        .iter()
        .filter(|p| inputs.deleted.contains(name_of(p)))
        .map(|p| format!("deleted pod {} still exists", name_of(p)))
        .collect();
    checks.push(check(
        if shared.is_some() {
            "deleted and finished pods left their PKeys and the default limited partition"
        } else {
            "deleted and finished pods left their PKeys"
        },
        inputs.released.len(),
        leaked.into_iter().chain(lingering).collect(),
        format!("{} GUIDs released, {} pods deleted", inputs.released.len(), inputs.deleted.len()),
    ));

    let pinned = interfaces.iter().filter(|(pod, _)| kind_of_name(inputs.kinds, pod) == Some(PodKind::RequestedGuid));
    let pinned: Vec<Guid> = pinned.map(|(_, i)| i.guid).collect();
    checks.push(if pinned == [REQUESTED_GUID] {
        Check { name: "the requested GUID was honoured", passed: true, checked: 1, detail: REQUESTED_GUID.to_string() }
    } else {
        Check {
            name: "the requested GUID was honoured",
            passed: false,
            checked: pinned.len(),
            detail: format!("asked for {REQUESTED_GUID}, got {pinned:?}"),
        }
    });

    let mut refused = Vec::new();
    let mut bad = 0;
    for pod in inputs.pods.iter().filter(|p| kind_of(p).is_some_and(PodKind::is_bad)) {
        bad += 1;
        let name = name_of(pod);
        if configured_interfaces(pod, inputs.ib).is_some() {
            refused.push(format!("{name} was configured"));
        }
        if phase_of(pod) != "Pending" {
            refused.push(format!("{name} is {}, not Pending", phase_of(pod)));
        }
        if warning_for(inputs.events, name).is_none() {
            refused.push(format!("{name} has no Warning Event"));
        }
    }
    checks.push(check(
        "the bad pods were refused with a Warning Event and stay Pending",
        bad,
        refused,
        format!("{bad} bad pods"),
    ));

    let not_running: Vec<String> = live
        .iter()
        .filter(|p| kind_of(p).is_some_and(|k| !k.is_bad()) && phase_of(p) != "Running")
        .map(|p| format!("{} is {}", name_of(p), phase_of(p)))
        .collect();
    let running = live.iter().filter(|p| phase_of(p) == "Running").count();
    checks.push(check("every other live pod is Running", running, not_running, format!("{running} running")));

    Verification { passed: checks.iter().all(|c| c.passed), checks }
}

fn kind_of_name(kinds: &HashMap<String, PodKind>, name: &str) -> Option<PodKind> {
    kinds.get(name).copied()
}

/// The first Warning Event about pod `name`: (reason, note).
pub fn warning_for<'a>(events: &'a [Arc<Value>], name: &str) -> Option<(&'a str, &'a str)> {
    events.iter().find_map(|e| {
        let about = e["regarding"]["name"].as_str() == Some(name) && e["type"].as_str() == Some("Warning");
        about.then(|| (e["reason"].as_str().unwrap_or_default(), e["note"].as_str().unwrap_or_default()))
    })
}

#[cfg(test)]
mod tests;
