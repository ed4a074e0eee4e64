//! Pods and leaders over time: leader starts, fresh lists, exhaustion, failures, conflicts, restarts,
//! limits.

use super::*;

/// The leader-start rebuild keeps configured pods' GUIDs (even with no SM record), reports duplicates
/// instead of crash-looping, and never hands out an owned GUID (the Go daemon's bugs B2, B3 and B8,
/// docs/architecture.md).
#[test]
fn leader_start_rebuild_is_the_union_of_pods_and_sm() {
    let mut w = World::new("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:03").first_start();
    w.nad("default", "ib", GUID_ONLY);
    let configured = r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":""}}]"#;
    let owner = w.pod("default", "owner", configured);
    let dup = w.pod("default", "dup", configured);
    // The SM holds another GUID of the range in a partition no record explains: reported, kept.
    w.sm_seed("0x9", "02:00:00:00:00:00:00:01");
    // The default partition is never touched, but its GUIDs are not handed out.
    w.sm_seed("0x7fff", "02:00:00:00:00:00:00:02");
    // Outside the range: not ours.
    w.sm_seed("0x9", "03:00:00:00:00:00:00:01");
    let fresh = w.pod("default", "fresh", "ib");
    w.state.pods_synced();
    w.state.nads_synced();
    w.read_records();
    w.settle();
    // The older pod keeps it, the other is reported; neither crashes anything.
    assert_eq!(w.state.ledger().get(g("02:00:00:00:00:00:00:00")).unwrap().owner.pod, owner);
    assert_eq!(w.reason(&dup), Some("DuplicateGUID"));
    assert_eq!(w.reason(&owner), None);
    assert_eq!(w.recorded_owner(g_("00")).as_deref(), Some("owner"));
    // The fresh pod got the one GUID nobody holds.
    assert_eq!(w.annotation(&fresh)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:03");
    assert!(w.members("0x9").contains(&g_("01")));
    assert!(w.members("0x9").contains(&g("03:00:00:00:00:00:00:01")));
    assert!(w.members("0x7fff").contains(&g("02:00:00:00:00:00:00:02")));
    assert!(w.drift.is_empty());
    assert_eq!(w.unrecorded, vec![g_("01")]);
    // The anchor block exists now: the next start imports nothing, whatever annotations say.
    assert!(!w.blocks.is_empty());
}

/// Found by the chaos soak: at leader start, an unconfigured pod planned before a configured one must
/// not be given the configured pod's GUID (here on a GUID-only network, which the SM knows nothing of).
#[test]
fn configured_guids_are_owned_before_any_guid_is_generated() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib", GUID_ONLY);
    // Pod uids are "uid-default-<name>-<n>": "a-new" sorts before "z-old", so it is planned first.
    let old = w.pod(
        "default",
        "z-old",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":""}}]"#,
    );
    let new = w.pod("default", "a-new", "ib");
    assert!(new < old);
    w.state.pods_synced();
    w.state.nads_synced();
    w.read_records();
    w.settle();
    assert_eq!(w.reason(&old), None);
    assert_eq!(w.annotation(&new)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:01");
}

/// Memberships of pool GUIDs that no record explains (another cluster sharing the subnet manager, a
/// person) are reported and left alone; only an operator's opt-in removes them, and never during the
/// hold at leader start, when a previous leader's last record may still be landing.
#[test]
fn unrecorded_memberships_are_reported_and_removed_only_by_opt_in() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", "ib");
    w.sm_seed("0x5", "02:00:00:00:00:00:00:00");
    w.sm_seed("0x5", "02:00:00:00:00:00:00:09");
    w.settle();
    assert_eq!(w.members("0x5").len(), 3);
    assert!(w.drift.is_empty());
    assert_eq!(w.unrecorded, vec![g_("00"), g_("09")]);
    // Neither is handed out, nor may a pod ask for one.
    assert_eq!(w.annotation(&p)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:01");
    let q = w.pod("default", "q", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:09"}}]"#);
    w.settle();
    assert_eq!(w.reason(&q), Some("GUIDInUse"));
    // Reported once, not at every look.
    w.state.resync();
    w.settle();
    assert_eq!(w.unrecorded.len(), 2);

    // With the opt-in, a new leader holds off until the hold ends, then removes them.
    let range = w.state.pool().range();
    w.state = State::with_policy(range, Policy { remove_unrecorded: true, ..Policy::default() });
    w.nad("default", "ib", IB5);
    for view in w.pods.values() {
        w.state.apply_pod(view.clone());
    }
    w.state.nads_synced();
    w.state.begin_leading();
    w.state.pods_synced();
    w.read_records();
    w.settle();
    assert_eq!(w.members("0x5").len(), 3);
    assert!(w.drift.is_empty());
    w.state.allow_drift_repair();
    w.settle();
    assert_eq!(w.drift, vec![g_("00"), g_("09")]);
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("01"), g_("09")]));
    assert_eq!(w.recorded_owner(g_("09")).as_deref(), Some("q"));
    // The waiting pod gets the GUID it asked for once it is free.
    assert_eq!(w.reason(&q), None);
    assert_eq!(w.annotation(&q)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// A pod author can write a `configured` annotation with any pkey; even at the first start, that must not
/// make the controller add the GUID to a partition the pod's NAD does not give. Without evidence in the
/// subnet manager the marker is not imported: it is a request on the pod's own NAD.
#[test]
fn a_self_written_configured_annotation_gains_no_membership() {
    let mut w = World::default_range().first_start().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod(
        "default",
        "sneaky",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:33","mellanox.infiniband.app":"configured","pkey":"0x9"}}]"#,
    );
    let honest = w.pod(
        "default",
        "restarted",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:34","mellanox.infiniband.app":"configured","pkey":"0x5"}}]"#,
    );
    w.settle();
    assert!(w.members("0x9").is_empty(), "{:?}", w.sm);
    assert_eq!(w.state.ledger().get(g("02:00:00:00:00:00:00:33")).unwrap().owner.pod, p);
    // Both get their own NAD's partition, the one a pod configured by a previous leader was in.
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("33"), g_("34")]));
    assert_eq!(w.state.ledger().get(g("02:00:00:00:00:00:00:34")).unwrap().owner.pod, honest);
    // A membership no record explains is left alone (and reported), and nothing is added for it.
    w.sm_seed("0x9", "02:00:00:00:00:00:00:33");
    w.state.resync();
    w.settle();
    assert_eq!(w.members("0x9"), BTreeSet::from([g_("33")]));
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("33"), g_("34")]));
    assert_eq!(w.unrecorded, vec![g_("33")]);
}

