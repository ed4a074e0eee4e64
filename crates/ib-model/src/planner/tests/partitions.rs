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
    // The join names the partition after the network it is allocated to.
    assert_eq!(w.partition_names.get("0x1001").map(String::as_str), Some("tenant_a_own"));
    // A partition a NAD names is given no name.
    w.nad("tenant-a", "named", IB5);
    w.pod("tenant-a", "q", "named");
    w.settle();
    assert_eq!(w.members("0x5").len(), 1);
    assert!(!w.partition_names.contains_key("0x5"));
}

#[test]
fn partition_names_keep_to_safe_characters_and_length() {
    use crate::requests::{MAX_PARTITION_NAME, partition_name};
    assert_eq!(partition_name(&NetworkRef::new("team-a", "rdma.net-1")), "team_a_rdma_net_1");
    let long = partition_name(&NetworkRef::new("a".repeat(63), "b".repeat(253)));
    assert_eq!(long.len(), MAX_PARTITION_NAME);
    assert!(partition_name(&NetworkRef::new("ns", "x\"y</z>")).chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
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

// === options, the shared limited partition, QoS and creation ===

use crate::partition::{Membership, MtuLimit, PartitionOptions, Qos, RateLimit};

const LIMITED_QOS: &str = r#"{"type":"ib-sriov","pkey":"0x6","membership":"limited","index0":false,"mtu_limit":4,"service_level":3,"rate_limit":100}"#;

fn shared(pkey: &str) -> World {
    with_partitions(PartitionPolicy { default_limited: Some(pk(pkey)), ..PartitionPolicy::default() })
}

#[test]
fn a_network_s_options_and_the_cluster_defaults_reach_the_join() {
    let primary = PartitionOptions { ip_over_ib: false, ..PartitionOptions::default() };
    let mut w = with_partitions(PartitionPolicy { primary, ..PartitionPolicy::default() });
    w.nad("default", "limited", LIMITED_QOS);
    w.nad("default", "plain", IB5);
    let a = w.pod("default", "a", "limited");
    let b = w.pod("default", "b", "plain");
    w.settle();
    assert_eq!((w.reason(&a), w.reason(&b)), (None, None));
    let ga = *w.members("0x6").first().unwrap();
    let gb = *w.members("0x5").first().unwrap();
    let qos = Qos { mtu_limit: MtuLimit::Mtu4K, service_level: 3, rate_limit: RateLimit::from_gbps(100.0).unwrap() };
    // The NAD's membership and index0, the cluster's ip_over_ib, the NAD's QoS.
    assert_eq!(
        w.joined_with[&("0x6".to_owned(), ga)],
        PartitionOptions { membership: Membership::Limited, index0: false, ip_over_ib: false, qos: Some(qos) }
    );
    assert_eq!(w.joined_with[&("0x5".to_owned(), gb)], primary);
    assert_eq!(w.qos.get("0x6"), Some(&qos));
}

#[test]
fn every_guid_joins_the_shared_limited_partition_before_its_pod_is_configured_and_leaves_it_after() {
    let mut w = shared("0x7000");
    w.nad("default", "ib5", IB5);
    w.nad("default", "guid-only", GUID_ONLY);
    let p = w.pod("default", "p", "ib5");
    let q = w.pod("default", "q", "guid-only");
    // Each patch is checked when planned, before anything else of its plan is carried out.
    for _ in 0..20 {
        let plan = w.state.plan();
        for patch in &plan.patches {
            for g in &patch.guids {
                assert!(
                    w.members("0x7000").contains(g),
                    "{} patched before {g} joined the shared partition",
                    patch.pod.name
                );
            }
        }
        w.execute(plan);
    }
    w.settle();
    assert_eq!((w.reason(&p), w.reason(&q)), (None, None));
    let gp = *w.members("0x5").first().unwrap();
    assert_eq!(w.members("0x7000").len(), 2, "the GUID-only network's GUID joins it too");
    assert!(w.members("0x7000").contains(&gp));
    let limited = w.joined_with[&("0x7000".to_owned(), gp)];
    assert_eq!((limited.membership, limited.index0, limited.qos), (Membership::Limited, false, None));
    // Configured only after both joins of p's GUID.
    let configured = w.log.iter().position(|l| matches!(l, Logged::Configured(n, _) if n == "p")).unwrap();
    let joins: Vec<usize> = w
        .log
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l, Logged::Sm(SmOp::Add, _, gs) if gs.contains(&gp)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(joins.len(), 2);
    assert!(joins.iter().all(|i| *i < configured), "{:?}", w.log);
    w.delete(&p);
    w.delete(&q);
    w.settle();
    assert!(w.sm.is_empty(), "both partitions left: {:?}", w.sm);
    assert!(w.records.is_empty(), "records go once every membership is gone");
    assert!(w.unrecorded.is_empty());
}

#[test]
fn a_new_leader_finds_shared_memberships_explained_by_their_records() {
    let mut w = shared("0x7000");
    w.nad("default", "ib5", IB5);
    let p = w.pod("default", "p", "ib5");
    w.settle();
    w.restart();
    w.settle();
    assert!(w.unrecorded.is_empty(), "{:?}", w.unrecorded);
    assert_eq!(w.members("0x7000").len(), 1);
    assert_eq!(w.reason(&p), None);
    // An unowned pool GUID found in the shared partition without a record is reported, not removed.
    w.sm_seed("0x7000", "02:00:00:00:00:00:00:99");
    w.restart();
    w.settle();
    assert_eq!(w.unrecorded, vec![g_("99")]);
    assert!(w.members("0x7000").contains(&g_("99")));
}

#[test]
fn the_shared_partition_counts_toward_a_node_s_partition_limit() {
    let mut w = shared("0x7000");
    for k in 1..=crate::planner::MAX_PKEYS_PER_NODE {
        w.nad("default", &format!("n{k}"), &format!(r#"{{"type":"ib-sriov","pkey":"0x{k:x}"}}"#));
    }
    let mut last = None;
    for k in 1..=crate::planner::MAX_PKEYS_PER_NODE {
        last = Some(w.pod("default", &format!("p{k}"), &format!("n{k}")));
        w.settle();
    }
    // 127 own partitions and the shared one fill the table; the 128th own one does not fit.
    assert_eq!(w.reason(&last.unwrap()), Some("TooManyPKeys"));
    assert_eq!(w.state.pool().allocated_count() as usize, crate::planner::MAX_PKEYS_PER_NODE - 1);
}

#[test]
fn qos_is_set_when_the_partition_is_new_and_again_after_it_was_deleted() {
    let mut w = World::default_range().synced();
    w.nad("default", "qos", LIMITED_QOS);
    let a = w.pod("default", "a", "qos");
    w.settle();
    let b = w.pod("default", "b", "qos");
    w.settle();
    let with_qos = |w: &World| w.joined_with.values().filter(|o| o.qos.is_some()).count();
    assert_eq!(with_qos(&w), 1, "the second join leaves the partition's QoS alone");
    w.delete(&a);
    w.delete(&b);
    w.settle();
    assert!(w.qos.is_empty(), "the partition went with its last member, and its QoS with it");
    w.joined_with.clear();
    let c = w.pod("default", "c", "qos");
    w.settle();
    assert_eq!(w.reason(&c), None);
    assert_eq!(with_qos(&w), 1);
    assert_eq!(w.qos.get("0x6").map(|q| q.service_level), Some(3));
}

#[test]
fn two_sets_of_options_on_one_partition_go_in_separate_requests() {
    let mut w = World::default_range().synced();
    w.nad("default", "full", IB5);
    w.nad("default", "limited", r#"{"type":"ib-sriov","pkey":"0x5","membership":"limited"}"#);
    w.pod("default", "a", "full");
    w.pod("default", "b", "limited");
    w.settle();
    let members = w.members("0x5");
    assert_eq!(members.len(), 2);
    let kinds: BTreeSet<Membership> =
        members.iter().map(|g| w.joined_with[&("0x5".to_owned(), *g)].membership).collect();
    assert_eq!(kinds, BTreeSet::from([Membership::Full, Membership::Limited]));
}

#[test]
fn a_missing_partition_is_not_created_when_creation_is_off() {
    let mut w = with_partitions(PartitionPolicy { allow_create: false, ..PartitionPolicy::default() });
    w.nad("default", "ib5", IB5);
    let p = w.pod("default", "p", "ib5");
    w.settle();
    assert_eq!(w.reason(&p), Some("PartitionNotFound"));
    assert!(w.state.pending_reason(&p).unwrap().to_string().contains("partition 0x0005 does not exist"));
    assert!(w.sm.is_empty(), "nothing was created");
    let events = w.pending_seen.iter().filter(|(n, r)| n == "p" && r.label() == "PartitionNotFound").count();
    // The operator creates it; the retry (the controller's backoff timer) then succeeds.
    w.empty_partitions.insert("0x5".to_owned());
    let guid = w.state.ledger().iter().next().unwrap().0;
    w.state.retry_guids(&[guid]);
    w.settle();
    assert_eq!(w.reason(&p), None);
    assert_eq!(w.members("0x5").len(), 1);
    assert_eq!(events, 1, "one Event for the wait");
}

#[test]
fn an_allocated_key_is_named_from_the_moment_a_pod_is_planned_into_it_until_it_has_left() {
    let range = PKeyRange::parse("0x1000-0x10ff").unwrap();
    let fresh = State::with_policy(World::default_range().state.pool().range(), Policy::default());
    assert_eq!(fresh.pkeys_claimed(range), None, "nothing is known before the records are read");

    let mut w = allocating();
    w.settle();
    assert_eq!(w.state.pkeys_claimed(range), Some(BTreeSet::new()));
    w.nad("tenant-a", "own", ALLOC);
    w.state.set_pkey_allocations([(NetworkRef::new("tenant-a", "own"), pk("0x1001"))].into());
    let p = w.pod("tenant-a", "p", "own");
    // Planned, its record not yet written and nothing sent: the claim already names the key.
    let plan = w.state.plan();
    assert!(!plan.records.is_empty() && plan.sm.is_empty(), "{plan:?}");
    assert_eq!(w.state.pkeys_claimed(range), Some([pk("0x1001")].into()));
    w.execute(plan);
    w.settle();
    assert_eq!(w.members("0x1001").len(), 1);

    // Withdrawn from the planner (its NAD is going): the configured pod still names it.
    w.state.set_pkey_allocations(Default::default());
    w.settle();
    assert_eq!(w.state.pkeys_claimed(range), Some([pk("0x1001")].into()));
    // Keys outside the range are not the allocator's business.
    let other = PKeyRange::parse("0x2000-0x20ff").unwrap();
    assert_eq!(w.state.pkeys_claimed(other), Some(BTreeSet::new()));

    w.delete(&p);
    w.settle();
    assert!(w.members("0x1001").is_empty());
    assert_eq!(w.state.pkeys_claimed(range), Some(BTreeSet::new()));
}
