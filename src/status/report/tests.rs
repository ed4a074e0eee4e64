use serde_json::json;

use super::*;

fn ib_nad(ns: &str, name: &str, pkey: &str) -> NadInput {
    NadInput {
        namespace: ns.into(),
        name: name.into(),
        config: Some(json!({"cniVersion": "0.3.1", "type": "ib-sriov", "pkey": pkey}).to_string()),
    }
}

fn pod(ns: &str, name: &str, networks: Option<&str>) -> PodInput {
    PodInput {
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        phase: Some("Pending".into()),
        node: Some("node-1".into()),
        deleting: false,
        networks: networks.map(str::to_owned),
    }
}

fn entry(pod: &str, network: &str, pkey: Option<&str>) -> serde_json::Value {
    let mut v = json!({
        "podUid": format!("uid-{pod}"), "namespace": "ns", "pod": pod,
        "network": network, "interface": "ib0", "state": "Member"
    });
    if let Some(p) = pkey {
        v["pkey"] = json!(p);
    }
    v
}

fn block(name: &str, allocations: serde_json::Value) -> BlockInput {
    BlockInput { name: name.into(), allocations: Some(allocations) }
}

fn range(start: &str, end: &str) -> GuidRange {
    GuidRange::new(Guid::parse(start).unwrap(), Guid::parse(end).unwrap()).unwrap()
}

#[test]
fn members_grouped_by_pkey_and_pool_use_counted() {
    let b0 = BlockId::of(Guid::parse("02:00:00:00:00:00:00:00").unwrap()).name();
    let inputs = Inputs {
        blocks: vec![block(
            &b0,
            json!({
                "02:00:00:00:00:00:00:01": entry("a", "ns/ib-a", Some("0x0a")),
                "02:00:00:00:00:00:00:02": entry("b", "ns/ib-a", Some("0x000a")),
                "02:00:00:00:00:00:00:03": entry("c", "ns/guid-only", None),
            }),
        )],
        range: Some((range("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:ff"), RangeSource::Flags)),
        ..Inputs::default()
    };
    let report = compute(&inputs);
    assert_eq!(report.pool.records, 3);
    let r = report.pool.range.as_ref().unwrap();
    assert_eq!((r.capacity, r.in_range, r.out_of_range), (256, 3, 0));
    assert!((r.used_percent - 300.0 / 256.0).abs() < 1e-9);
    let pkeys: Vec<(&str, Vec<&str>)> =
        report.pkeys.iter().map(|p| (p.pkey.as_str(), p.members.iter().map(|m| m.pod.as_str()).collect())).collect();
    assert_eq!(pkeys, vec![("none", vec!["c"]), ("0x000a", vec!["a", "b"])]);
    assert_eq!(report.skipped, Skipped::default());
    assert!(render(&report).contains("3 of 256 GUIDs recorded (1.17%)"), "{}", render(&report));
    assert_eq!((percent(0.0), percent(1e-7), percent(100.0)), ("0.00%".into(), "< 0.01%".into(), "100.00%".into()));
}

#[test]
fn junk_blocks_and_entries_are_skipped_and_counted() {
    let b0 = BlockId::of(Guid::parse("02:00:00:00:00:00:00:00").unwrap()).name();
    let inputs = Inputs {
        blocks: vec![
            block("not-a-block", json!({"02:00:00:00:00:00:00:01": entry("x", "ns/n", None)})),
            block(
                &b0,
                json!({
                    "zz": entry("bad-guid", "ns/n", None),
                    "02:00:00:00:00:00:00:05": {"podUid": 7},
                    "02:00:00:00:00:00:00:06": entry("bad-pkey", "ns/n", Some("0xfffff")),
                    "02:00:00:00:00:00:00:07": entry("no-slash", "n", None),
                    "02:00:00:00:00:01:00:00": entry("other-block", "ns/n", None),
                    "02:00:00:00:00:00:00:08": entry("good", "ns/n", None),
                }),
            ),
            block(&b0, json!("not an object")),
        ],
        range_note: Some("no ConfigMap".into()),
        ..Inputs::default()
    };
    let report = compute(&inputs);
    assert_eq!(report.pool.records, 1);
    assert_eq!(report.skipped, Skipped { blocks: 1, entries: 6 });
    assert_eq!(report.pkeys[0].members[0].pod, "good");
    assert_eq!(report.pool.range_note.as_deref(), Some("no ConfigMap"));
    assert!(render(&report).contains("skipped as unreadable: 1 blocks, 6 entries"));
}

