//! Ownership keeps the pool in step with the holders of every GUID.

use proptest::prelude::*;

use super::*;
use crate::annotation::NetworkRef;

fn g(v: u64) -> Guid {
    Guid::from_u64(v)
}

fn pk(v: u32) -> PKey {
    PKey::new(v).unwrap()
}

fn owner(pod: &str) -> InterfaceKey {
    InterfaceKey { pod: PodUid::from(pod), network: NetworkRef::new("default", "ib"), interface: "idx_0".into() }
}

fn ownership() -> Ownership {
    Ownership::new(GuidRange::new(g(1), g(8)).unwrap())
}

const UNKNOWN: SmFailure = SmFailure { kind: "timeout", unknown: true };
const FAILED: SmFailure = SmFailure { kind: "status", unknown: false };

/// Whether the pool holds exactly the GUIDs something holds.
fn in_step(o: &Ownership) -> Result<(), String> {
    for v in 1..=8 {
        let held = o.ledger.contains(g(v)) || o.sm.holds(g(v)) || o.op_in_flight(g(v)) || o.is_uncertain(g(v));
        if o.pool.is_allocated(g(v)) != held {
            return Err(format!("GUID {v}: held {held}, allocated {}", o.pool.is_allocated(g(v))));
        }
    }
    Ok(())
}

#[test]
fn a_guid_whose_outcome_is_unknown_is_held_until_a_listing_settles_it() {
    let mut o = ownership();
    o.claim(g(1), owner("a"), Some(pk(5)), None, false);
    o.start_op(g(1), (SmOp::Add, pk(5)));
    // The owner leaves while the add is in flight: the GUID stays held.
    assert!(o.unclaim(g(1)));
    assert!(o.pool().is_allocated(g(1)) && o.take_released().is_empty());
    assert!(o.finish_op(g(1), SmOp::Add, pk(5), &Err(UNKNOWN)));
    assert!(o.pool().is_allocated(g(1)) && o.is_uncertain(g(1)));
    assert_eq!(o.failure(g(1)), Some("timeout"));
    // The listing finds it in no partition: free again, and its failure is forgotten with it.
    o.listed(g(1), None, true);
    assert!(!o.pool().is_allocated(g(1)));
    assert_eq!((o.take_released(), o.failure(g(1))), (vec![g(1)], None));
}

#[test]
fn a_settled_guid_found_in_a_partition_stays_held_and_keeps_its_failure() {
    let mut o = ownership();
    o.start_op(g(2), (SmOp::Add, pk(5)));
    assert!(o.finish_op(g(2), SmOp::Add, pk(5), &Err(UNKNOWN)));
    o.listed(g(2), Some(&[Partition::Managed(pk(5))]), true);
    assert!(o.pool().is_allocated(g(2)) && o.sm().has(g(2), pk(5)) && !o.is_uncertain(g(2)));
    // The removal waits for the caller's backoff like any retry.
    assert_eq!(o.failure(g(2)), Some("timeout"));
    assert!(o.take_released().is_empty());
}

#[test]
fn an_outcome_of_another_change_changes_nothing() {
    let mut o = ownership();
    o.start_op(g(3), (SmOp::Add, pk(5)));
    assert!(!o.finish_op(g(3), SmOp::Remove, pk(5), &Ok(())));
    assert!(!o.finish_op(g(3), SmOp::Add, pk(6), &Ok(())));
    assert!(o.op_in_flight(g(3)) && !o.sm().holds(g(3)));
}

#[test]
fn a_release_wakes_every_blocked_pod_once_and_ends_the_exhaustion() {
    let mut o = ownership();
    assert!(o.note_exhaustion());
    assert!(!o.note_exhaustion(), "one listing per exhaustion");
    let waiter = PodUid::from("waiter");
    o.block(&waiter);
    let g1 = o.generate(owner("a"), Some(pk(5)), Some("node".into())).unwrap();
    assert_eq!(o.node_pkeys("node").map(|m| m[&pk(5)]), Some(1));
    assert!(!o.has_woken());
    assert!(o.unclaim(g1));
    assert_eq!(o.node_pkeys("node"), None);
    assert_eq!((o.take_woken(), o.take_released()), (vec![waiter], vec![g1]));
    assert!(o.take_woken().is_empty());
    assert!(o.note_exhaustion(), "a release ends the exhaustion");
}

#[derive(Debug, Clone)]
enum Op {
    Claim(u64),
    Generate,
    Unclaim(u64),
    Start(u64, bool),
    Finish(u64, bool, u8),
    Listed(u64, bool, bool),
    Retry(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..=8u64).prop_map(Op::Claim),
        Just(Op::Generate),
        (1..=8u64).prop_map(Op::Unclaim),
        (1..=8u64, any::<bool>()).prop_map(|(v, add)| Op::Start(v, add)),
        (1..=8u64, any::<bool>(), 0..3u8).prop_map(|(v, add, r)| Op::Finish(v, add, r)),
        (1..=8u64, any::<bool>(), any::<bool>()).prop_map(|(v, member, settles)| Op::Listed(v, member, settles)),
        (1..=8u64).prop_map(Op::Retry),
    ]
}

proptest! {
    /// Whatever happens to a GUID's holders, in whatever order, the pool is in step after every
    /// call, and exactly the GUIDs that went back to the pool are reported, free of failures.
    #[test]
    fn the_pool_is_in_step_after_every_call(ops in prop::collection::vec(op(), 1..80)) {
        let mut o = ownership();
        let mut pods = 0;
        for op in ops {
            let free_before = o.pool().free_count();
            let allocated_before: Vec<u64> = (1..=8).filter(|v| o.pool().is_allocated(g(*v))).collect();
            match op {
                Op::Claim(v) => if !o.ledger().contains(g(v)) {
                    pods += 1;
                    o.claim(g(v), owner(&format!("p{pods}")), Some(pk(5)), None, false);
                },
                Op::Generate => {
                    pods += 1;
                    let got = o.generate(owner(&format!("p{pods}")), None, None);
                    prop_assert_eq!(got.is_none(), free_before == 0);
                }
                Op::Unclaim(v) => { let _ = o.unclaim(g(v)); }
                Op::Start(v, add) => if !o.op_in_flight(g(v)) && !o.is_uncertain(g(v)) {
                    o.start_op(g(v), (if add { SmOp::Add } else { SmOp::Remove }, pk(5)));
                },
                Op::Finish(v, add, r) => {
                    let result = [Ok(()), Err(FAILED), Err(UNKNOWN)][usize::from(r)].clone();
                    let _ = o.finish_op(g(v), if add { SmOp::Add } else { SmOp::Remove }, pk(5), &result);
                }
                Op::Listed(v, member, settles) => if !o.op_in_flight(g(v)) {
                    let partitions = [Partition::Managed(pk(5))];
                    let settles = settles && o.is_uncertain(g(v));
                    if settles || !o.is_uncertain(g(v)) {
                        o.listed(g(v), member.then_some(&partitions[..]), settles);
                    }
                },
                Op::Retry(v) => { let _ = o.retry(g(v)); }
            }
            in_step(&o).map_err(TestCaseError::fail)?;
            let freed: Vec<Guid> =
                allocated_before.into_iter().filter(|v| !o.pool().is_allocated(g(*v))).map(g).collect();
            let mut released = o.take_released();
            released.sort();
            prop_assert_eq!(&released, &freed);
            for r in released {
                prop_assert_eq!(o.failure(r), None);
            }
        }
    }
}