/// A pod refused a GUID that another live pod holds as configured gets it as soon as that pod is gone,
/// without waiting for a resync (resyncs do not plan pods again).
#[test]
fn a_duplicate_guid_is_taken_over_when_its_owner_goes() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let configured = r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:50","mellanox.infiniband.app":"configured","pkey":"0x5"}}]"#;
    let owner = w.pod("default", "owner", configured);
    w.settle();
    let dup = w.pod("default", "dup", configured);
    w.settle();
    assert_eq!(w.reason(&dup), Some("DuplicateGUID"));
    w.delete(&owner);
    w.settle();
    assert_eq!(w.reason(&dup), None);
    assert_eq!(w.state.ledger().get(g_("50")).unwrap().owner.pod, dup);
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("50")]));
}

/// A new leader's fresh list runs beside the watch: a pod the watch delivered after the list's snapshot
/// is not dropped because the list misses it (found by the benchmarks: such a pod was never configured);
/// a pod the list misses whose known version is older than the list is gone.
#[test]
fn a_fresh_list_keeps_pods_newer_than_itself() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let deleted_before = w.pod("default", "deleted-before", "ib");
    let listed = w.pod("default", "listed", "ib");
    let list_rv = w.rv.to_string();
    let created_after = w.pod("default", "created-after", "ib");
    let listed_view = w.pods[&*listed.0].clone();
    w.state.refresh_pods(vec![listed_view], Some(&list_rv));
    assert!(w.state.pod(&deleted_before).is_none());
    assert!(w.state.pod(&listed).is_some());
    assert!(w.state.pod(&created_after).is_some(), "a pod newer than the list was dropped");
    w.delete(&deleted_before);
    w.settle();
    assert_eq!(w.reason(&created_after), None);
    assert_eq!(w.annotation(&created_after)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// Pods with no networks annotation are not kept (most pods of a cluster); a kept pod whose annotation
/// is removed stays, so that its GUID is still released by planning it.
#[test]
fn pods_without_networks_are_not_kept_unless_already_known() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let ib = w.pod("default", "ib-pod", "ib");
    let plain = PodView { uid: PodUid::from("plain"), name: "plain".into(), networks: None, ..w.pods[&*ib.0].clone() };
    w.state.apply_pod(plain.clone());
    assert!(w.state.pod(&plain.uid).is_none());
    w.settle();
    let guid = Guid::parse(w.annotation(&ib)[0]["cni-args"]["guid"].as_str().unwrap()).unwrap();
    w.edit(&ib, |v| v.networks = None);
    assert!(w.state.pod(&ib).is_some());
    w.settle();
    // Configured claims last while the pod lives, whatever happens to its annotation (the VF has it).
    assert_eq!(w.state.ledger().get(guid).unwrap().owner.pod, ib);
    w.delete(&ib);
    w.settle();
    assert!(w.state.ledger().get(guid).is_none());
    assert!(w.members("0x5").is_empty());
    w.state.reset_pods(vec![plain]);
    assert!(w.state.known().pod_count() == 0, "a re-list keeps no plain pod");
}

