//! The promises checked after a chaos run, computed from the emulators' request logs and state only
//! (never from the controller's own view), so that a controller bug cannot hide itself.
//!
//! # Who is judged how
//!
//! Pods are *honest* or *hostile*. Honest pods are the soak's churn in its own namespace: each element
//! names a NetworkAttachmentDefinition of that namespace and nothing else (no GUID, no marker). Hostile
//! pods live in a tenant namespace and may write anything into their annotation: forged `configured`
//! markers with another pod's GUID, requested GUIDs, references to other namespaces' networks, huge or
//! deeply nested values. What the truth is for each:
//!
//! - An honest pod is owed exactly what it asked for: every element configured with a GUID of its own,
//!   that GUID a member of the pkey its NAD has, nowhere else, from the configured patch until the pod
//!   ends. The one excuse is an exhausted pool (below): then some honest interfaces may wait.
//! - A hostile pod is owed nothing, but what it gets must be fair: a GUID no live honest pod holds, and
//!   membership only in the pkey its element's NAD really has (a cross-namespace reference counts as the
//!   referenced NAD; a missing NAD, a non-InfiniBand NAD or a GUID-only NAD has no pkey, so no membership).
//!   A pkey written into `cni-args.pkey` by the author proves nothing.
//! - Who wrote a `configured` marker matters. The controller's patches carry the whole annotation, so the
//!   marker a hostile author wrote on element `i` comes back in every patch of that pod. An element of a
//!   patch counts as *given by the controller* unless the author's own annotation already had element `i`
//!   configured with the same GUID and pkey text; only given elements are ownership. A forged marker is
//!   the author's claim, not the controller's grant: judging it as a grant would blame the controller for
//!   the attack, ignoring it entirely would miss a controller that endorses it (rewrites its pkey).
//! - The pool is exhausted when the GUIDs of the range that are visibly held leave fewer free than the
//!   honest interfaces still waiting. Held: configured on a live honest pod, given to a live hostile pod,
//!   or a hostile author's own marker the controller honoured with a membership in the element's NAD's
//!   pkey. A pod that merely requests a GUID and waits holds nothing: a controller that reserves GUIDs
//!   for a pod it cannot configure starves honest pods, and that is reported; so is a membership nobody
//!   explains (a leak), which holds nothing either.
//! - The judge reads annotations itself ([`crate::reading`]), linearly, so a hostile annotation can
//!   neither slow it down nor hide behind a parser bug it shares with the controller. Patches come from
//!   the API server's request log, which keeps the first 64 KiB of a body; a larger patch (only a hostile
//!   pod's, with tens of thousands of elements) cannot be read and is not judged by 3 to 6.
//!
//! # The invariants
//!
//! 1. Every live honest IB interface is configured (unless the pool is exhausted), with a GUID unique
//!    among live honest interfaces and hostile interfaces the controller configured.
//! 2. UFM membership within the pool range is exactly the live honest configured interfaces' GUIDs in
//!    their NADs' pkeys (none missing), plus, for hostile pods, memberships of a GUID no live honest
//!    interface has, in the pkey of a NAD a live hostile element with that GUID really references.
//! 3. No `configured` patch arrived while its GUID was not a member of its PKey (by the shared order of
//!    both servers' logs: the last answered add/remove of that pair before the patch arrived must be an
//!    add, and no remove of it may be in flight). Only elements the controller gave are judged.
//! 4. No GUID was owned by two live pods at the same time (ownership runs from the pod's first patch
//!    giving it to the pod's end; forged markers are not ownership).
//! 5. No live honest pod loses a membership it was given: once its configured patch arrived, no UFM
//!    remove of its GUID from its pkey that arrived before the pod ended is answered after that patch.
//! 6. Honest pods keep being configured: every honest pod created after the hostile tenants appeared
//!    and still live at the end was given all its interfaces by a configured patch (unless the pool is
//!    exhausted).

use std::collections::{BTreeMap, BTreeSet};

use ib_model::{Guid, GuidRange, PKey};

use crate::reading;

