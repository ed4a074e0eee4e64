//! A hostile tenant gets nothing, and the first start imports only what has evidence.

use super::*;

fn configured_with(guid: &str, pkey: &str) -> String {
    format!(
        r#"[{{"name":"ib5","cni-args":{{"guid":"{guid}","mellanox.infiniband.app":"configured","pkey":"{pkey}"}}}}]"#
    )
}

/// A pod in another namespace, unscheduled or scheduled, on a missing NAD or a real one, that writes
/// a `configured` marker with a live pod's GUID takes nothing from it, at once or after a new leader.
#[test]
fn forged_claims_never_displace_a_recorded_owner() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    w.nad("evil", "ib5", IB5);
    let victim = w.pod("default", "victim", "ib5");
    w.settle();
    let guid = g_("00");
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    let forged_missing = r#"[{"name":"no-such-nad","cni-args":{"mellanox.infiniband.app":"configured","guid":"02:00:00:00:00:00:00:00"}}]"#;
    let unscheduled = w.pod("evil", "unscheduled", forged_missing);
    w.edit(&unscheduled, |v| v.node_name = None);
    let scheduled = w.pod("evil", "scheduled", &configured_with("02:00:00:00:00:00:00:00", "0x5"));
    let other_pkey = w.pod("evil", "other-pkey", &configured_with("02:00:00:00:00:00:00:00", "0x9"));
    let requested = w.pod("evil", "requested", r#"[{"name":"ib5","cni-args":{"guid":"02:00:00:00:00:00:00:00"}}]"#);
    w.settle();
    for _ in 0..2 {
        w.restart();
        w.settle();
    }
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert!(w.members("0x9").is_empty());
    assert!(!w.sm_requests().iter().any(|r| matches!(r, Logged::Sm(SmOp::Remove, ..))), "{:?}", w.sm_requests());
    assert_eq!(w.recorded_owner(guid).as_deref(), Some("victim"));
    assert_eq!(w.reason(&victim), None);
    assert_eq!(w.reason(&scheduled), Some("DuplicateGUID"));
    assert_eq!(w.reason(&other_pkey), Some("DuplicateGUID"));
    assert_eq!(w.reason(&requested), Some("GUIDInUse"));
    // Their Events say nothing about the other tenant.
    for (pod, reason) in &w.pending_seen {
        if pod != "victim" {
            assert!(!reason.to_string().contains("default/victim"), "{pod}: {reason}");
        }
    }
    // Within one namespace the owner is named, which helps its user.
    let same = w.pod("default", "same-ns", r#"[{"name":"ib5","cni-args":{"guid":"02:00:00:00:00:00:00:00"}}]"#);
    w.settle();
    assert!(w.state.pending_reason(&same).unwrap().to_string().contains("default/victim"));
}

/// A `configured` marker on a free GUID that no record backs is a request: it may get that GUID on its
/// own NAD's partition, never the partition its marker names.
#[test]
fn an_unbacked_configured_marker_is_only_a_request() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let p = w.pod("default", "p", &configured_with("02:00:00:00:00:00:00:33", "0x9"));
    w.settle();
    assert_eq!(w.reason(&p), None);
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("33")]));
    assert!(w.members("0x9").is_empty());
    assert_eq!(w.recorded_owner(g_("33")).as_deref(), Some("p"));
    // The annotation already said configured: nothing to patch.
    assert!(!w.log.iter().any(|l| matches!(l, Logged::Configured(..))));
}

/// A pod asking for one free GUID by name plus three generated ones, on a pool of 4 with 1 in use:
/// it waits for the pool, and decisions go on for everyone else.
#[test]
fn a_requested_guid_counts_against_the_pool_like_a_generated_one() {
    let mut w = World::new("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:03").synced();
    w.nad("default", "ib5", IB5);
    let first = w.pod("default", "first", "ib5");
    w.settle();
    assert_eq!(w.reason(&first), None);
    let greedy = w.pod(
        "default",
        "greedy",
        r#"[{"name":"ib5","interface":"a","cni-args":{"guid":"02:00:00:00:00:00:00:02"}},{"name":"ib5","interface":"b"},{"name":"ib5","interface":"c"},{"name":"ib5","interface":"d"}]"#,
    );
    w.settle();
    assert_eq!(w.reason(&greedy), Some("GUIDPoolExhausted"));
    // It holds nothing while it waits, so a modest pod still fits.
    assert_eq!(w.state.pool().allocated_count(), 1);
    let modest = w.pod("default", "modest", "ib5");
    w.settle();
    assert_eq!(w.reason(&modest), None);
}