#[test]
fn waiting_pods_and_their_reasons() {
    let t = |s: i64| Some(Timestamp::from_second(1_700_000_000 + s).unwrap());
    let event = |pod: &str, warning: bool, reason: &str, time| EventInput {
        namespace: "ns".into(),
        pod: pod.into(),
        pod_uid: Some(format!("uid-{pod}")),
        warning,
        reason: reason.into(),
        note: Some(format!("note of {reason}")),
        time,
    };
    let mut unscheduled = pod("ns", "unscheduled", Some("ib-a"));
    unscheduled.node = None;
    let mut finished = pod("ns", "finished", Some("ib-a"));
    finished.phase = Some("Succeeded".into());
    let mut recreated = pod("ns", "recreated", None);
    recreated.uid = "uid-new".into();
    let inputs = Inputs {
        nads: vec![ib_nad("ns", "ib-a", "0x0a"), NadInput { namespace: "ns".into(), name: "eth".into(), config: None }],
        pods: vec![
            pod("ns", "warned", Some("ib-a")),
            pod("ns", "recovered", None),
            pod("ns", "fresh", Some("ib-a,eth")),
            pod("ns", "plain", Some("eth")),
            pod("ns", "done", Some(r#"[{"name":"ib-a","cni-args":{"mellanox.infiniband.app":"configured"}}]"#)),
            pod("ns", "garbled", Some("[{")),
            unscheduled,
            finished,
            recreated,
        ],
        events: vec![
            event("warned", true, "GUIDPoolExhausted", t(1)),
            event("warned", true, "SubnetManagerFailed", t(5)),
            event("warned", false, "Configured", t(2)),
            event("recovered", true, "NetworkNotFound", t(1)),
            event("recovered", false, "Configured", t(2)),
            event("finished", true, "NetworkNotFound", t(1)),
            event("recreated", true, "NetworkNotFound", t(1)),
        ],
        ..Inputs::default()
    };
    let report = compute(&inputs);
    let got: Vec<(&str, &str, u64)> =
        report.waiting.iter().map(|w| (w.pod.as_str(), w.reason.as_str(), w.unconfigured_interfaces)).collect();
    assert_eq!(
        got,
        vec![
            ("fresh", "NotConfiguredYet", 1),
            ("garbled", "InvalidNetworkAnnotation", 0),
            ("unscheduled", "NotScheduled", 1),
            ("warned", "SubnetManagerFailed", 1),
        ]
    );
    let warned = report.waiting.iter().find(|w| w.pod == "warned").unwrap();
    assert_eq!(warned.message.as_deref(), Some("note of SubnetManagerFailed"));
    assert_eq!(warned.since.as_deref(), Some("2023-11-14T22:13:25Z"));
}

#[test]
fn hostile_text_is_bounded_and_printable() {
    let huge = format!("evil\u{1b}[2J\n{}", "x".repeat(100_000));
    let inputs = Inputs {
        pods: vec![pod("ns", &huge, Some(&huge))],
        events: vec![EventInput {
            namespace: "ns".into(),
            pod: huge.clone(),
            pod_uid: None,
            warning: true,
            reason: huge.clone(),
            note: Some(huge.clone()),
            time: None,
        }],
        ..Inputs::default()
    };
    let report = compute(&inputs);
    let w = &report.waiting[0];
    for text in [&w.pod, &w.reason, w.message.as_ref().unwrap()] {
        assert!(text.chars().count() < MAX_TEXT_CHARS + 40, "{} chars", text.len());
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
    let table = render(&report);
    assert!(table.len() < 2_000 && !table.contains('\u{1b}'), "{table}");
}