/// One configured element of a patch: its position, GUID and pkey as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchedElement {
    pub index: usize,
    pub guid: Guid,
    /// The pkey the element says, parsed (`None`: GUID-only or unparsable).
    pub pkey: Option<PKey>,
    /// `cni-args.pkey` exactly as written.
    pub pkey_text: Option<String>,
}

/// A successful `configured` patch, read from the API server's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfiguredPatch {
    /// Arrival order of the patch.
    pub order: u64,
    pub pod_uid: String,
    pub pod: String,
    /// The elements the patch marks configured.
    pub interfaces: Vec<PatchedElement>,
}

/// A successful UFM membership change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmChange {
    pub add: bool,
    pub pkey: PKey,
    pub guids: Vec<Guid>,
    /// Arrival and answer order.
    pub seq: u64,
    pub done_seq: u64,
}

/// One element of a live pod as the API server holds it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveInterface {
    /// `namespace/name`.
    pub pod: String,
    /// The element, for messages.
    pub network: String,
    pub honest: bool,
    /// The GUID, when the element is marked configured.
    pub configured: Option<Guid>,
    /// The configured marker was written by the controller (always so for an honest pod).
    pub given: bool,
    /// The GUID the element names, configured or requested.
    pub named: Option<Guid>,
    /// The pkey the element's NAD really has; `None`: GUID-only, not InfiniBand, or no such NAD.
    pub pkey: Option<PKey>,
}

/// An honest pod, for invariant 6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HonestPod {
    pub uid: String,
    pub name: String,
    /// Order number taken when it was created.
    pub created: u64,
    pub elements: usize,
    pub live: bool,
}

/// Reads the configured elements out of a merge patch body sent to `path`.
pub fn configured_patch(order: u64, path: &str, body: &str) -> Option<ConfiguredPatch> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    let meta = &body["metadata"];
    let raw = meta["annotations"][ib_model::annotation::NETWORKS_ANNOTATION].as_str()?;
    Some(ConfiguredPatch {
        order,
        pod_uid: meta["uid"].as_str()?.to_owned(),
        pod: path.rsplit('/').next().unwrap_or_default().to_owned(),
        interfaces: markers(reading::elements(raw, "any")?),
    })
}

/// The configured elements an author wrote into its own pod (forged markers), as patches echo them.
pub fn own_markers(raw: &str) -> Vec<PatchedElement> {
    reading::elements(raw, "any").map(markers).unwrap_or_default()
}

fn markers(elements: Vec<reading::Element>) -> Vec<PatchedElement> {
    elements
        .into_iter()
        .filter(|e| e.configured)
        .filter_map(|e| {
            Some(PatchedElement {
                index: e.index,
                guid: e.guid?,
                pkey: e.pkey.as_deref().and_then(|p| PKey::parse(p).ok()),
                pkey_text: e.pkey,
            })
        })
        .collect()
}

/// Drops from each patch the elements its pod's author had already marked configured itself
/// (`own`: pod uid → those elements): what remains is what the controller gave.
pub fn given_by_controller(
    patches: &[ConfiguredPatch],
    own: &BTreeMap<String, Vec<PatchedElement>>,
) -> Vec<ConfiguredPatch> {
    patches
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if let Some(own) = own.get(&p.pod_uid) {
                p.interfaces.retain(|e| !own.contains(e));
            }
            p
        })
        .collect()
}

/// Reads a UFM add or remove body (the Go plugin's format).
pub fn sm_change(add: bool, seq: u64, done_seq: u64, body: &str) -> Option<SmChange> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    let pkey = PKey::parse(body["pkey"].as_str()?).ok()?;
    let guids = body["guids"].as_array()?.iter().filter_map(|g| Guid::parse_ufm(g.as_str()?).ok()).collect();
    Some(SmChange { add, pkey, guids, seq, done_seq })
}

