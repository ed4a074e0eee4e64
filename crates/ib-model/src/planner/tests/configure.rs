//! Configuring pods: GUIDs, partitions, patches, requests, records and the reasons pods wait.

use super::*;

#[test]
fn nothing_happens_before_pods_nads_and_the_sm_are_read() {
    let mut w = World::default_range();
    w.nad("default", "ib-sriov-network", IB5);
    w.pod("default", "p", r#"[{"name":"ib-sriov-network"}]"#);
    assert_eq!(w.state.plan(), Plan::default());
    w.state.pods_synced();
    w.state.nads_synced();
    let plan = w.state.plan();
    assert!(plan.list_sm && plan.sm.is_empty() && plan.patches.is_empty(), "{plan:?}");
    // Until the listing and the records arrive, nothing else is decided, and the listing is asked for once.
    assert!(w.state.plan().is_idle());
    w.state.sm_listed(std::iter::empty());
    assert!(w.state.plan().is_idle());
    w.read_records();
    // The record first, then the add.
    let plan = w.state.plan();
    assert_eq!((plan.records.len(), plan.sm.len()), (1, 0), "{plan:?}");
    w.write_records(plan.records[0].clone());
    let plan = w.state.plan();
    assert_eq!(plan.sm.len(), 1);
}

/// As in the Go daemon, a plain pod: generated GUID (the range start), one UFM add, then the patch.
#[test]
fn generated_guid_joins_the_pkey_before_the_pod_is_configured() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib-sriov-network", IB5);
    let p = w.pod("default", "p", r#"[{"name": "ib-sriov-network"}]"#);
    w.settle();
    let guid = g("02:00:00:00:00:00:00:00");
    assert_eq!(
        w.log,
        vec![
            Logged::Recorded(guid),
            Logged::Sm(SmOp::Add, pk("0x5"), vec![guid]),
            Logged::Configured("p".into(), vec![guid])
        ]
    );
    assert_eq!(w.records[&guid].state, crate::records::RecordState::Member);
    assert_eq!(
        w.annotation(&p),
        serde_json::json!([{"name":"ib-sriov-network","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":"0x5"}}])
    );
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert!(w.state.ledger().get(guid).unwrap().configured);
    assert_eq!(w.state.pool().allocated_count(), 1);
}

/// Consecutive pods get GUIDs of one block. Each pod's record write goes out at once instead of after
/// the previous pod's (a pod never waits for another pod's write), up to a few per block; a GUID is never
/// in two writes at once (checked by `World::enqueue` in every test).
#[test]
fn record_writes_of_one_block_overlap_up_to_a_limit() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    w.settle();
    let mut sent = Vec::new();
    for i in 0..=WRITES_PER_BLOCK {
        w.pod("default", &format!("p{i}"), r#"[{"name": "ib"}]"#);
        let plan = w.state.plan();
        sent.push(plan.records.iter().flat_map(|r| r.changes.keys().copied()).collect::<Vec<_>>());
        // Nothing completes: every write stays in flight.
        w.enqueue(plan);
    }
    let guid = |i: u64| Guid::from_u64(g("02:00:00:00:00:00:00:00").as_u64() + i);
    for (i, guids) in sent.iter().enumerate().take(WRITES_PER_BLOCK) {
        assert_eq!(guids, &vec![guid(i as u64)], "pod {i}'s record is written at once");
    }
    assert!(sent[WRITES_PER_BLOCK].is_empty(), "the block has {WRITES_PER_BLOCK} writes in flight: the next waits");
    let first = w.queue.iter().position(|x| matches!(x, Work::Records(_))).unwrap();
    w.complete(first);
    let plan = w.state.plan();
    let next: Vec<Guid> = plan.records.iter().flat_map(|r| r.changes.keys().copied()).collect();
    assert!(next.contains(&guid(WRITES_PER_BLOCK as u64)), "{next:?}");
    w.enqueue(plan);
    w.settle();
    for i in 0..=WRITES_PER_BLOCK {
        assert_eq!(w.records[&guid(i as u64)].state, crate::records::RecordState::Member);
    }
    assert_eq!(w.members("0x5").len(), WRITES_PER_BLOCK + 1);
}