/// A NAD's pkey edit or deletion moves no running pod: it keeps its recorded partition and is told
/// once; new pods use the NAD as it is now.
#[test]
fn a_nad_edit_keeps_running_pods_in_their_partition() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let running = w.pod("default", "running", "ib5");
    w.settle();
    let old = g_("00");
    // A configured element written before the partition was recorded (no cni-args pkey) is no different.
    let legacy = w.pod("default", "legacy", r#"[{"name":"ib5"}]"#);
    w.settle();
    let legacy_guid = g_("01");
    w.nad("default", "ib5", r#"{"type":"ib-sriov","pkey":"0x6"}"#);
    w.settle();
    let fresh = w.pod("default", "fresh", "ib5");
    w.settle();
    assert_eq!(w.members("0x5"), BTreeSet::from([old, legacy_guid]));
    assert_eq!(w.members("0x6"), BTreeSet::from([g_("02")]));
    assert_eq!(w.reason(&fresh), None);
    let told: BTreeSet<&str> = w.notices.iter().map(|(pod, _, _)| pod.as_str()).collect();
    assert_eq!(told, BTreeSet::from(["legacy", "running"]));
    assert_eq!(w.notices.len(), 2);
    assert!(
        w.notices.iter().all(|n| n.1 == "PartitionKept" && n.2.contains("keeps partition 0x0005")),
        "{:?}",
        w.notices
    );
    // Deleting the NAD removes nothing either, and the pods are not told twice (by one leader).
    w.state.delete_nad(&NetworkRef::new("default", "ib5"));
    w.settle();
    // Only the pod configured since then, on 0x6, is told now.
    assert_eq!(w.notices.len(), 3);
    assert!(w.notices[2].0 == "fresh" && w.notices[2].2.contains("is gone"), "{:?}", w.notices);
    w.restart();
    w.state.delete_nad(&NetworkRef::new("default", "ib5"));
    w.settle();
    assert!(w.members("0x5").contains(&old));
    assert!(!w.sm_requests().iter().any(|r| matches!(r, Logged::Sm(SmOp::Remove, ..))));
    assert_eq!((w.reason(&running), w.reason(&legacy)), (None, None));
}

/// An add whose outcome is unknown (a timeout) keeps its GUID held even when the owner leaves, until a
/// listing says where it is; then the membership is removed and the GUID returns.
#[test]
fn an_unknown_outcome_holds_the_guid_until_a_listing_settles_it() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    w.settle();
    // The subnet manager applies the add, but the answer never comes.
    w.answers_lost = true;
    let p = w.pod("default", "p", "ib5");
    for _ in 0..3 {
        let plan = w.state.plan();
        assert!(!plan.list_sm || w.state.uncertain_count() > 0, "{plan:?}");
        w.enqueue(plan);
        while w.queue.iter().any(|q| !matches!(q, Work::List)) {
            let i = w.queue.iter().position(|q| !matches!(q, Work::List)).unwrap();
            w.complete(i);
        }
    }
    let guid = g_("00");
    assert_eq!(w.state.uncertain_count(), 1);
    assert_eq!(w.records[&guid].state, crate::records::RecordState::Unknown);
    assert_eq!(w.reason(&p), Some("SubnetManagerFailed"));
    assert!(!w.log.iter().any(|l| matches!(l, Logged::Configured(..))));
    // The owner leaves: the GUID stays held, nothing is decided for it until the listing.
    w.delete(&p);
    let plan = w.state.plan();
    w.enqueue(plan);
    assert!(w.state.pool().is_allocated(guid));
    w.answers_lost = false;
    while !w.queue.is_empty() {
        w.complete(0);
    }
    w.settle();
    // The listing settled where it is; the removal waits for the backoff like any retry.
    assert_eq!(w.state.uncertain_count(), 0);
    assert!(w.members("0x5").contains(&guid));
    w.state.retry_guids(&[guid]);
    w.settle();
    assert!(w.members("0x5").is_empty());
    assert!(!w.state.pool().is_allocated(guid));
    assert!(w.records.is_empty());
}

