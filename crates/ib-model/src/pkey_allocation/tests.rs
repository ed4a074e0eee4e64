use super::*;
use proptest::prelude::*;

fn range(text: &str) -> PKeyRange {
    PKeyRange::parse(text).unwrap()
}

fn pk(text: &str) -> PKey {
    PKey::parse(text).unwrap()
}

fn nad(ns: &str, name: &str, uid: &str) -> NadState {
    NadState { holder: Holder::new(ns, name, uid), asks: true, deleting: false }
}

/// Every key counts as settled: the two-step release is tested on its own.
fn world(nads: Vec<NadState>) -> World {
    World { nads, settled: (1..0x7FFF).filter_map(|v| PKey::new(v).ok()).collect(), ..World::default() }
}

/// Decides and folds the decision into `ledger`, checking the invariant each time.
fn step(ledger: &mut AllocationLedger, w: &World) -> Decision {
    let d = decide(ledger, w);
    d.ledger.check().unwrap();
    *ledger = d.ledger.clone();
    d
}

#[test]
fn the_lowest_free_key_is_allocated_skipping_taken_ones() {
    let mut l = AllocationLedger::new(range("0x1000-0x1003"));
    let mut w = world(vec![nad("a", "n", "u1"), nad("b", "n", "u2")]);
    w.taken = [pk("0x1000")].into();
    let d = step(&mut l, &w);
    assert_eq!(
        d.allocated,
        vec![(pk("0x1001"), Holder::new("a", "n", "u1")), (pk("0x1002"), Holder::new("b", "n", "u2"))]
    );
    assert!(d.exhausted.is_empty() && d.released.is_empty());
    // Same names in two namespaces are two holders; a second pass keeps both.
    let again = step(&mut l, &w);
    assert!(!again.changed() && again.exhausted.is_empty());
    let live: HashMap<NetworkRef, String> =
        [(NetworkRef::new("a", "n"), "u1".into()), (NetworkRef::new("b", "n"), "u2".into())].into();
    let published = l.published(&live);
    assert_eq!(published[&NetworkRef::new("a", "n")], pk("0x1001"));
    assert_eq!(published[&NetworkRef::new("b", "n")], pk("0x1002"));
}

#[test]
fn a_key_is_given_back_only_when_its_nad_is_gone_or_deleting_and_no_pod_uses_it() {
    let mut l = AllocationLedger::new(range("0x1000-0x10ff"));
    step(&mut l, &world(vec![nad("a", "n", "u1")]));
    let key = l.key_of("u1").unwrap();
    let mut deleting = nad("a", "n", "u1");
    deleting.deleting = true;
    let mut w = world(vec![deleting]);
    w.in_use = [key].into();
    let d = step(&mut l, &w);
    assert!(!d.changed(), "a deleting NAD whose key pods use keeps it");
    assert_eq!(l.key_of("u1"), Some(key));
    // Not published to a NAD of the same name created since: it is another holder.
    assert!(l.published(&[(NetworkRef::new("a", "n"), "u9".into())].into()).is_empty());
    w.in_use.clear();
    let d = step(&mut l, &w);
    assert_eq!(d.released, vec![(key, Holder::new("a", "n", "u1"))]);
    assert!(l.is_empty());
    // Gone entirely (a ledger entry naming a NAD that no longer exists): given back too.
    step(&mut l, &world(vec![nad("a", "m", "u2")]));
    let d = step(&mut l, &world(vec![]));
    assert_eq!(d.released.len(), 1);
    assert!(l.is_empty());
}

