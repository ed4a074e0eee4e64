//! The demo's verdict, from the final state of the API server and the UFM emulator only: what a user
//! with kubectl and the UFM console could check by hand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ib_model::{Guid, GuidRange};
use serde_json::Value;

use super::observer::{ConfiguredInterface, configured_interfaces};
use crate::workload::{IbNetworks, PodKind, REQUESTED_GUID};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    pub passed: bool,
    pub checks: Vec<Check>,
}

/// Everything the verdict is drawn from.
pub struct Inputs<'a> {
    /// Every pod of the demo namespace, as stored now.
    pub pods: &'a [Arc<Value>],
    /// What each pod name was created as.
    pub kinds: &'a HashMap<String, PodKind>,
    pub ib: &'a IbNetworks,
    /// UFM: every GUID with the partitions it is a member of.
    pub memberships: &'a BTreeMap<ufm_emulator::Guid, Vec<u16>>,
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

fn check(name: &'static str, failures: Vec<String>, ok: String) -> Check {
    const SHOWN: usize = 5;
    if failures.is_empty() {
        return Check { name, passed: true, detail: ok };
    }
    let more = failures.len().saturating_sub(SHOWN);
    let mut detail = failures.into_iter().take(SHOWN).collect::<Vec<_>>().join("; ");
    if more > 0 {
        detail.push_str(&format!("; and {more} more"));
    }
    Check { name, passed: false, detail }
}

pub fn verify(inputs: &Inputs<'_>) -> Verification {
    let kind_of = |pod: &Value| inputs.kinds.get(name_of(pod)).copied();
    let live: Vec<&Value> = inputs.pods.iter().map(|p| p.as_ref()).filter(|p| is_live(p)).collect();
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
        unconfigured,
        format!("{ib_pods} pods, {} interfaces", interfaces.len()),
    ));

    let member_of = |guid: Guid| -> &[u16] {
        inputs.memberships.get(&ufm_emulator::Guid::from(guid.as_u64())).map(Vec::as_slice).unwrap_or(&[])
    };
    let mut wrong = Vec::new();
    let mut with_pkey = 0;
    for (pod, i) in &interfaces {
        match i.pkey {
            Some(pkey) => {
                with_pkey += 1;
                if !member_of(i.guid).contains(&pkey) {
                    wrong.push(format!("{pod} {}: {} is not a member of 0x{pkey:x}", i.interface, i.guid));
                }
            }
            None if !member_of(i.guid).is_empty() => {
                wrong.push(format!("{pod} {}: GUID-only {} is in a partition", i.interface, i.guid));
            }
            None => {}
        }
    }
    checks.push(check(
        "their GUIDs are members of the right PKeys in UFM",
        wrong,
        format!("{with_pkey} memberships checked, {} GUID-only interfaces in no PKey", interfaces.len() - with_pkey),
    ));

    let mut expected: HashMap<Guid, BTreeSet<u16>> = HashMap::new();
    for (_, i) in &interfaces {
        let entry = expected.entry(i.guid).or_default();
        entry.extend(i.pkey);
    }
    let mut strays = Vec::new();
    let mut in_range = 0;
    for (guid, pkeys) in inputs.memberships {
        let Some(guid) = u64::try_from(guid.value()).ok().map(Guid::from_u64) else { continue };
        if !inputs.range.contains(guid) {
            continue;
        }
        in_range += 1;
        let want = expected.get(&guid).cloned().unwrap_or_default();
        let extra: Vec<String> = pkeys.iter().filter(|p| !want.contains(p)).map(|p| format!("0x{p:x}")).collect();
        if !extra.is_empty() {
            strays.push(format!("{guid} is a member of {} without a live owner", extra.join(",")));
        }
    }
    checks.push(check(
        "nothing else in the pool range is a member of any PKey",
        strays,
        format!("{in_range} pool GUIDs in UFM, all owned by live pods"),
    ));

    let mut owners: HashMap<Guid, &str> = HashMap::new();
    let mut shared = Vec::new();
    for (pod, i) in &interfaces {
        if let Some(first) = owners.insert(i.guid, pod) {
            shared.push(format!("{} is used by {first} and {pod}", i.guid));
        }
    }
    checks.push(check("no GUID is shared", shared, format!("{} distinct GUIDs", owners.len())));

    let leaked: Vec<String> = inputs
        .released
        .iter()
        .filter(|g| !member_of(**g).is_empty())
        .map(|g| format!("{g} of a deleted or finished pod is still a member"))
        .collect();
    let lingering: Vec<String> = inputs
        .pods
        .iter()
        .filter(|p| inputs.deleted.contains(name_of(p)))
        .map(|p| format!("deleted pod {} still exists", name_of(p)))
        .collect();
    checks.push(check(
        "deleted and finished pods left their PKeys",
        leaked.into_iter().chain(lingering).collect(),
        format!("{} GUIDs released, {} pods deleted", inputs.released.len(), inputs.deleted.len()),
    ));

    let pinned = interfaces.iter().filter(|(pod, _)| kind_of_name(inputs.kinds, pod) == Some(PodKind::RequestedGuid));
    let pinned: Vec<Guid> = pinned.map(|(_, i)| i.guid).collect();
    checks.push(if pinned == [REQUESTED_GUID] {
        Check { name: "the requested GUID was honoured", passed: true, detail: REQUESTED_GUID.to_string() }
    } else {
        Check {
            name: "the requested GUID was honoured",
            passed: false,
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
        refused,
        format!("{bad} bad pods"),
    ));

    let not_running: Vec<String> = live
        .iter()
        .filter(|p| kind_of(p).is_some_and(|k| !k.is_bad()) && phase_of(p) != "Running")
        .map(|p| format!("{} is {}", name_of(p), phase_of(p)))
        .collect();
    let running = live.iter().filter(|p| phase_of(p) == "Running").count();
    checks.push(check("every other live pod is Running", not_running, format!("{running} running")));

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