#[test]
fn namespace_isolation_refuses_other_namespaces_but_global_ones() {
    let mut w = World::default_range();
    w.policy = Policy {
        namespace_isolation: true,
        global_namespaces: BTreeSet::from(["shared".to_owned()]),
        ..Policy::default()
    };
    w.state = State::with_policy(w.state.pool().range(), w.policy.clone());
    let mut w = w.synced();
    for ns in ["tenant-a", "tenant-b", "shared"] {
        w.nad(ns, "ib5", IB5);
    }
    let own = w.pod("tenant-a", "own", "ib5");
    let global = w.pod("tenant-a", "global", "shared/ib5");
    let crossing = w.pod("tenant-a", "crossing", "tenant-b/ib5");
    w.settle();
    assert_eq!((w.reason(&own), w.reason(&global)), (None, None));
    assert_eq!(w.reason(&crossing), Some("NamespaceNotAllowed"));
    assert!(w.state.pending_reason(&crossing).unwrap().to_string().contains("tenant-b/ib5"));
    assert_eq!(w.members("0x5").len(), 2);
}

#[test]
fn a_pod_may_have_at_most_32_infiniband_interfaces() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let many: Vec<Value> = (0..33).map(|k| serde_json::json!({"name": "ib5", "interface": format!("ib{k}")})).collect();
    let p = w.pod("default", "many", &Value::Array(many).to_string());
    let rails: Vec<Value> = (0..8).map(|k| serde_json::json!({"name": "ib5", "interface": format!("ib{k}")})).collect();
    let ok = w.pod("default", "rails", &Value::Array(rails).to_string());
    w.settle();
    assert_eq!(w.reason(&p), Some("TooManyInterfaces"));
    assert_eq!(w.reason(&ok), None);
    assert_eq!(w.state.pool().allocated_count(), 8);
}

/// The first start without records imports configured annotations once, oldest pod first: the
/// loser of a duplicate gets an Event and nothing is removed from the winner. Markers written after
/// that are requests only.
#[test]
fn the_first_start_imports_annotations_once() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib5", IB5);
    w.sm_seed("0x5", "02:00:00:00:00:00:00:10");
    // Uids sort opposite to age: the import goes by age, not by uid.
    let old = w.pod("default", "z-old", &configured_with("02:00:00:00:00:00:00:10", "0x5"));
    let young = w.pod("default", "a-young", &configured_with("02:00:00:00:00:00:00:10", "0x5"));
    let w = &mut w.synced();
    w.settle();
    assert_eq!(w.recorded_owner(g_("10")).as_deref(), Some("z-old"));
    assert_eq!(w.reason(&young), Some("DuplicateGUID"));
    assert_eq!(w.reason(&old), None);
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("10")]));
    assert!(w.unrecorded.is_empty());
    // After the import, a forged marker is a request like any other.
    w.delete(&old);
    let forger = w.pod("default", "forger", &configured_with("02:00:00:00:00:00:00:11", "0x5"));
    w.restart();
    w.settle();
    assert_eq!(w.recorded_owner(g_("11")).as_deref(), Some("forger"));
    // The young pod is not handed the GUID by its stale marker on restart: it asks for it, and gets it
    // once the old owner is gone.
    assert!(w.records.contains_key(&g_("10")));
    assert_eq!(w.reason(&forger), None);
}

