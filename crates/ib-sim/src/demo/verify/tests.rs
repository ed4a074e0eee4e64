//! The verdict against hand-made end states: a faithful one passes, and each way a subnet manager
//! could get the partition options wrong is caught by the check that names it.

use ib_model::partition::{Membership, Qos};
use serde_json::json;

use super::*;
use crate::workload::{self, DEFAULT_LIMITED_PKEY, NAMESPACE};

const A: u16 = 0x0a;
const STORAGE: u16 = 0x0c;
const QOS: u16 = 0x0d;
const SHARED: u16 = DEFAULT_LIMITED_PKEY;
const G1: u64 = 0x0200_0000_0000_0001;
const G2: u64 = 0x0200_0000_0000_0002;
const G3: u64 = 0x0200_0000_0000_0003;
/// A GUID of a pod that was deleted.
const GONE: u64 = 0x0200_0000_0000_0009;

fn guid_text(g: u64) -> String {
    Guid::from_u64(g).to_string()
}

/// A Running pod whose interfaces (NAD, interface, GUID) are all configured.
fn pod(name: &str, interfaces: &[(&str, &str, u64)]) -> Arc<Value> {
    let networks: Vec<Value> = interfaces
        .iter()
        .map(|(nad, iface, guid)| {
            json!({"name": nad, "interface": iface,
                   "cni-args": {"guid": guid_text(*guid), "mellanox.infiniband.app": "configured"}})
        })
        .collect();
    Arc::new(json!({
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "annotations": {"k8s.v1.cni.cncf.io/networks": serde_json::to_string(&networks).unwrap()}},
        "status": {"phase": "Running"}
    }))
}

fn seen(pkey: u16, membership: Membership, index0: bool) -> Seen {
    Seen { pkey, membership, index0: Some(index0) }
}

/// What the controller must leave behind: each membership as its NAD says, every GUID a limited
/// member of the shared partition, the QoS partition with its NAD's QoS.
struct State {
    pods: Vec<Arc<Value>>,
    kinds: HashMap<String, PodKind>,
    memberships: SeenMemberships,
    qos: BTreeMap<u16, Option<Qos>>,
    released: Vec<Guid>,
    source: Source,
}

impl State {
    fn faithful() -> State {
        let requested = REQUESTED_GUID.as_u64();
        let pods = vec![
            pod("s", &[("ib-a", "net1", G1), ("ib-storage", "net2", G2)]),
            pod("q", &[("ib-qos", "net1", G3)]),
            pod("pinned-guid", &[("ib-a", "net1", requested)]),
        ];
        let kinds = [("s", PodKind::WithStorage), ("q", PodKind::Qos), ("pinned-guid", PodKind::RequestedGuid)]
            .into_iter()
            .map(|(n, k)| (n.to_owned(), k))
            .collect();
        let limited = seen(SHARED, Membership::Limited, false);
        let memberships = [
            (G1, vec![seen(A, Membership::Full, true), limited]),
            (G2, vec![seen(STORAGE, Membership::Limited, false), limited]),
            (G3, vec![seen(QOS, Membership::Full, true), limited]),
            (requested, vec![seen(A, Membership::Full, true), limited]),
        ]
        .into_iter()
        .collect();
        let qos = [
            (A, Some(Qos::default())),
            (STORAGE, Some(Qos::default())),
            (QOS, Some(workload::demo_qos())),
            (SHARED, Some(Qos::default())),
        ]
        .into_iter()
        .collect();
        State { pods, kinds, memberships, qos, released: vec![Guid::from_u64(GONE)], source: Source::Ufm }
    }

    fn set(&mut self, guid: u64, pkey: u16, to: Option<Seen>) {
        let list = self.memberships.entry(guid).or_default();
        list.retain(|s| s.pkey != pkey);
        list.extend(to);
    }

    fn verify(&self) -> Verification {
        let nads = workload::nads();
        let range =
            GuidRange::new(Guid::parse(workload::POOL_START).unwrap(), Guid::parse(workload::POOL_END).unwrap())
                .unwrap();
        verify(&Inputs {
            pods: &self.pods,
            kinds: &self.kinds,
            ib: &workload::ib_networks(&nads),
            joins: &workload::joins(&nads),
            memberships: &self.memberships,
            partition_qos: &self.qos,
            default_limited: Some(SHARED),
            source: self.source,
            range,
            events: &[],
            deleted: &BTreeSet::new(),
            released: &self.released,
        })
    }
}

/// The one check whose name starts with `prefix`.
fn named<'a>(v: &'a Verification, prefix: &str) -> &'a Check {
    let found: Vec<&Check> = v.checks.iter().filter(|c| c.name.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "{prefix}: {:#?}", v.checks);
    found[0]
}

/// Every check passes but the one named by `prefix`, whose detail holds each of `words`.
fn fails_only(v: &Verification, prefix: &str, words: &[&str]) {
    assert!(!v.passed);
    let failed: Vec<&str> = v.checks.iter().filter(|c| !c.passed).map(|c| c.name).collect();
    assert_eq!(failed, [named(v, prefix).name], "{:#?}", v.checks);
    let detail = &named(v, prefix).detail;
    for word in words {
        assert!(detail.contains(word), "{word:?} not in {detail:?}");
    }
}

const MEMBERSHIP: &str = "each membership is full or limited";
const SHARED_CHECK: &str = "every configured GUID is a limited member of the default limited partition";
const QOS_CHECK: &str = "partitions with QoS";

