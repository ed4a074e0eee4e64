//! Random worlds converge to the invariants.

use super::*;

#[derive(Debug, Clone)]
enum Step {
    NewPod {
        nets: Vec<usize>,
        requested: Option<u8>,
    },
    DeletePod(usize),
    FinishPod(usize),
    FailPkey(usize),
    HealAll,
    RunOnce,
    Resync,
    /// Plan and queue the work without doing it.
    PlanOnly,
    /// Finish one queued piece of work, chosen by index (so work completes out of order).
    Complete(usize),
    /// Someone else edits the pod (a label, say): patches planned before conflict.
    Touch(usize),
    /// The leader dies with its queued work undone; a new one starts from the cluster and the SM.
    Restart,
}

const NADS: [(&str, &str); 4] = [
    ("ib5", r#"{"type":"ib-sriov","pkey":"0x5"}"#),
    ("ib6", r#"{"type":"ib-sriov","pkey":"0x6","capabilities":{"infinibandGUID":true}}"#),
    ("gonly", r#"{"type":"ib-sriov"}"#),
    ("mac", r#"{"type":"macvlan"}"#),
];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (prop::collection::vec(0usize..5, 1..5), prop::option::of(0u8..10))
            .prop_map(|(nets, requested)| Step::NewPod { nets, requested }),
        2 => (0usize..64).prop_map(Step::DeletePod),
        1 => (0usize..64).prop_map(Step::FinishPod),
        1 => (0usize..2).prop_map(Step::FailPkey),
        1 => Just(Step::HealAll),
        3 => Just(Step::RunOnce),
        1 => Just(Step::Resync),
        3 => Just(Step::PlanOnly),
        4 => (0usize..16).prop_map(Step::Complete),
        1 => (0usize..64).prop_map(Step::Touch),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For random pods, NADs, SM contents and failures, after the faults stop and the plans run:
    /// every live IB interface that nothing blocks has a unique GUID that is a member of its PKey, and
    /// nothing else in the pool range is a member; the pool counts exactly what is owned or held.
    #[test]
    fn plans_converge_to_the_invariants(
        seed_sm in prop::collection::vec((0u8..10, 0usize..3), 0..4),
        steps in prop::collection::vec(step(), 1..40),
        remove_unrecorded in any::<bool>(),
        first_start in any::<bool>(),
    ) {
        // A tiny range, so that exhaustion, requested GUIDs next to generated ones, and reuse happen.
        let mut w = World::new("02:00:00:00:00:00:00:00", "02:00:00:00:00:00:00:07");
        w.policy = Policy { remove_unrecorded, ..Policy::default() };
        w.state = State::with_policy(w.state.pool().range(), w.policy.clone());
        if first_start {
            w = w.first_start();
        }
        for (i, (name, config)) in NADS.iter().enumerate() {
            if i < 4 { w.nad("default", name, config); }
        }
        for (low, p) in seed_sm {
            let pkey = ["0x5", "0x6", "0x7fff"][p];
            w.sm_seed(pkey, &format!("02:00:00:00:00:00:00:{low:02x}"));
        }
        w.state.pods_synced();
        w.state.nads_synced();
        w.read_records();
        let mut uids: Vec<PodUid> = Vec::new();
        for (n, s) in steps.into_iter().enumerate() {
            match s {
                Step::NewPod { nets, requested } => {
                    let mut elements = Vec::new();
                    for (k, net) in nets.iter().enumerate() {
                        // Index 4 names a NAD that does not exist.
                        let name = NADS.get(*net).map_or("missing", |(n, _)| *n);
                        let mut e = serde_json::json!({"name": name, "interface": format!("if{k}")});
                        if k == 0 && let Some(low) = requested {
                            e["cni-args"] = serde_json::json!({"guid": format!("02:00:00:00:00:00:00:{low:02X}")});
                        }
                        elements.push(e);
                    }
                    uids.push(w.pod("default", &format!("p{n}"), &Value::Array(elements).to_string()));
                }
                Step::DeletePod(i) => if !uids.is_empty() {
                    let uid = uids[i % uids.len()].clone();
                    if w.pods.contains_key(&*uid.0) { w.delete(&uid); }
                }
                Step::FinishPod(i) => if !uids.is_empty() {
                    let uid = uids[i % uids.len()].clone();
                    if w.pods.contains_key(&*uid.0) { w.edit(&uid, |v| v.phase = PodPhase::Failed); }
                }
                Step::FailPkey(i) => { w.failing.insert(pk(["0x5", "0x6"][i])); }
                Step::HealAll => w.failing.clear(),
                Step::RunOnce => { let plan = w.state.plan(); w.execute(plan); }
                Step::Resync => w.state.resync(),
                Step::PlanOnly => { let plan = w.state.plan(); w.enqueue(plan); }
                Step::Complete(i) => if !w.queue.is_empty() { let n = w.queue.len(); w.complete(i % n); }
                Step::Restart => w.restart(),
                Step::Touch(i) => if !uids.is_empty() {
                    let uid = uids[i % uids.len()].clone();
                    if w.pods.contains_key(&*uid.0) { w.edit(&uid, |_| {}); }
                }
            }
        }
        // Faults stop; queued work finishes; every failed GUID is retried, as the controller's backoff would.
        w.failing.clear();
        while !w.queue.is_empty() { w.complete(0); }
        for _ in 0..3 {
            let failed: Vec<Guid> = w.state.owners().failed_guids().collect();
            w.state.retry_guids(&failed);
            w.settle();
        }
        w.state.allow_drift_repair();
        w.settle();
        prop_assert!(w.state.owners().failed_guids().next().is_none());
        check_invariants(&w)?;
    }
}

fn check_invariants(w: &World) -> Result<(), TestCaseError> {
    let range = w.state.pool().range();
    let mut expected: BTreeSet<(String, Guid)> = BTreeSet::new();
    let mut owners: BTreeMap<Guid, String> = BTreeMap::new();
    for view in w.pods.values() {
        if view.is_finished() {
            continue;
        }
        let raw = view.networks.as_deref().unwrap();
        let a = crate::annotation::NetworksAnnotation::parse(raw, &view.namespace).unwrap();
        let blocked = w.state.pending_reason(&view.uid);
        for s in a.selections() {
            let nad = NADS.iter().find(|(n, _)| *n == &*s.network.name);
            let Some((_, config)) = nad else {
                prop_assert!(blocked.is_some(), "{} uses a missing NAD and is not blocked", view.name);
                continue;
            };
            if config.contains("macvlan") {
                continue;
            }
            if !s.configured {
                // Only a reason may keep an IB interface unconfigured.
                prop_assert!(blocked.is_some(), "{} {} not configured and not blocked", view.name, s.interface);
                continue;
            }
            let guid = Guid::parse(&s.guid.as_ref().unwrap().0).unwrap();
            prop_assert!(range.contains(guid));
            if let Some(other) = owners.insert(guid, view.name.clone()) {
                prop_assert!(false, "{guid} configured for {other} and {}", view.name);
            }
            let pkey = s.pkey.clone().unwrap();
            if !pkey.is_empty() {
                let name = format!("0x{:x}", PKey::parse(&pkey).unwrap().get());
                expected.insert((name, guid));
            }
        }
    }
    let actual: BTreeSet<(String, Guid)> =
        w.sm.iter()
            .filter(|(g, _)| range.contains(**g))
            .flat_map(|(g, ps)| ps.iter().filter(|p| *p != "0x7fff").map(move |p| (p.clone(), *g)))
            .collect();
    // Memberships nobody recorded stay unless the policy removes them; pods never get their GUIDs.
    let expected: BTreeSet<(String, Guid)> = if w.policy.remove_unrecorded {
        expected
    } else {
        let unrecorded =
            w.seeded.iter().filter(|(p, g)| p != "0x7fff" && range.contains(*g) && !owners.contains_key(g)).cloned();
        expected.into_iter().chain(unrecorded).collect()
    };
    prop_assert_eq!(&actual, &expected);
    // Every membership of the range belongs to a live owner by record, or was never ours.
    for (pkey, guid) in &actual {
        let owner = w.records.get(guid);
        prop_assert!(owner.is_some() || w.seeded.contains(&(pkey.clone(), *guid)), "{guid} in {pkey} without a record");
    }
    // The pool holds exactly what pods own or the SM holds.
    let held: BTreeSet<Guid> =
        owners.keys().copied().chain(w.sm.keys().copied().filter(|g| range.contains(*g))).collect();
    prop_assert_eq!(w.state.pool().allocated_count(), held.len() as u64);
    // No interface was marked configured before its GUID was a member of its pkey.
    prop_assert!(w.violations.is_empty(), "{:?}", w.violations);
    Ok(())
}
