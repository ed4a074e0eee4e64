//! Partition options through UFM: the add carries membership, `index0` and `ip_over_ib`; QoS is set
//! through `qos_conf` when asked for, and comes back after UFM deleted and recreated the partition;
//! `last_updated` advances with every change.

mod common;

use common::{client, guid, pkey, start, within};
use ib_model::partition::{Membership, MtuLimit, PartitionOptions, Qos, RateLimit};
use ib_sm::{SmError, SubnetManager};
use ufm_emulator::Membership as UfmMembership;
use ufm_emulator::UfmConfig;

fn qos(mtu: MtuLimit, sl: u8, gbps: f64) -> Qos {
    Qos { mtu_limit: mtu, service_level: sl, rate_limit: RateLimit::from_gbps(gbps).unwrap() }
}

#[tokio::test]
async fn limited_membership_without_index0_or_ipoib_is_stored_per_guid() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let sm = client(&ufm);
    let (a, b) = (guid(0x0200000000000001), guid(0x0200000000000002));
    let limited = PartitionOptions { membership: Membership::Limited, index0: false, ip_over_ib: false, qos: None };
    within(sm.add_guids_with(pkey(5), &[a], &limited)).await.unwrap();
    within(sm.add_guids_with(pkey(5), &[b], &PartitionOptions::default())).await.unwrap();
    let members = handle.members(5);
    let to_emulator = |g: ib_model::Guid| ufm_emulator::Guid::from(g.as_u64());
    let (ma, mb) = (members[&to_emulator(a)], members[&to_emulator(b)]);
    assert_eq!((ma.membership, ma.index0), (UfmMembership::Limited, false));
    assert_eq!((mb.membership, mb.index0), (UfmMembership::Full, true));
    // Nothing asked for QoS: no qos_conf call, the partition has UFM's default.
    assert_eq!(handle.count(ufm_emulator::Endpoint::SetQos), 0);
    assert_eq!(handle.partition(5).unwrap().qos, ufm_emulator::Qos::default());
    // The default options send exactly the Go plugin's body.
    let bodies: Vec<String> =
        handle.requests_to(ufm_emulator::Endpoint::AddGuids).into_iter().map(|r| r.body).collect();
    assert_eq!(
        bodies[1],
        r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000002"]}"#
    );
    assert!(
        bodies[0].contains(r#""membership": "limited""#) && bodies[0].contains(r#""index0": false"#),
        "{}",
        bodies[0]
    );
    ufm.shutdown().await;
}

#[tokio::test]
async fn qos_is_set_with_the_add_and_again_after_the_partition_was_recreated() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let sm = client(&ufm);
    let a = guid(0x0200000000000001);
    let options = PartitionOptions { qos: Some(qos(MtuLimit::Mtu4K, 3, 200.0)), ..PartitionOptions::default() };
    within(sm.add_guids_with(pkey(0x31a), &[a], &options)).await.unwrap();
    let stored = handle.partition(0x31a).unwrap().qos;
    assert_eq!((stored.mtu_limit, stored.service_level, stored.rate_limit), (4, 3, 200.0));

    // The last member leaves: UFM deletes the partition and its QoS with it.
    within(sm.remove_guids(pkey(0x31a), &[a])).await.unwrap();
    assert!(handle.partition(0x31a).is_none());
    // A plain add recreates it with UFM's default QoS: what the caller must repair...
    within(sm.add_guids(pkey(0x31a), &[a])).await.unwrap();
    assert_eq!(handle.partition(0x31a).unwrap().qos, ufm_emulator::Qos::default());
    // ...by adding with QoS, or by setting it on its own.
    within(sm.set_qos(pkey(0x31a), qos(MtuLimit::Mtu2K, 15, 2.5))).await.unwrap();
    let stored = handle.partition(0x31a).unwrap().qos;
    assert_eq!((stored.mtu_limit, stored.service_level, stored.rate_limit), (2, 15, 2.5));
    within(sm.remove_guids(pkey(0x31a), &[a])).await.unwrap();
    within(sm.add_guids_with(pkey(0x31a), &[a], &options)).await.unwrap();
    assert_eq!(handle.partition(0x31a).unwrap().qos.rate_limit, 200.0);
    ufm.shutdown().await;
}

#[tokio::test]
async fn qos_on_a_missing_partition_is_a_refusal_naming_the_call() {
    let ufm = start(UfmConfig::http()).await;
    let sm = client(&ufm);
    let err = within(sm.set_qos(pkey(9), Qos::default())).await.unwrap_err();
    assert!(matches!(err, SmError::Status { status: 404, .. }), "{err:?}");
    assert!(err.to_string().contains("PUT /ufmRest/resources/pkeys/qos_conf (pkey 0x0009)"), "{err}");
    assert!(!err.outcome_unknown());
    ufm.shutdown().await;
}

#[tokio::test]
async fn last_updated_advances_with_changes() {
    let ufm = start(UfmConfig::http()).await;
    let sm = client(&ufm);
    assert_eq!(within(sm.last_updated()).await.unwrap(), None, "nothing changed yet");
    within(sm.add_guids(pkey(5), &[guid(1)])).await.unwrap();
    let first = within(sm.last_updated()).await.unwrap().expect("a change was applied");
    assert!(first.contains("UTC"), "the emulator's default is the older UFM format: {first}");
    ufm.shutdown().await;
}

/// The built-in managers that hold nothing, and a manager without options support, behave as said.
#[tokio::test]
async fn default_options_are_the_plain_add_everywhere() {
    let noop = ib_sm::Noop;
    let limited = PartitionOptions { membership: Membership::Limited, ..PartitionOptions::default() };
    noop.add_guids_with(pkey(5), &[guid(1)], &limited).await.unwrap();
    assert_eq!(noop.last_updated().await.unwrap(), None);
}