#[test]
fn a_nad_recreated_under_its_name_gets_a_new_key_while_the_old_one_is_in_use() {
    let mut l = AllocationLedger::new(range("0x1000-0x10ff"));
    step(&mut l, &world(vec![nad("a", "n", "old")]));
    let old = l.key_of("old").unwrap();
    let mut w = world(vec![nad("a", "n", "new")]);
    w.in_use = [old].into();
    let d = step(&mut l, &w);
    let new = l.key_of("new").unwrap();
    assert_ne!(old, new);
    assert_eq!(d.allocated, vec![(new, Holder::new("a", "n", "new"))]);
    assert_eq!(l.key_of("old"), Some(old), "the old holder keeps its key while pods use it");
    let live = [(NetworkRef::new("a", "n"), "new".to_owned())].into();
    assert_eq!(l.published(&live), [(NetworkRef::new("a", "n"), new)].into());
    w.in_use.clear();
    let d = step(&mut l, &w);
    assert_eq!(d.released, vec![(old, Holder::new("a", "n", "old"))]);
    assert_eq!(l.key_of("new"), Some(new));
}

#[test]
fn a_range_of_one_key_serves_one_nad_and_reports_the_others() {
    let mut l = AllocationLedger::new(range("0x2000-0x2000"));
    let d = step(&mut l, &world(vec![nad("b", "second", "u2"), nad("a", "first", "u1")]));
    assert_eq!(d.allocated, vec![(pk("0x2000"), Holder::new("a", "first", "u1"))]);
    assert_eq!(d.exhausted, vec![Holder::new("b", "second", "u2")]);
    // Once the first is gone and unused, the second gets the key.
    let d = step(&mut l, &world(vec![nad("b", "second", "u2")]));
    assert_eq!(d.released.len(), 1);
    assert_eq!(d.allocated, vec![(pk("0x2000"), Holder::new("b", "second", "u2"))]);
}

#[test]
fn a_nad_flipping_allocate_pkey_off_and_on() {
    let mut l = AllocationLedger::new(range("0x1000-0x10ff"));
    step(&mut l, &world(vec![nad("a", "n", "u1")]));
    let key = l.key_of("u1").unwrap();
    let mut off = nad("a", "n", "u1");
    off.asks = false;
    let mut w = world(vec![off]);
    w.in_use = [key].into();
    assert!(!step(&mut l, &w).changed(), "pods still use it: kept");
    // Back on before its pods are gone: the same key, nothing new.
    let d = step(&mut l, &world(vec![nad("a", "n", "u1")]));
    assert!(!d.changed());
    assert_eq!(l.key_of("u1"), Some(key));
    // Off with no pod: given back; on again: allocated afresh.
    w.in_use.clear();
    assert_eq!(step(&mut l, &w).released.len(), 1);
    assert_eq!(step(&mut l, &world(vec![nad("a", "n", "u1")])).allocated.len(), 1);
}

#[test]
fn an_unused_key_is_first_withdrawn_and_given_back_only_once_settled() {
    let mut l = AllocationLedger::new(range("0x1000-0x10ff"));
    step(&mut l, &world(vec![nad("a", "n", "u1")]));
    let key = l.key_of("u1").unwrap();
    let mut gone = World::default();
    let d = step(&mut l, &gone);
    assert_eq!(d.withdrawing, vec![(key, Holder::new("a", "n", "u1"))]);
    assert!(d.released.is_empty() && l.key_of("u1") == Some(key), "not given back before it settles");
    // A pod found joining meanwhile keeps it.
    gone.settled = [key].into();
    gone.in_use = [key].into();
    let d = step(&mut l, &gone);
    assert!(d.withdrawing.is_empty() && d.released.is_empty());
    gone.in_use.clear();
    assert_eq!(step(&mut l, &gone).released, vec![(key, Holder::new("a", "n", "u1"))]);
}

#[test]
fn a_deleting_nad_without_a_key_gets_none() {
    let mut l = AllocationLedger::new(range("0x1000-0x10ff"));
    let mut n = nad("a", "n", "u1");
    n.deleting = true;
    let d = step(&mut l, &world(vec![n.clone(), nad("a", "", "")]));
    assert!(!d.changed() && d.exhausted.is_empty(), "{d:?}");
}