#[test]
fn a_faithful_state_passes_and_every_partition_check_looked_at_something() {
    let v = State::faithful().verify();
    assert!(v.passed, "{:#?}", v.checks);
    let membership = named(&v, MEMBERSHIP);
    assert_eq!(membership.checked, 4);
    assert_eq!(membership.detail, "3 full, 1 limited, on ib-storage; index0 checked on 4");
    assert_eq!(named(&v, SHARED_CHECK).checked, 4);
    assert_eq!(named(&v, SHARED_CHECK).detail, "4 GUIDs in 0x000e, all limited, none at index 0");
    assert_eq!(named(&v, QOS_CHECK).name, "partitions with QoS have their NAD's QoS in UFM");
    assert_eq!(named(&v, QOS_CHECK).checked, 1);
    assert_eq!(
        named(&v, QOS_CHECK).detail,
        "0x000d of ib-qos: mtu_limit 4, service_level 2, rate_limit 100, 1 live member"
    );
}

#[test]
fn a_limited_nad_s_guid_joined_as_a_full_member_is_caught() {
    let mut s = State::faithful();
    s.set(G2, STORAGE, Some(seen(STORAGE, Membership::Full, false)));
    fails_only(&s.verify(), MEMBERSHIP, &[&guid_text(G2), "full member of 0xc", "ib-storage wants limited"]);
}

#[test]
fn a_full_nad_s_guid_joined_as_a_limited_member_is_caught() {
    let mut s = State::faithful();
    s.set(G3, QOS, Some(seen(QOS, Membership::Limited, true)));
    fails_only(&s.verify(), MEMBERSHIP, &[&guid_text(G3), "ib-qos wants full"]);
}

#[test]
fn index0_other_than_the_nad_says_is_caught_either_way() {
    let mut s = State::faithful();
    s.set(G1, A, Some(seen(A, Membership::Full, false)));
    s.set(G2, STORAGE, Some(seen(STORAGE, Membership::Limited, true)));
    fails_only(&s.verify(), MEMBERSHIP, &["index0 false in 0xa, ib-a wants true", "index0 true in 0xc"]);
}

#[test]
fn a_guid_missing_from_the_default_limited_partition_or_full_or_at_index0_there_is_caught() {
    for (to, words) in [
        (None, "is not a member of 0xe"),
        (Some(seen(SHARED, Membership::Full, false)), "is a full member of 0xe"),
        (Some(seen(SHARED, Membership::Limited, true)), "has 0xe at index 0"),
    ] {
        let mut s = State::faithful();
        s.set(G3, SHARED, to);
        fails_only(&s.verify(), SHARED_CHECK, &[&guid_text(G3), words]);
    }
}

#[test]
fn a_partition_without_its_nad_s_qos_is_caught() {
    let wrong = Qos { service_level: 3, ..workload::demo_qos() };
    for (qos, words) in [
        (Some(Qos::default()), "has mtu_limit 2, service_level 0, rate_limit 2.5"),
        (Some(wrong), "service_level 3"),
        (None, "has no QoS"),
    ] {
        let mut s = State::faithful();
        s.qos.insert(QOS, qos);
        fails_only(&s.verify(), QOS_CHECK, &["0x000d of ib-qos", words, "asks for mtu_limit 4, service_level 2"]);
    }
    // The partition gone altogether while a live pod uses it is caught too.
    let mut s = State::faithful();
    s.qos.remove(&QOS);
    assert!(!named(&s.verify(), QOS_CHECK).passed);
}

#[test]
fn a_released_guid_left_in_the_default_limited_partition_is_caught() {
    let mut s = State::faithful();
    s.set(GONE, SHARED, Some(seen(SHARED, Membership::Limited, false)));
    let v = s.verify();
    let left = named(&v, "deleted and finished pods left their PKeys and the default limited partition");
    assert!(!left.passed);
    assert!(
        left.detail.contains(&format!("{} of a deleted or finished pod is still a member of 0xe", guid_text(GONE)))
    );
    assert!(!named(&v, "nothing else in the pool range").passed, "and it is a stray of the pool");
}

#[test]
fn a_guid_only_interface_may_be_in_the_default_limited_partition_and_nowhere_else() {
    let mut s = State::faithful();
    s.pods.push(pod("g", &[("ib-guid-only", "ib0", G1 + 0x10)]));
    s.kinds.insert("g".to_owned(), PodKind::GuidOnly);
    s.set(G1 + 0x10, SHARED, Some(seen(SHARED, Membership::Limited, false)));
    assert!(s.verify().passed, "{:#?}", s.verify().checks);
    s.set(G1 + 0x10, A, Some(seen(A, Membership::Full, true)));
    let v = s.verify();
    assert!(!named(&v, "their GUIDs are members of the right PKeys").passed);
}

#[test]
fn from_the_ports_the_membership_bit_is_checked_and_index0_is_not_claimed() {
    let mut s = State::faithful();
    s.source = Source::OpenSm;
    for list in s.memberships.values_mut() {
        for m in list.iter_mut() {
            m.index0 = None;
        }
    }
    let v = s.verify();
    assert!(v.passed, "{:#?}", v.checks);
    let bit = named(&v, "each port's membership bit is full or limited as its NAD says");
    assert_eq!(bit.detail, "3 full (bit set), 1 limited (bit clear, on ib-storage)");
    assert_eq!(named(&v, QOS_CHECK).name, "partitions with QoS carry their NAD's mtu=, rate=, sl= in partitions.conf");
    assert!(named(&v, QOS_CHECK).detail.contains("mtu=5,rate=15,sl=2"));
    s.set(G2, STORAGE, Some(Seen { pkey: STORAGE, membership: Membership::Full, index0: None }));
    assert!(!named(&s.verify(), "each port's membership bit").passed);
}
