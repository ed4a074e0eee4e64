//! The in-process control handle: seeding shows up on the wire, clearing resets to the
//! management partition, waiting wakes on changes, and concurrent clients all land.

mod common;

use std::collections::BTreeMap;

use common::{DEADLINE, client, go_request, start};
use reqwest::Method;
use serde_json::Value;
use ufm_emulator::{Endpoint, Guid, Member, Membership, Partition, Qos, UfmConfig};

#[tokio::test]
async fn seeded_state_is_served_and_clear_resets() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let mut partition = Partition::new(0x40);
    partition.name = "seeded".into();
    partition.qos = Qos { mtu_limit: 4, service_level: 1, rate_limit: 100.0 };
    partition.members.insert(
        Guid::from(0x0200000000000040),
        Member { membership: Membership::Limited, index0: false, ip_over_ib: false },
    );
    handle.seed_partition(0x40, partition.clone());
    assert_eq!(handle.partition(0x40), Some(partition));

    let (s, body) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/0x40?guids_data=true", None).await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["partition"], "seeded");
    assert_eq!(v["guids"][0]["membership"], "limited");

    handle.clear_state();
    assert_eq!(handle.partitions().keys().copied().collect::<Vec<_>>(), vec![0x7fff]);
    handle.clear_requests();
    assert!(handle.requests().is_empty());
    assert_eq!(handle.count(Endpoint::GetPkey), 0);
    ufm.shutdown().await;
}

#[tokio::test]
async fn wait_until_wakes_on_a_change_and_concurrent_adds_all_land() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);

    let waiter = {
        let handle = handle.clone();
        tokio::spawn(async move {
            handle.wait_until(DEADLINE, |fabric, _| fabric.get(0x9).is_some_and(|p| p.members.len() == 16)).await
        })
    };

    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let (c, base) = (c.clone(), ufm.base_url());
        tasks.push(tokio::spawn(async move {
            let body = format!(
                r#"{{"pkey": "0x0009", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["{:016x}"]}}"#,
                0x0200000000000100u64 + i
            );
            c.post(format!("{base}/ufmRest/resources/pkeys"))
                .basic_auth(common::USER, Some(common::PASSWORD))
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 200);
    }
    assert!(waiter.await.unwrap(), "waiter saw all 16 members");
    assert!(handle.wait_for_count(Endpoint::AddGuids, 16, DEADLINE).await);
    assert_eq!(handle.count(Endpoint::AddGuids), 16);

    let seqs: Vec<u64> = handle.requests().iter().map(|r| r.seq).collect();
    let mut unique = seqs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seqs.len(), "sequence numbers are unique");

    let by_guid: BTreeMap<Guid, Vec<u16>> = handle.guid_pkeys();
    assert_eq!(by_guid.len(), 16);
    assert!(by_guid.values().all(|p| p == &vec![0x9]));
    ufm.shutdown().await;
}

#[tokio::test]
async fn wait_until_reports_a_condition_that_never_holds() {
    let ufm = start(UfmConfig::http()).await;
    let held = ufm.handle().wait_until(std::time::Duration::from_millis(10), |fabric, _| fabric.get(1).is_some()).await;
    assert!(!held);
    ufm.shutdown().await;
}