/// Pods configured by a release that wrote only the marker (no `pkey` in cni-args) are in their NAD's
/// partition: a new leader keeps them there, and puts them back if UFM lost them, never removes them.
#[test]
fn a_configured_annotation_without_a_pkey_means_the_nads_partition() {
    let mut w = World::default_range().first_start();
    w.nad("default", "ib", IB5);
    w.sm_seed("0x5", "02:00:00:00:00:00:00:41");
    let kept = w.pod(
        "default",
        "kept",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:41","mellanox.infiniband.app":"configured"}}]"#,
    );
    let lost = w.pod(
        "default",
        "lost",
        r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:42","mellanox.infiniband.app":"configured"}}]"#,
    );
    w.state.pods_synced();
    w.state.nads_synced();
    w.read_records();
    w.settle();
    assert_eq!(w.members("0x5"), BTreeSet::from([g_("41"), g_("42")]));
    assert!(!w.sm_requests().iter().any(|r| matches!(r, Logged::Sm(SmOp::Remove, ..))), "{:?}", w.sm_requests());
    assert_eq!(w.state.ledger().get(g_("41")).unwrap().owner.pod, kept);
    assert_eq!(w.state.ledger().get(g_("42")).unwrap().owner.pod, lost);
    assert_eq!((w.reason(&kept), w.reason(&lost)), (None, None));
}

