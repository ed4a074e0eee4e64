//! The promises checked after a chaos run, computed from the emulators' request logs and state only
//! (never from the controller's own view), so that a controller bug cannot hide itself.
//!
//! 1. Every live IB interface is configured with a GUID unique among live pods.
//! 2. UFM membership within the pool range equals exactly the configured live interfaces' GUIDs in
//!    their PKeys.
//! 3. No `configured` patch arrived while its GUID was not a member of its PKey (by the shared order of
//!    both servers' logs: the last answered add/remove of that pair before the patch arrived must be an
//!    add, and no remove of it may be in flight).
//! 4. No GUID was owned by two live pods at the same time (ownership runs from the pod's configured
//!    patch to the pod's end).

use std::collections::{BTreeMap, BTreeSet};

use ib_model::{Guid, NetworksAnnotation, PKey};

/// A successful `configured` patch, read from the API server's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfiguredPatch {
    /// Arrival order of the patch.
    pub order: u64,
    pub pod_uid: String,
    pub pod: String,
    /// (GUID, pkey or `None` for GUID-only) of each element the patch marks configured.
    pub interfaces: Vec<(Guid, Option<PKey>)>,
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

/// A live pod's interfaces as its annotation reads now: (element, GUID if configured, pkey text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveInterface {
    pub pod: String,
    pub network: String,
    pub configured: Option<Guid>,
    pub pkey: Option<PKey>,
}

/// Reads the configured elements out of a merge patch body sent to `path`.
pub fn configured_patch(order: u64, path: &str, body: &str) -> Option<ConfiguredPatch> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    let meta = &body["metadata"];
    let raw = meta["annotations"][ib_model::annotation::NETWORKS_ANNOTATION].as_str()?;
    let annotation = NetworksAnnotation::parse(raw, "any").ok()?;
    let interfaces = annotation
        .selections()
        .iter()
        .filter(|s| s.configured)
        .filter_map(|s| {
            let guid = Guid::parse(&s.guid.as_ref()?.0).ok()?;
            Some((guid, s.pkey.as_deref().and_then(|p| PKey::parse(p).ok())))
        })
        .collect();
    Some(ConfiguredPatch {
        order,
        pod_uid: meta["uid"].as_str()?.to_owned(),
        pod: path.rsplit('/').next().unwrap_or_default().to_owned(),
        interfaces,
    })
}

/// Reads a UFM add or remove body (the Go plugin's format).
pub fn sm_change(add: bool, seq: u64, done_seq: u64, body: &str) -> Option<SmChange> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    let pkey = PKey::parse(body["pkey"].as_str()?).ok()?;
    let guids = body["guids"].as_array()?.iter().filter_map(|g| Guid::parse_ufm(g.as_str()?).ok()).collect();
    Some(SmChange { add, pkey, guids, seq, done_seq })
}

/// Invariant 1.
pub fn live_interfaces_configured(live: &[LiveInterface]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut owners: BTreeMap<Guid, &str> = BTreeMap::new();
    for i in live {
        match i.configured {
            None => violations.push(format!("invariant 1: {} {} is not configured", i.pod, i.network)),
            Some(g) => {
                if let Some(other) = owners.insert(g, &i.pod) {
                    violations.push(format!("invariant 1: GUID {g} configured for both {other} and {}", i.pod));
                }
            }
        }
    }
    violations
}

/// Invariant 2: `members` are the (pkey, GUID) pairs UFM holds inside the pool range.
pub fn membership_matches(live: &[LiveInterface], members: &BTreeSet<(PKey, Guid)>) -> Vec<String> {
    let want: BTreeSet<(PKey, Guid)> = live.iter().filter_map(|i| Some((i.pkey?, i.configured?))).collect();
    let mut violations = Vec::new();
    for (p, g) in members.difference(&want) {
        violations
            .push(format!("invariant 2: {g} is a member of {p} but no live configured interface needs it (leak)"));
    }
    for (p, g) in want.difference(members) {
        violations.push(format!("invariant 2: {g} is configured for {p} but is not a member (missing)"));
    }
    violations
}