/// Whether honest interfaces may wait: fewer GUIDs of `range` are free than honest interfaces wait
/// for. Held: configured on a live honest pod, given to a live hostile pod by the controller, or marked
/// configured by a hostile author and visibly honoured (a UFM member of its NAD's pkey, `members`).
/// A UFM membership no live pod explains holds nothing (a leak is the controller's to remove, and
/// invariant 2 reports it), nor does a request that waits, nor a forged marker the controller ignores.
pub fn pool_exhausted(live: &[LiveInterface], members: &BTreeSet<(PKey, Guid)>, range: GuidRange) -> bool {
    let held: BTreeSet<Guid> = live
        .iter()
        .filter_map(|i| {
            let g = i.configured?;
            let honoured = i.honest || i.given || i.pkey.is_some_and(|p| members.contains(&(p, g)));
            (honoured && range.contains(g)).then_some(g)
        })
        .collect();
    let waiting = live.iter().filter(|i| i.honest && i.configured.is_none()).count() as u64;
    let free = range.len().saturating_sub(held.len() as u64);
    waiting > free
}

/// Invariant 1; `excused`: the pool is exhausted, so unconfigured honest interfaces are not violations.
pub fn live_interfaces_configured(live: &[LiveInterface], excused: bool) -> Vec<String> {
    let mut violations = Vec::new();
    let mut owners: BTreeMap<Guid, &str> = BTreeMap::new();
    for i in live {
        match i.configured {
            None if i.honest && !excused => {
                violations.push(format!("invariant 1: {} {} is not configured", i.pod, i.network));
            }
            Some(g) if i.honest || i.given => {
                if let Some(other) = owners.insert(g, &i.pod) {
                    violations.push(format!("invariant 1: GUID {g} configured for both {other} and {}", i.pod));
                }
            }
            _ => {}
        }
    }
    violations
}

/// Invariant 2: `members` are the (pkey, GUID) pairs UFM holds inside the pool range.
pub fn membership_matches(live: &[LiveInterface], members: &BTreeSet<(PKey, Guid)>) -> Vec<String> {
    let honest: Vec<&LiveInterface> = live.iter().filter(|i| i.honest).collect();
    let want: BTreeSet<(PKey, Guid)> = honest.iter().filter_map(|i| Some((i.pkey?, i.configured?))).collect();
    let honest_guids: BTreeMap<Guid, &str> =
        honest.iter().filter_map(|i| Some((i.configured?, i.pod.as_str()))).collect();
    // What hostile elements may hold: a GUID they name, in the pkey their NAD really has.
    let allowed: BTreeSet<(PKey, Guid)> =
        live.iter().filter(|i| !i.honest).filter_map(|i| Some((i.pkey?, i.named?))).collect();
    let mut violations = Vec::new();
    for (p, g) in members.difference(&want) {
        if let Some(owner) = honest_guids.get(g) {
            violations.push(format!(
                "invariant 2: {g} of honest pod {owner} is a member of {p}, a partition it was never given"
            ));
        } else if !allowed.contains(&(*p, *g)) {
            violations
                .push(format!("invariant 2: {g} is a member of {p} but no live configured interface needs it (leak)"));
        }
    }
    for (p, g) in want.difference(members) {
        violations.push(format!("invariant 2: {g} is configured for {p} but is not a member (missing)"));
    }
    violations
}

/// Invariant 3, on the elements the controller gave.
pub fn configured_after_membership(patches: &[ConfiguredPatch], changes: &[SmChange]) -> Vec<String> {
    let by_pair = by_pair(changes);
    let mut violations = Vec::new();
    for patch in patches {
        for e in &patch.interfaces {
            let (guid, Some(pkey)) = (e.guid, e.pkey) else { continue };
            let history = by_pair.get(&(pkey, guid)).map(Vec::as_slice).unwrap_or_default();
            let last = history.iter().filter(|c| c.done_seq < patch.order).max_by_key(|c| c.done_seq);
            let removing = history.iter().any(|c| !c.add && c.seq < patch.order && c.done_seq > patch.order);
            if !last.is_some_and(|c| c.add) || removing {
                violations.push(format!(
                    "invariant 3: pod {} was marked configured with {guid} at {} while {guid} was not a member of {pkey}",
                    patch.pod, patch.order
                ));
            }
        }
    }
    violations
}