/// What a pod that cannot be configured now keeps of its annotation: nothing but its presence.
#[test]
fn unscheduled_pods_keep_no_annotation_text() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let huge = format!("[{}]", vec![r#"{"name":"ib5"}"#; 2000].join(","));
    let p = w.pod("default", "p", &huge);
    w.edit(&p, |v| v.node_name = None);
    assert_eq!(w.state.pod(&p).unwrap().networks.as_deref(), Some(""));
    w.settle();
    assert_eq!(w.state.pool().allocated_count(), 0);
}

/// A configured pod whose annotation is removed keeps its GUID and partition until it ends, across a new
/// leader too: its VF carries the GUID, and handing it to another pod would put it on the fabric twice.
#[test]
fn a_configured_pod_keeps_its_guid_when_its_annotation_is_removed() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let p = w.pod("default", "p", "ib5");
    w.settle();
    w.edit(&p, |v| v.networks = None);
    w.settle();
    w.restart();
    w.settle();
    let q = w.pod("default", "q", r#"[{"name":"ib5","cni-args":{"guid":"02:00:00:00:00:00:00:00"}}]"#);
    w.settle();
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("00")]));
    assert_eq!(w.recorded_owner(g_("00")).as_deref(), Some("p"));
    assert_eq!(w.reason(&q), Some("GUIDInUse"));
    w.delete(&p);
    w.settle();
    assert_eq!(w.recorded_owner(g_("00")).as_deref(), Some("q"));
}

/// The import becomes final only once a block exists: until the anchor block is stored, nothing is
/// decided (no add, no patch), and a failed anchor write is retried after the backoff, even when the
/// import found nothing. Once it is stored, a marker forged later is never imported by a new leader.
#[test]
fn nothing_is_decided_before_the_import_is_made_final() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib5", IB5);
    w.nad("evil", "ib5", IB5);
    let mut w = w.synced();
    w.records_failing = true;
    // The listing, then the import and its anchor write, which fails.
    for _ in 0..2 {
        let plan = w.state.plan();
        w.execute(plan);
    }
    let fresh = w.pod("default", "fresh", "ib5");
    for _ in 0..3 {
        let plan = w.state.plan();
        assert!(plan.sm.is_empty() && plan.patches.is_empty() && plan.records.is_empty(), "{plan:?}");
        w.execute(plan);
    }
    assert!(w.blocks.is_empty());
    // After the backoff the anchor is written again, and then everything proceeds.
    w.records_failing = false;
    w.state.retry_records();
    w.settle();
    assert!(!w.blocks.is_empty());
    assert_eq!(w.reason(&fresh), None);
    assert_eq!(w.annotation(&fresh)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    // A tenant forges a marker for a GUID the fabric holds; a new leader does not import it.
    w.sm_seed("0x5", "02:00:00:00:00:00:00:10");
    let forger = w.pod("evil", "forger", &configured_with("02:00:00:00:00:00:00:10", "0x5"));
    w.restart();
    w.settle();
    assert_eq!(w.recorded_owner(g_("10")), None);
    assert_eq!(w.reason(&forger), Some("GUIDInUse"));
}

/// At the first start, markers without evidence (a missing NAD, a GUID in no partition) are not
/// imported: a tenant who forged them before the import got nothing by it.
#[test]
fn the_import_takes_only_markers_with_evidence() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib5", IB5);
    w.nad("evil", "t-ib", r#"{"type":"ib-sriov","pkey":"0x20"}"#);
    w.sm_seed("0x5", "02:00:00:00:00:00:00:12");
    let missing = w.pod(
        "evil",
        "missing-nad",
        r#"[{"name":"no-such-nad","cni-args":{"guid":"02:00:00:00:00:00:00:10","mellanox.infiniband.app":"configured"}}]"#,
    );
    let honest = w.pod("default", "honest", &configured_with("02:00:00:00:00:00:00:12", "0x5"));
    let mut w = w.synced();
    w.settle();
    assert_eq!(w.recorded_owner(g_("10")), None);
    assert_eq!(w.reason(&missing), Some("NetworkNotFound"));
    assert_eq!(w.recorded_owner(g_("12")).as_deref(), Some("honest"));
    assert_eq!(w.reason(&honest), None);
    assert!(w.sm_requests().is_empty(), "{:?}", w.sm_requests());
}