/// A pod's life costs two record writes: the reservation before its add and the delete after its remove.
/// `Member` and `Releasing` go with the block's next write, or when the caller flushes.
#[test]
fn state_only_record_changes_wait_for_the_blocks_next_write_or_a_flush() {
    use crate::records::RecordState;
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    w.settle();
    // Plans and executes until idle without flushing; the record writes on the way.
    fn run(w: &mut World) -> Vec<RecordWrite> {
        let mut writes = Vec::new();
        loop {
            let plan = w.state.plan();
            if plan.is_idle() {
                return writes;
            }
            writes.extend(plan.records.iter().cloned());
            w.execute(plan);
        }
    }
    let (g0, g1) = (g("02:00:00:00:00:00:00:00"), g("02:00:00:00:00:00:00:01"));
    let p = w.pod("default", "p", "ib");
    let writes = run(&mut w);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(matches!(writes[0].changes.get(&g0), Some(RecordChange::Set(_))));
    assert_eq!(w.annotation(&p)[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:00");
    assert_eq!(w.records[&g0].state, RecordState::Reserved);
    assert!(w.state.records_waiting() && !w.state.is_settled());

    // The next pod's reservation in the same block carries p's Member.
    w.pod("default", "q", "ib");
    let writes = run(&mut w);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].changes.get(&g0), Some(&RecordChange::State(RecordState::Member)));
    assert!(matches!(writes[0].changes.get(&g1), Some(RecordChange::Set(_))));
    assert_eq!(w.records[&g0].state, RecordState::Member);

    // A flush writes what is left.
    w.state.flush_records();
    let writes = run(&mut w);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].changes, BTreeMap::from([(g1, RecordChange::State(RecordState::Member))]));
    assert!(w.state.is_settled());

    // Deleting p: the remove goes out without waiting for a Releasing write; then one write deletes.
    w.delete(&p);
    let writes = run(&mut w);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].changes, BTreeMap::from([(g0, RecordChange::Delete)]));
    assert!(!w.records.contains_key(&g0));
    assert_eq!(w.members("0x5"), BTreeSet::from([g1]));
    assert!(w.state.is_settled());
}