/// Invariant 3.
pub fn configured_after_membership(patches: &[ConfiguredPatch], changes: &[SmChange]) -> Vec<String> {
    let mut by_pair: BTreeMap<(PKey, Guid), Vec<&SmChange>> = BTreeMap::new();
    for c in changes {
        for g in &c.guids {
            by_pair.entry((c.pkey, *g)).or_default().push(c);
        }
    }
    let mut violations = Vec::new();
    for patch in patches {
        for (guid, pkey) in &patch.interfaces {
            let Some(pkey) = pkey else { continue };
            let history = by_pair.get(&(*pkey, *guid)).map(Vec::as_slice).unwrap_or_default();
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

/// Invariant 4: `ends` gives, per pod uid, the order at which the pod was deleted or finished.
pub fn never_two_owners(patches: &[ConfiguredPatch], ends: &BTreeMap<String, u64>) -> Vec<String> {
    // Ownership interval per (GUID, pod): from the first configured patch to the pod's end.
    let mut intervals: BTreeMap<Guid, BTreeMap<String, (u64, u64)>> = BTreeMap::new();
    for p in patches {
        let end = ends.get(&p.pod_uid).copied().unwrap_or(u64::MAX);
        for (g, _) in &p.interfaces {
            let e = intervals.entry(*g).or_default().entry(p.pod_uid.clone()).or_insert((p.order, end));
            e.0 = e.0.min(p.order);
        }
    }
    let mut violations = Vec::new();
    for (g, owners) in intervals {
        let mut spans: Vec<(u64, u64, String)> = owners.into_iter().map(|(uid, (s, e))| (s, e, uid)).collect();
        spans.sort();
        for pair in spans.windows(2) {
            if pair[1].0 < pair[0].1 {
                violations.push(format!(
                    "invariant 4: GUID {g} owned by pod uid {} from {} while pod uid {} owned it until {}",
                    pair[1].2, pair[1].0, pair[0].2, pair[0].1
                ));
            }
        }
    }
    violations
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

    fn patch(order: u64, uid: &str, guid: u64, pkey: u32) -> ConfiguredPatch {
        ConfiguredPatch { order, pod_uid: uid.into(), pod: uid.into(), interfaces: vec![(g(guid), Some(pk(pkey)))] }
    }

    fn change(add: bool, guid: u64, seq: u64, done: u64) -> SmChange {
        SmChange { add, pkey: pk(5), guids: vec![g(guid)], seq, done_seq: done }
    }

    #[test]
    fn reads_patch_and_ufm_bodies() {
        let body = r#"{"metadata":{"uid":"u1","resourceVersion":"3","annotations":{"k8s.v1.cni.cncf.io/networks":"[{\"name\":\"ib\",\"cni-args\":{\"guid\":\"02:00:00:00:00:00:00:01\",\"mellanox.infiniband.app\":\"configured\",\"pkey\":\"0x5\"}},{\"name\":\"other\"}]"}}}"#;
        let p = configured_patch(9, "/api/v1/namespaces/d/pods/p", body).unwrap();
        assert_eq!(
            p,
            ConfiguredPatch { order: 9, pod_uid: "u1".into(), pod: "p".into(), interfaces: vec![(g(1), Some(pk(5)))] }
        );
        let c = sm_change(true, 1, 2, r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000001"]}"#).unwrap();
        assert_eq!(c, change(true, 1, 1, 2));
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
        let live = vec![
            LiveInterface { pod: "a".into(), network: "ib".into(), configured: Some(g(1)), pkey: Some(pk(5)) },
            LiveInterface { pod: "b".into(), network: "ib".into(), configured: Some(g(1)), pkey: Some(pk(5)) },
            LiveInterface { pod: "c".into(), network: "ib".into(), configured: None, pkey: Some(pk(5)) },
        ];
        assert_eq!(live_interfaces_configured(&live).len(), 2);
        let members = BTreeSet::from([(pk(5), g(1)), (pk(5), g(9))]);
        let v = membership_matches(&live[..1], &members);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("leak"));
        assert_eq!(membership_matches(&live[..1], &BTreeSet::new()).len(), 1);
    }
}
