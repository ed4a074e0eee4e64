//! Partition rules: allocated partitions, the default limited partition, options and creation.

use super::*;
use crate::partition::PartitionPolicy;
use crate::pkey::PKeyRange;

const ALLOC: &str = r#"{"type":"ib-sriov","allocate_pkey":true}"#;
const IB1005: &str = r#"{"type":"ib-sriov","pkey":"0x1005"}"#;

fn with_partitions(partitions: PartitionPolicy) -> World {
    let mut w = World::default_range();
    w.policy = Policy { partitions, ..Policy::default() };
    w.state = State::with_policy(w.state.pool().range(), w.policy.clone());
    w.synced()
}

fn allocating() -> World {
    let range = PKeyRange::parse("0x1000-0x10ff").unwrap();
    with_partitions(PartitionPolicy { allocation_range: Some(range), ..PartitionPolicy::default() })
}

#[test]
fn a_network_asking_for_a_partition_waits_for_its_allocation_then_joins_it() {
    let mut w = allocating();
    w.nad("tenant-a", "own", ALLOC);
    let p = w.pod("tenant-a", "p", "own");
    w.settle();
    assert_eq!(w.reason(&p), Some("PartitionNotAllocated"));
    assert_eq!(w.state.pool().allocated_count(), 0, "a waiting pod holds no GUID");
    w.state.set_pkey_allocations([(NetworkRef::new("tenant-a", "own"), pk("0x1001"))].into());
    w.settle();
    assert_eq!(w.reason(&p), None);
    assert_eq!(w.members("0x1001").len(), 1);
    let a = w.annotation(&p);
    assert_eq!(a[0]["cni-args"]["pkey"], "0x1001", "{a}");
}

#[test]
fn each_network_joins_only_the_partition_allocated_to_it() {
    let mut w = allocating();
    // Two tenants with allocations: tenant B.s pods join only its own.
    w.nad("tenant-b", "forged", r#"{"type":"ib-sriov","allocate_pkey":true}"#);
    w.state.set_pkey_allocations(
        [(NetworkRef::new("tenant-a", "own"), pk("0x1001")), (NetworkRef::new("tenant-b", "forged"), pk("0x1002"))]
            .into(),
    );
    let p = w.pod("tenant-b", "p", "forged");
    w.settle();
    assert_eq!(w.members("0x1001").len(), 0);
    assert_eq!(w.members("0x1002").len(), 1);
    assert_eq!(w.reason(&p), None);
}

#[test]
fn naming_a_key_of_the_allocation_range_is_refused() {
    let mut w = allocating();
    w.state.set_pkey_allocations([(NetworkRef::new("tenant-a", "own"), pk("0x1005"))].into());
    w.nad("tenant-b", "named", IB1005);
    let p = w.pod("tenant-b", "p", "named");
    w.settle();
    assert_eq!(w.reason(&p), Some("PartitionReserved"));
    let text = w.state.pending_reason(&p).unwrap().to_string();
    assert!(text.contains("0x1005") && text.contains("0x1000-0x10FF") && !text.contains("tenant-a"), "{text}");
    assert!(w.members("0x1005").is_empty());
    // Outside the range, naming is as before.
    w.nad("tenant-b", "plain", IB5);
    let q = w.pod("tenant-b", "q", "plain");
    w.settle();
    assert_eq!(w.reason(&q), None);
}

#[test]
fn asking_for_a_partition_where_none_are_allocated_says_so() {
    let mut w = World::default_range().synced();
    w.nad("default", "own", ALLOC);
    let p = w.pod("default", "p", "own");
    w.settle();
    assert_eq!(w.reason(&p), Some("PartitionNotAllocated"));
    assert!(w.state.pending_reason(&p).unwrap().to_string().contains("PKEY_ALLOCATION_RANGE is not set"));
}

#[test]
fn a_configured_pod_keeps_its_allocated_partition_when_the_allocation_goes() {
    let mut w = allocating();
    w.nad("tenant-a", "own", ALLOC);
    w.state.set_pkey_allocations([(NetworkRef::new("tenant-a", "own"), pk("0x1001"))].into());
    let p = w.pod("tenant-a", "p", "own");
    w.settle();
    assert_eq!(w.reason(&p), None);
    w.state.set_pkey_allocations(Default::default());
    w.settle();
    assert_eq!(w.members("0x1001").len(), 1, "a running pod keeps the partition its VF was set up for");
    w.delete(&p);
    w.settle();
    assert!(w.members("0x1001").is_empty());
}