/// As in the Go daemon, a NAD without pkey is GUID-only: no subnet-manager call, still configured.
#[test]
fn guid_only_network_needs_no_subnet_manager() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", GUID_ONLY);
    let p = w.pod("default", "p", "ib");
    w.settle();
    assert!(w.sm_requests().is_empty());
    let a = w.annotation(&p);
    assert_eq!(a[0]["cni-args"]["pkey"], "");
    assert_eq!(a[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    assert_eq!(a[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:00");
}

/// As in the Go daemon, capability `infinibandGUID` writes `infiniband-guid`; the NAD's pkey text is kept.
#[test]
fn runtime_config_capability_writes_infiniband_guid() {
    let mut w = World::default_range().synced();
    w.nad("ml", "ib-net", IB_CAP);
    let p = w.pod("ml", "p", "ib-net@ib0");
    w.settle();
    let a = w.annotation(&p);
    assert_eq!(a[0]["infiniband-guid"], "02:00:00:00:00:00:00:00");
    assert_eq!(a[0]["interface"], "ib0");
    assert_eq!(a[0]["cni-args"]["pkey"], "0x00FF");
    assert!(a[0]["cni-args"].get("guid").is_none());
    assert_eq!(w.members("0xff").len(), 1);
}

/// As in the Go daemon, two interfaces on one network and a non-IB network: one SM request with both
/// GUIDs, one patch (the Go daemon patched such a pod N² times: its bug B9, docs/architecture.md).
#[test]
fn several_interfaces_one_request_one_patch() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib-sriov-network", IB5);
    w.nad("other", "macvlan", MACVLAN);
    let p = w.pod(
        "default",
        "p",
        r#"[{"name":"ib-sriov-network","interface":"ib0"},{"name":"ib-sriov-network"},{"name":"macvlan","namespace":"other"}]"#,
    );
    w.settle();
    let (g0, g1) = (g("02:00:00:00:00:00:00:00"), g("02:00:00:00:00:00:00:01"));
    assert_eq!(
        w.actions(),
        vec![Logged::Sm(SmOp::Add, pk("0x5"), vec![g0, g1]), Logged::Configured("p".into(), vec![g0, g1])]
    );
    let a = w.annotation(&p);
    assert_eq!(a[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:00");
    assert_eq!(a[1]["cni-args"]["guid"], "02:00:00:00:00:00:00:01");
    assert_eq!(a[2], serde_json::json!({"name":"macvlan","namespace":"other"}));
}

/// As in the Go daemon, a user GUID is used as written (case kept) and joins the pkey.
#[test]
fn requested_guid_is_kept_verbatim() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib-sriov-network", IB5);
    let p = w.pod("default", "p", r#"[{"name":"ib-sriov-network","cni-args":{"guid":"02:00:00:00:00:00:AB:CD"}}]"#);
    w.settle();
    assert_eq!(w.annotation(&p)[0]["cni-args"]["guid"], "02:00:00:00:00:00:AB:CD");
    assert_eq!(w.members("0x5"), BTreeSet::from([g("02:00:00:00:00:00:ab:cd")]));
    // `infiniband-guid` wins over cni-args.guid.
    let q = w.pod(
        "default",
        "q",
        r#"[{"name":"ib-sriov-network","infiniband-guid":"02-00-00-00-00-00-00-77","cni-args":{"guid":"02:00:00:00:00:00:00:78"}}]"#,
    );
    w.settle();
    assert_eq!(w.annotation(&q)[0]["infiniband-guid"], "02-00-00-00-00-00-00-77");
    assert!(w.members("0x5").contains(&g("02:00:00:00:00:00:00:77")));
    assert!(!w.members("0x5").contains(&g("02:00:00:00:00:00:00:78")));
}

#[test]
fn bad_requested_guids_wait_with_a_reason() {
    let mut w = World::new("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:ff").synced();
    w.nad("default", "ib", IB5);
    let out = w.pod("default", "out", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:01:00"}}]"#);
    let bad = w.pod("default", "bad", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00"}}]"#);
    let ok = w.pod("default", "ok", "ib");
    w.settle();
    assert_eq!(w.reason(&out), Some("GUIDOutOfRange"));
    assert_eq!(w.reason(&bad), Some("InvalidGUID"));
    assert_eq!(w.reason(&ok), None);
    assert_eq!(w.annotation(&ok)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
    assert!(w.annotation(&out)[0]["cni-args"].get("mellanox.infiniband.app").is_none());
    let msg = w.state.pending_reason(&out).unwrap().to_string();
    assert!(msg.contains("02:00:00:00:00:00:01:00") && msg.contains("outside the GUID pool range"), "{msg}");
    let msg = w.state.pending_reason(&bad).unwrap().to_string();
    assert!(msg.contains("6-byte"), "{msg}");
}

/// A second live pod asking for a GUID in use waits; the first keeps its membership (the Go daemon gave the
/// GUID to the newcomer: its bug B7, docs/architecture.md).
#[test]
fn no_stealing_and_the_waiter_gets_it_when_released() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let guid = g("02:00:00:00:00:00:00:42");
    let first = w.pod("default", "first", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:42"}}]"#);
    w.settle();
    let second = w.pod("default", "second", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:42"}}]"#);
    w.settle();
    assert_eq!(w.reason(&second), Some("GUIDInUse"));
    assert!(w.state.pending_reason(&second).unwrap().to_string().contains("default/first"));
    assert!(w.pending_seen.iter().any(|(n, r)| n == "second" && r.label() == "GUIDInUse"));
    assert_eq!(w.members("0x5"), BTreeSet::from([guid]));
    assert_eq!(w.state.ledger().get(guid).unwrap().owner.pod, first);
    let log_len = w.log.len();

    w.delete(&first);
    w.settle();
    // Removed for the first, then added for the second, then the second is configured.
    assert_eq!(
        w.actions()[log_len - 1..],
        [
            Logged::Sm(SmOp::Remove, pk("0x5"), vec![guid]),
            Logged::Sm(SmOp::Add, pk("0x5"), vec![guid]),
            Logged::Configured("second".into(), vec![guid]),
        ]
    );
    assert_eq!(w.state.ledger().get(guid).unwrap().owner.pod, second);
    assert_eq!(w.reason(&second), None);
}

#[test]
fn deleted_and_finished_pods_release_their_guids() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", "ib");
    let b = w.pod("default", "b", "ib, ib");
    w.settle();
    assert_eq!(w.members("0x5").len(), 3);
    w.delete(&a);
    w.edit(&b, |v| v.phase = PodPhase::Succeeded);
    w.settle();
    assert!(w.sm.is_empty(), "{:?}", w.sm);
    assert!(w.drift.is_empty(), "ordinary releases are not drift: {:?}", w.drift);
    assert_eq!(w.state.pool().allocated_count(), 0);
    assert!(w.state.ledger().is_empty());
}

/// Removal uses the pkey recorded at add time even when the NAD changed or is gone (the Go daemon used the
/// NAD's pkey of the moment: its bug B11, docs/architecture.md).
#[test]
fn removal_survives_a_deleted_or_changed_nad() {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let a = w.pod("default", "a", "ib");
    w.settle();
    w.state.delete_nad(&NetworkRef::new("default", "ib"));
    w.delete(&a);
    w.settle();
    assert!(w.sm.is_empty());

    w.nad("default", "ib", IB5);
    let b = w.pod("default", "b", "ib");
    w.settle();
    w.nad("default", "ib", r#"{"type":"ib-sriov","pkey":"0x6"}"#);
    w.delete(&b);
    w.settle();
    assert!(w.sm.is_empty(), "{:?}", w.sm);
}

#[test]
fn a_pod_waiting_for_its_nad_is_woken_when_it_appears() {
    let mut w = World::default_range().synced();
    let p = w.pod("default", "p", "ib");
    w.settle();
    assert_eq!(w.reason(&p), Some("NetworkNotFound"));
    w.nad("default", "ib", IB5);
    w.settle();
    assert_eq!(w.reason(&p), None);
    assert_eq!(w.annotation(&p)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

#[test]
fn invalid_nads_and_annotations_are_reported_and_harm_nobody_else() {
    let mut w = World::default_range().synced();
    w.nad("default", "zero", r#"{"type":"ib-sriov","pkey":"0x0"}"#);
    w.nad("default", "mgmt", r#"{"type":"ib-sriov","pkey":"0x7fff"}"#);
    w.nad("default", "big", r#"{"type":"ib-sriov","pkey":"0x8000"}"#);
    w.nad("default", "dec", r#"{"type":"ib-sriov","pkey":"1234"}"#);
    w.nad("default", "broken", "{not json");
    w.nad("default", "ib", IB5);
    let mut bad = Vec::new();
    for n in ["zero", "mgmt", "big", "dec", "broken"] {
        bad.push((n, w.pod("default", &format!("p-{n}"), n)));
    }
    let not_json = w.pod("default", "not-json", "[{");
    let object = w.pod("default", "object", r#"{"name":"ib"}"#);
    let number = w.pod("default", "number", r#"[{"name":"ib","cni-args":{"guid":5}}]"#);
    let good = w.pod("default", "good", "ib");
    w.settle();
    for (n, uid) in &bad {
        assert_eq!(w.reason(uid), Some("InvalidNetwork"), "{n}");
    }
    let msg = w.state.pending_reason(&bad[1].1).unwrap().to_string();
    assert!(msg.contains("default/mgmt") && msg.contains("\"0x7fff\"") && msg.contains("management"), "{msg}");
    for uid in [&not_json, &object, &number] {
        assert_eq!(w.reason(uid), Some("InvalidNetworkAnnotation"));
    }
    assert_eq!(w.reason(&good), None);
    assert_eq!(w.members("0x5").len(), 1);
    assert_eq!(w.state.pending_by_reason().get("InvalidNetwork"), Some(&5));
    // Fixing the NAD wakes its pod.
    w.nad("default", "zero", IB5);
    w.settle();
    assert_eq!(w.reason(&bad[0].1), None);
}