fn by_pair(changes: &[SmChange]) -> BTreeMap<(PKey, Guid), Vec<&SmChange>> {
    let mut by_pair: BTreeMap<(PKey, Guid), Vec<&SmChange>> = BTreeMap::new();
    for c in changes {
        for g in &c.guids {
            by_pair.entry((c.pkey, *g)).or_default().push(c);
        }
    }
    by_pair
}

/// Invariant 4: `ends` gives, per pod uid, the order at which the pod was deleted or finished.
pub fn never_two_owners(patches: &[ConfiguredPatch], ends: &BTreeMap<String, u64>) -> Vec<String> {
    // Ownership interval per (GUID, pod): from the first configured patch to the pod's end.
    let mut intervals: BTreeMap<Guid, BTreeMap<String, (u64, u64, String)>> = BTreeMap::new();
    for p in patches {
        let end = ends.get(&p.pod_uid).copied().unwrap_or(u64::MAX);
        for e in &p.interfaces {
            let span =
                intervals.entry(e.guid).or_default().entry(p.pod_uid.clone()).or_insert((p.order, end, p.pod.clone()));
            span.0 = span.0.min(p.order);
        }
    }
    let mut violations = Vec::new();
    for (g, owners) in intervals {
        let mut spans: Vec<(u64, u64, String)> = owners.into_values().collect();
        spans.sort();
        for pair in spans.windows(2) {
            if pair[1].0 < pair[0].1 {
                violations.push(format!(
                    "invariant 4: GUID {g} owned by pod {} from {} while pod {} owned it until {}",
                    pair[1].2,
                    pair[1].0,
                    pair[0].2,
                    if pair[0].1 == u64::MAX { "the end".to_owned() } else { pair[0].1.to_string() }
                ));
            }
        }
    }
    violations
}

/// Invariant 5: `patches` of honest pods only; `ends` as for invariant 4.
pub fn memberships_kept(
    patches: &[ConfiguredPatch],
    changes: &[SmChange],
    ends: &BTreeMap<String, u64>,
) -> Vec<String> {
    let by_pair = by_pair(changes);
    // The first patch giving each (pod, pkey, GUID).
    let mut given: BTreeMap<(String, PKey, Guid), (u64, String)> = BTreeMap::new();
    for p in patches {
        for e in &p.interfaces {
            let Some(pkey) = e.pkey else { continue };
            let first = given.entry((p.pod_uid.clone(), pkey, e.guid)).or_insert((p.order, p.pod.clone()));
            first.0 = first.0.min(p.order);
        }
    }
    let mut violations = Vec::new();
    for ((uid, pkey, guid), (from, pod)) in given {
        let end = ends.get(&uid).copied().unwrap_or(u64::MAX);
        let history = by_pair.get(&(pkey, guid)).map(Vec::as_slice).unwrap_or_default();
        for c in history.iter().filter(|c| !c.add && c.done_seq > from && c.seq < end) {
            violations.push(format!(
                "invariant 5: honest pod {pod} lost {guid} in {pkey}: configured at {from}, removed at {} while it lived",
                c.done_seq
            ));
        }
    }
    violations
}

/// Invariant 6: `pods` are the honest pods, `since` the order at which the first hostile pod was created,
/// `patches` the honest pods' patches; `excused` as for invariant 1.
pub fn honest_pods_keep_being_configured(
    pods: &[HonestPod],
    patches: &[ConfiguredPatch],
    since: u64,
    excused: bool,
) -> Vec<String> {
    if excused {
        return Vec::new();
    }
    let mut configured: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for p in patches {
        configured.entry(p.pod_uid.as_str()).or_default().extend(p.interfaces.iter().map(|e| e.index));
    }
    let due: Vec<&HonestPod> = pods.iter().filter(|p| p.live && p.created > since).collect();
    let missed: Vec<&str> = due
        .iter()
        .filter(|p| configured.get(p.uid.as_str()).is_none_or(|done| (0..p.elements).any(|i| !done.contains(&i))))
        .map(|p| p.name.as_str())
        .collect();
    if missed.is_empty() {
        return Vec::new();
    }
    let shown = missed.iter().take(10).copied().collect::<Vec<_>>().join(", ");
    vec![format!(
        "invariant 6: {} of {} live honest pods created after the hostile tenants appeared (at {since}) were never fully configured: {shown}{}",
        missed.len(),
        due.len(),
        if missed.len() > 10 { ", …" } else { "" }
    )]
}