/// An exhausted pool asks the SM again and the waiting pod gets the first released GUID (the Go daemon
/// used GUID 0 after such a listing: its bug B1, docs/architecture.md).
#[test]
fn exhaustion_resyncs_and_retries() {
    let mut w = World::new("02:00:00:00:00:00:00:01", "02:00:00:00:00:00:00:02").synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", "ib");
    let _b = w.pod("default", "b", "ib");
    w.settle();
    let c = w.pod("default", "c", "ib");
    let plan = w.state.plan();
    assert!(plan.list_sm, "exhaustion must re-read the SM");
    assert_eq!(plan.pending.len(), 1);
    assert_eq!(plan.pending[0].reason.label(), "GUIDPoolExhausted");
    w.execute(plan);
    w.settle();
    assert_eq!(w.reason(&c), Some("GUIDPoolExhausted"));
    w.delete(&a);
    w.settle();
    assert_eq!(w.reason(&c), None);
    assert_eq!(w.annotation(&c)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:01");
}

#[test]
fn sm_failures_wait_for_a_retry_and_never_configure() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    w.failing.insert(pk("0x5"));
    let p = w.pod("default", "p", "ib");
    w.settle();
    assert_eq!(w.reason(&p), Some("SubnetManagerFailed"));
    // The tenant's Event says what kind of failure, never the subnet manager's answer.
    let text = w.state.pending_reason(&p).unwrap().to_string();
    assert!(text.contains("(status)") && !text.contains("500"), "{text}");
    // The same failure again raises no second Event.
    let events = w.pending_seen.len();
    w.state.retry_guids(&[g("02:00:00:00:00:00:00:00")]);
    w.settle();
    assert_eq!(w.pending_seen.len(), events);
    assert!(!w.log.iter().any(|l| matches!(l, Logged::Configured(..))));
    // Nothing is retried until the caller's backoff says so.
    assert!(w.state.plan().is_idle());
    w.failing.clear();
    w.state.retry_guids(&[g("02:00:00:00:00:00:00:00")]);
    w.settle();
    assert_eq!(w.reason(&p), None);
    assert_eq!(w.annotation(&p)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// A concurrent edit wins the race: the patch conflicts and is planned again on the new version,
/// keeping the user's change (the Go daemon patched without a precondition and clobbered it: its bug B16,
/// docs/architecture.md).
#[test]
fn conflicting_patch_is_replanned_on_the_newer_pod() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", r#"[{"name":"ib"}]"#);
    let plan = w.plan_until_patch();
    // The user edits the element before our patch lands.
    w.edit(&p, |v| v.networks = Some(r#"[{"name":"ib","mac":"c2:b0:57:49:47:f1"}]"#.into()));
    w.execute(plan);
    w.settle();
    let a = w.annotation(&p);
    assert_eq!(a[0]["mac"], "c2:b0:57:49:47:f1");
    assert_eq!(a[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    assert_eq!(w.members("0x5").len(), 1);
}

#[test]
fn patch_not_found_releases_the_guid() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", "ib");
    let plan = w.plan_until_patch();
    w.pods.remove(&*p.0);
    w.execute(plan);
    w.settle();
    assert!(w.sm.is_empty());
    assert_eq!(w.state.pool().allocated_count(), 0);
}

/// Crash between the SM add and the patch: the record was stored before the add, so the next leader
/// finds the pod's GUID in the records and configures the pod with it; nothing is added twice or leaks.
#[test]
fn restart_after_a_crash_between_add_and_patch_converges() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib5", IB5);
    let p = w.pod("default", "p", "ib5");
    // Run until the add is done, then lose the patch with the leader.
    let plan = w.plan_until_patch();
    drop(plan);
    let guid = g_("00");
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert_eq!(w.recorded_owner(guid).as_deref(), Some("p"));
    let adds = w.sm_requests().len();
    w.restart();
    w.settle();
    assert_eq!(w.annotation(&p)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:00");
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert_eq!(w.sm_requests().len(), adds, "no second add: {:?}", w.sm_requests());
    assert_eq!(w.state.pool().allocated_count(), 1);
    // Deleted while no leader runs: the next leader removes it because the record says it is ours.
    w.delete(&p);
    w.restart();
    w.settle();
    assert!(w.members("0x5").is_empty());
    assert!(w.records.is_empty());
}

#[test]
fn terminating_pods_keep_their_guids_until_gone_and_get_no_configuration() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", "ib");
    w.settle();
    w.edit(&a, |v| v.deleting = true);
    let b = w.pod("default", "b", "ib");
    w.edit(&b, |v| v.deleting = true);
    w.settle();
    assert_eq!(w.members("0x5").len(), 1);
    assert!(w.annotation(&b)[0].get("cni-args").is_none());
    w.delete(&a);
    w.settle();
    assert!(w.sm.is_empty());
}

#[test]
fn running_unconfigured_pods_are_configured_and_unscheduled_ones_wait() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let running = w.pod("default", "running", "ib");
    w.edit(&running, |v| v.phase = PodPhase::Running);
    let unscheduled = w.pod("default", "unscheduled", "ib");
    w.edit(&unscheduled, |v| v.node_name = None);
    let host = w.pod("default", "host", "ib");
    w.edit(&host, |v| v.host_network = true);
    w.settle();
    assert_eq!(w.annotation(&running)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    assert!(w.annotation(&unscheduled)[0].get("cni-args").is_none());
    assert!(w.annotation(&host)[0].get("cni-args").is_none());
    w.edit(&unscheduled, |v| v.node_name = Some("node-2".into()));
    w.settle();
    assert_eq!(w.annotation(&unscheduled)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// The same network name in two namespaces is two networks (the Go daemon matched elements by name alone:
/// its bug B10, docs/architecture.md).
#[test]
fn namespaces_are_part_of_the_network_identity() {
    let mut w = World::default_range().synced();
    w.nad("ns1", "ib", IB5);
    w.nad("ns2", "ib", r#"{"type":"ib-sriov","pkey":"0x6"}"#);
    let p = w.pod("ns1", "p", "ns1/ib, ns2/ib");
    w.settle();
    assert_eq!(w.members("0x5").len(), 1);
    assert_eq!(w.members("0x6").len(), 1);
    let a = w.annotation(&p);
    assert_ne!(a[0]["cni-args"]["guid"], a[1]["cni-args"]["guid"]);
}

/// The kernel's 128-pkeys-per-port limit: the pod that would need a 129th partition on its node waits
/// with a reason; pods using a partition the node already has, or on another node, are configured.
#[test]
fn a_node_holds_at_most_128_partitions() {
    let mut w = World::default_range().synced();
    for p in 1..=130u32 {
        w.nad("default", &format!("net{p}"), &format!(r#"{{"type":"ib-sriov","pkey":"0x{p:x}"}}"#));
    }
    let mut uids = Vec::new();
    for p in 1..=128u32 {
        uids.push(w.pod("default", &format!("p{p}"), &format!("net{p}")));
    }
    w.settle();
    let over = w.pod("default", "over", "net129");
    let shared = w.pod("default", "shared", "net1");
    let elsewhere = w.pod("default", "elsewhere", "net130");
    w.edit(&elsewhere, |v| v.node_name = Some("node-2".into()));
    w.settle();
    assert_eq!(w.reason(&over), Some("TooManyPKeys"));
    assert!(w.state.pending_reason(&over).unwrap().to_string().contains("node-1"));
    assert_eq!(w.reason(&shared), None);
    assert_eq!(w.reason(&elsewhere), None);
    assert!(w.members("0x81").is_empty(), "a waiting pod holds no membership");
    // A partition leaves the node: the waiting pod fits now.
    w.delete(&uids[5]);
    w.settle();
    assert_eq!(w.reason(&over), None);
    assert_eq!(w.members("0x81").len(), 1);
}

#[test]
fn an_older_pod_version_from_a_lagging_watch_is_ignored() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", "ib");
    w.settle();
    let configured = w.pods[&*p.0].clone();
    let mut stale = configured.clone();
    stale.resource_version = "1".into();
    stale.networks = Some("ib".into());
    w.state.apply_pod(stale);
    assert_eq!(w.state.pod(&p), Some(configured));
    w.settle();
    assert_eq!(w.members("0x5").len(), 1);
}

#[test]
fn pending_labels_are_listed() {
    let reasons = [
        PendingReason::NadMissing { network: NetworkRef::new("a", "b") },
        PendingReason::PoolExhausted { range: GuidRange::new(g_("01"), g_("02")).unwrap(), capacity: 2 },
        PendingReason::SubnetManagerFailed { kind: "status" },
        PendingReason::PatchFailed { message: "x".into() },
        PendingReason::TooManyPKeys { node: "n".into(), limit: 128 },
        PendingReason::NamespaceNotAllowed { network: NetworkRef::new("a", "b") },
        PendingReason::TooManyInterfaces { count: 40, limit: 32 },
    ];
    for r in reasons {
        assert!(PendingReason::LABELS.contains(&r.label()), "{}", r.label());
    }
}

/// The names every pod and claim repeats (namespace, node, network, interface) are held once, however
/// many separate copies the inputs bring; the values, and with them every decision, stay the same.
#[test]
fn names_pods_and_claims_repeat_are_held_once() {
    use std::sync::Arc;
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", r#"[{"name":"ib","interface":"net1"}]"#);
    let b = w.pod("default", "b", r#"[{"name":"ib","interface":"net1"}]"#);
    w.settle();
    let (va, vb) = (w.state.pod(&a).unwrap(), w.state.pod(&b).unwrap());
    assert!(Arc::ptr_eq(&va.namespace, &vb.namespace));
    assert!(Arc::ptr_eq(va.node_name.as_ref().unwrap(), vb.node_name.as_ref().unwrap()));
    assert_eq!((&*va.namespace, va.node_name.as_deref()), ("default", Some("node-1")));
    let shared = |w: &World| {
        let ledger = w.state.ledger();
        let owner = |pod: &PodUid| ledger.iter().find(|(_, c)| &c.owner.pod == pod).map(|(_, c)| c.owner.clone());
        let (oa, ob) = (owner(&a).unwrap(), owner(&b).unwrap());
        assert_eq!((&*oa.network.name, &*oa.interface), ("ib", "net1"));
        Arc::ptr_eq(&oa.network.namespace, &ob.network.namespace)
            && Arc::ptr_eq(&oa.network.name, &ob.network.name)
            && Arc::ptr_eq(&oa.interface, &ob.interface)
    };
    assert!(shared(&w), "claims made by the planner");

    // A new leadership reads records whose every name is a copy of its own.
    let fresh: Vec<(Guid, Record)> = w
        .records
        .iter()
        .map(|(g, r)| {
            let mut r = r.clone();
            r.owner.network = NetworkRef::new(r.owner.network.namespace.to_string(), r.owner.network.name.to_string());
            r.owner.interface = r.owner.interface.to_string().into();
            (*g, r)
        })
        .collect();
    let owned: Vec<(Guid, crate::pod::InterfaceKey)> =
        w.state.ledger().iter().map(|(g, c)| (g, c.owner.clone())).collect();
    w.state.begin_leading();
    w.state.records_listed(true, fresh);
    assert!(shared(&w), "claims read from records");
    let mut again: Vec<(Guid, crate::pod::InterfaceKey)> =
        w.state.ledger().iter().map(|(g, c)| (g, c.owner.clone())).collect();
    let mut owned = owned;
    owned.sort();
    again.sort();
    assert_eq!(owned, again);
}

/// A configured pod's annotation is kept as its shape and its GUIDs, and given back exactly: the view
/// the state returns is the one the API server holds, and planning it again changes nothing.
#[test]
fn a_configured_annotation_is_kept_as_its_shape_and_given_back_exactly() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let p = w.pod("default", "p", r#"[{"name":"ib","interface":"net1"},{"name":"ib","interface":"net2"}]"#);
    w.settle();
    let configured = w.pods[&*p.0].clone();
    assert!(configured.networks.as_deref().is_some_and(|n| n.contains("configured")));
    assert_eq!(w.state.known().pod(&p).and_then(|v| v.networks.as_deref()), Some(""), "kept as its shape");
    assert_eq!(w.state.pod(&p), Some(configured));
    let owned = w.state.ledger().len();
    w.state.resync();
    w.settle();
    assert_eq!((w.reason(&p), w.state.ledger().len(), w.members("0x5").len()), (None, owned, 2));
}