#[test]
fn thousands_asking_at_once_fill_the_range_and_the_rest_are_reported() {
    let mut l = AllocationLedger::new(range("0x1000-0x13ff"));
    let nads: Vec<NadState> = (0..5000).map(|i| nad(&format!("ns{i}"), "n", &format!("u{i}"))).collect();
    let d = step(&mut l, &world(nads));
    assert_eq!(d.allocated.len(), 1024);
    assert_eq!(d.exhausted.len(), 5000 - 1024);
    assert_eq!(l.len(), 1024);
    let keys: BTreeSet<PKey> = d.allocated.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys.len(), 1024, "no key twice");
}

#[test]
fn a_stored_ledger_is_read_back_and_bad_entries_are_left_out() {
    let r = range("0x1000-0x10ff");
    let mut l = AllocationLedger::new(r);
    step(&mut l, &world(vec![nad("a", "n", "u1"), nad("b", "n", "u2")]));
    let data = l.to_data();
    let (back, problems) = AllocationLedger::from_data(r, data.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(back, l);

    let holder = r#"{"namespace":"a","name":"n","uid":"u1"}"#;
    let (back, problems) = AllocationLedger::from_data(
        r,
        [
            ("0x1005", holder),
            ("0x1001", holder),
            ("0x2000", holder),
            ("zz", holder),
            ("0x1002", "not json"),
            ("0x1003", r#"{"namespace":"a"}"#),
        ],
    );
    back.check().unwrap();
    assert_eq!(back.key_of("u1"), Some(pk("0x1001")), "the lower key of a holder named twice is kept");
    assert_eq!(back.len(), 1);
    assert_eq!(problems.len(), 5, "{problems:?}");
    assert!(problems.contains(&AllocationError::SecondKey { key: pk("0x1005"), uid: "u1".into(), held: pk("0x1001") }));
    assert!(problems.contains(&AllocationError::OutsideRange { key: pk("0x2000"), range: r }));
    assert!(problems.contains(&AllocationError::Key { key: "zz".into() }));
}

proptest! {
    /// Whatever happens to the NADs, the ledger keeps its invariant, a key held by a NAD whose pods use
    /// it is never given back or given to another, and every NAD that asks either holds a key or is
    /// reported exhausted.
    #[test]
    fn the_ledger_never_gives_one_key_twice(
        steps in proptest::collection::vec(
            (proptest::collection::vec((0u8..12, any::<bool>(), any::<bool>(), 0u8..3), 0..12),
             proptest::collection::btree_set(0u16..8, 0..4)),
            1..12),
    ) {
        let r = range("0x1000-0x1005");
        let mut l = AllocationLedger::new(r);
        for (nads, used) in steps {
            let nads: Vec<NadState> = nads
                .into_iter()
                .map(|(n, asks, deleting, generation)| NadState {
                    holder: Holder::new("ns", format!("n{n}"), format!("u{n}-{generation}")),
                    asks,
                    deleting,
                })
                .collect();
            let in_use: BTreeSet<PKey> = used.iter().map(|v| PKey::new(0x1000 + u32::from(*v)).unwrap()).collect();
            let before = l.clone();
            let settled = in_use.iter().map(|k| PKey::new(u32::from(k.get()) ^ 1).unwrap()).collect();
            let w = World { nads: nads.clone(), taken: BTreeSet::new(), in_use: in_use.clone(), settled };
            let d = decide(&l, &w);
            prop_assert!(d.ledger.check().is_ok());
            for (key, holder) in before.entries() {
                if in_use.contains(&key) {
                    prop_assert_eq!(d.ledger.holder_of(key), Some(holder));
                }
            }
            let mut uids = HashSet::new();
            for n in nads.iter().filter(|n| n.asks && !n.deleting) {
                if uids.insert(n.holder.uid.clone()) {
                    prop_assert!(d.ledger.key_of(&n.holder.uid).is_some() || d.exhausted.contains(&n.holder));
                }
            }
            l = d.ledger;
        }
    }
}