/// At most `per_invariant` violations of each invariant, in order, each group followed by how many more
/// there are: a stalled controller leaves hundreds of pods waiting, and one line each would hide what the
/// other invariants found.
pub fn summary(violations: &[String], per_invariant: usize) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for v in violations {
        groups.entry(v.split(':').next().unwrap_or_default()).or_default().push(v);
    }
    let mut lines = Vec::new();
    for (invariant, list) in groups {
        lines.extend(list.iter().take(per_invariant).map(|v| (*v).clone()));
        if list.len() > per_invariant {
            lines.push(format!("… {} more of {invariant}", list.len() - per_invariant));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: u64) -> Guid {
        Guid::from_u64(0x0200_0000_0000_0000 + v)
    }

    fn pk(v: u32) -> PKey {
        PKey::new(v).unwrap()
    }

    fn element(index: usize, guid: u64, pkey: u32) -> PatchedElement {
        PatchedElement { index, guid: g(guid), pkey: Some(pk(pkey)), pkey_text: Some(format!("0x{pkey:x}")) }
    }

    fn patch(order: u64, uid: &str, guid: u64, pkey: u32) -> ConfiguredPatch {
        ConfiguredPatch { order, pod_uid: uid.into(), pod: uid.into(), interfaces: vec![element(0, guid, pkey)] }
    }

    fn change(add: bool, guid: u64, seq: u64, done: u64) -> SmChange {
        SmChange { add, pkey: pk(5), guids: vec![g(guid)], seq, done_seq: done }
    }

    fn honest(pod: &str, guid: Option<u64>, pkey: u32) -> LiveInterface {
        LiveInterface {
            pod: pod.into(),
            network: "chaos/ib".into(),
            honest: true,
            configured: guid.map(g),
            given: guid.is_some(),
            named: guid.map(g),
            pkey: Some(pk(pkey)),
        }
    }

    fn hostile(pod: &str, named: u64, configured: bool, given: bool, pkey: Option<u32>) -> LiveInterface {
        LiveInterface {
            pod: pod.into(),
            network: "tenant/x".into(),
            honest: false,
            configured: configured.then(|| g(named)),
            given,
            named: Some(g(named)),
            pkey: pkey.map(pk),
        }
    }

    #[test]
    fn reads_patch_and_ufm_bodies() {
        let body = r#"{"metadata":{"uid":"u1","resourceVersion":"3","annotations":{"k8s.v1.cni.cncf.io/networks":"[{\"name\":\"other\"},{\"name\":\"ib\",\"cni-args\":{\"guid\":\"02:00:00:00:00:00:00:01\",\"mellanox.infiniband.app\":\"configured\",\"pkey\":\"0x5\"}}]"}}}"#;
        let p = configured_patch(9, "/api/v1/namespaces/d/pods/p", body).unwrap();
        assert_eq!(
            p,
            ConfiguredPatch {
                order: 9,
                pod_uid: "u1".into(),
                pod: "p".into(),
                interfaces: vec![PatchedElement {
                    index: 1,
                    guid: g(1),
                    pkey: Some(pk(5)),
                    pkey_text: Some("0x5".into())
                }]
            }
        );
        let c = sm_change(true, 1, 2, r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000001"]}"#).unwrap();
        assert_eq!(c, change(true, 1, 1, 2));
    }

    #[test]
    fn forged_markers_are_not_grants_but_a_rewritten_one_is() {
        let forged = r#"[{"name":"nowhere","cni-args":{"mellanox.infiniband.app":"configured","guid":"02:00:00:00:00:00:00:01","pkey":"0x5"}},{"name":"ib"}]"#;
        let own = own_markers(forged);
        assert_eq!(own, vec![element(0, 1, 5)]);
        let echoed = ConfiguredPatch {
            order: 4,
            pod_uid: "h".into(),
            pod: "h".into(),
            interfaces: vec![element(0, 1, 5), element(1, 2, 6)],
        };
        let mut endorsed = echoed.clone();
        endorsed.interfaces[0].pkey_text = Some("0x0005".into());
        let owns = BTreeMap::from([("h".to_owned(), own)]);
        let given = given_by_controller(&[echoed, endorsed], &owns);
        assert_eq!(given[0].interfaces, vec![element(1, 2, 6)]);
        assert_eq!(given[1].interfaces.len(), 2, "the controller rewrote the forged element: a grant");
    }

    #[test]
    fn invariant_3_wants_an_answered_add_before_the_patch() {
        assert!(configured_after_membership(&[patch(10, "a", 1, 5)], &[change(true, 1, 3, 5)]).is_empty());
        // The add was answered after the patch arrived.
        assert_eq!(configured_after_membership(&[patch(10, "a", 1, 5)], &[change(true, 1, 3, 11)]).len(), 1);
        // Removed again before the patch.
        assert_eq!(
            configured_after_membership(&[patch(10, "a", 1, 5)], &[change(true, 1, 3, 5), change(false, 1, 6, 7)])
                .len(),
            1
        );
        // A remove in flight while the patch arrived.
        assert_eq!(
            configured_after_membership(&[patch(10, "a", 1, 5)], &[change(true, 1, 3, 5), change(false, 1, 9, 12)])
                .len(),
            1
        );
        // No add at all.
        assert_eq!(configured_after_membership(&[patch(10, "a", 1, 5)], &[]).len(), 1);
    }

    #[test]
    fn invariant_4_finds_overlapping_owners() {
        let ends = BTreeMap::from([("a".to_owned(), 20u64)]);
        assert!(never_two_owners(&[patch(10, "a", 1, 5), patch(25, "b", 1, 5)], &ends).is_empty());
        assert_eq!(never_two_owners(&[patch(10, "a", 1, 5), patch(15, "b", 1, 5)], &ends).len(), 1);
        assert_eq!(never_two_owners(&[patch(10, "a", 1, 5), patch(15, "b", 1, 5)], &BTreeMap::new()).len(), 1);
    }

    #[test]
    fn invariants_1_and_2_find_leaks_gaps_and_duplicates() {
        let live = vec![honest("a", Some(1), 5), honest("b", Some(1), 5), honest("c", None, 5)];
        assert_eq!(live_interfaces_configured(&live, false).len(), 2);
        assert_eq!(live_interfaces_configured(&live, true).len(), 1, "an exhausted pool excuses waiting only");
        let members = BTreeSet::from([(pk(5), g(1)), (pk(5), g(9))]);
        let v = membership_matches(&live[..1], &members);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("leak"));
        assert_eq!(membership_matches(&live[..1], &BTreeSet::new()).len(), 1);
    }

    #[test]
    fn hostile_pods_are_judged_fairly() {
        let live = vec![
            honest("chaos/a", Some(1), 5),
            // Forged claim on the honest GUID: the tenant's words, not a second owner.
            hostile("tenant/f", 1, true, false, Some(6)),
            // A GUID of its own, given by the controller, in its NAD's pkey 6.
            hostile("tenant/r", 2, true, true, Some(6)),
            // A request on a GUID-only network: never a membership.
            hostile("tenant/q", 3, false, false, None),
        ];
        assert!(live_interfaces_configured(&live, false).is_empty());
        // Fair: the honest pod's membership and the hostile pod's own GUID in its NAD's pkey.
        assert!(membership_matches(&live, &BTreeSet::from([(pk(5), g(1)), (pk(6), g(2))])).is_empty());
        // The honest GUID joined the forger's partition.
        let v = membership_matches(&live, &BTreeSet::from([(pk(5), g(1)), (pk(6), g(1))]));
        assert!(v.len() == 1 && v[0].contains("never given"), "{v:?}");
        // A hostile GUID in a pkey its NAD does not have (e.g. the one written into cni-args.pkey).
        let v = membership_matches(&live, &BTreeSet::from([(pk(5), g(1)), (pk(7), g(2))]));
        assert!(v.len() == 1 && v[0].contains("leak"), "{v:?}");
        assert_eq!(membership_matches(&live, &BTreeSet::from([(pk(5), g(1)), (pk(5), g(3))])).len(), 1);
        // The honest pod lost its membership.
        let v = membership_matches(&live, &BTreeSet::from([(pk(6), g(2))]));
        assert!(v.len() == 1 && v[0].contains("missing"), "{v:?}");
        // The controller gave the honest GUID to a hostile pod too.
        let stolen = vec![honest("chaos/a", Some(1), 5), hostile("tenant/s", 1, true, true, Some(5))];
        assert_eq!(live_interfaces_configured(&stolen, false).len(), 1);
    }

    #[test]
    fn pool_exhaustion_counts_what_is_held() {
        // 3 GUIDs, one held by an honest pod, two honest interfaces waiting.
        let range = GuidRange::new(g(0), g(2)).unwrap();
        let none = BTreeSet::new();
        let base = vec![honest("a", Some(0), 5), honest("b", None, 5), honest("e", None, 5)];
        assert!(!pool_exhausted(&base, &none, range));
        let with = |extra: LiveInterface| {
            let mut live = base.clone();
            live.push(extra);
            live
        };
        // Given to a hostile pod by the controller: held.
        assert!(pool_exhausted(&with(hostile("t", 1, true, true, Some(6))), &none, range));
        // A forged marker the controller ignores holds nothing; honoured with a membership in its NAD's
        // pkey, it holds.
        let forged = with(hostile("f", 1, true, false, Some(6)));
        assert!(!pool_exhausted(&forged, &none, range));
        assert!(pool_exhausted(&forged, &BTreeSet::from([(pk(6), g(1))]), range));
        // A merely requested GUID holds nothing, even with a (leaked) membership.
        let requested = with(hostile("w", 1, false, false, Some(6)));
        assert!(!pool_exhausted(&requested, &BTreeSet::from([(pk(6), g(1))]), range));
        // Outside the range: holds nothing of it.
        assert!(!pool_exhausted(&with(hostile("o", 9, true, true, Some(6))), &none, range));
    }

    #[test]
    fn invariant_5_finds_a_lost_membership() {
        let given = [patch(10, "a", 1, 5)];
        assert!(memberships_kept(&given, &[change(true, 1, 3, 5)], &BTreeMap::new()).is_empty());
        assert_eq!(
            memberships_kept(&given, &[change(true, 1, 3, 5), change(false, 1, 12, 13)], &BTreeMap::new()).len(),
            1
        );
        // Removed after the pod ended: fine.
        let ends = BTreeMap::from([("a".to_owned(), 11u64)]);
        assert!(memberships_kept(&given, &[change(false, 1, 12, 13)], &ends).is_empty());
        // Sent while it lived, answered after it ended: lost while alive.
        assert_eq!(memberships_kept(&given, &[change(false, 1, 10, 13)], &ends).len(), 1);
    }

    #[test]
    fn summary_keeps_every_invariant_visible() {
        let mut v: Vec<String> = (0..5).map(|i| format!("invariant 1: pod-{i} is not configured")).collect();
        v.push("invariant 5: honest pod pod-9 lost a GUID".into());
        let lines = summary(&v, 2);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2], "… 3 more of invariant 1");
        assert!(lines[3].starts_with("invariant 5"));
    }

    #[test]
    fn invariant_6_names_honest_pods_left_waiting() {
        let pod = |uid: &str, created: u64, elements: usize, live: bool| HonestPod {
            uid: uid.into(),
            name: uid.into(),
            created,
            elements,
            live,
        };
        let pods =
            [pod("early", 1, 1, true), pod("done", 10, 1, true), pod("half", 11, 2, true), pod("gone", 12, 1, false)];
        let patches = [patch(20, "done", 1, 5), patch(21, "half", 2, 5)];
        let v = honest_pods_keep_being_configured(&pods, &patches, 5, false);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("1 of 2") && v[0].contains("half") && !v[0].contains("early"), "{v:?}");
        assert!(honest_pods_keep_being_configured(&pods, &patches, 5, true).is_empty());
    }
}
