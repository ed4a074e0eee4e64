//! Membership round trips through UFM: added GUIDs are listed under UFM's own pkey key, removing the last
//! member deletes the partition, and an empty fabric lists nothing.

mod common;

use std::sync::Arc;

use common::{DEADLINE, client, guid, list, pkey, start, within};
use ib_sm::SubnetManager;
use ufm_emulator::UfmConfig;

#[tokio::test]
async fn add_list_remove() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let sm = client(&ufm);

    assert!(list(&sm).await.is_empty(), "a fresh fabric has only the empty management partition");

    let (a, b) = (guid(0x0200000000000000), guid(0x02000ff000ff0009));
    within(sm.add_guids(pkey(5), &[a, b])).await.unwrap();
    within(sm.add_guids(pkey(0xa30), &[a])).await.unwrap();
    let mut listed = list(&sm).await;
    listed.sort();
    assert_eq!(listed, [("0x5".to_owned(), a), ("0x5".to_owned(), b), ("0xa30".to_owned(), a)]);

    within(sm.remove_guids(pkey(5), &[a])).await.unwrap();
    assert_eq!(handle.members(5).len(), 1);
    within(sm.remove_guids(pkey(5), &[b])).await.unwrap();
    assert!(handle.partition(5).is_none(), "removing the last member deletes the partition");
    assert_eq!(list(&sm).await, [("0xa30".to_owned(), a)]);

    // Removing GUIDs that are not members succeeds, as the controller relies on.
    within(sm.remove_guids(pkey(0xa30), &[b])).await.unwrap();
    ufm.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_through_a_shared_trait_object() {
    let ufm = start(UfmConfig::https()).await;
    let sm: Arc<dyn SubnetManager> = Arc::new(client(&ufm));
    let mut tasks = tokio::task::JoinSet::new();
    for p in 1..=16u32 {
        let sm = Arc::clone(&sm);
        tasks.spawn(async move { sm.add_guids(pkey(p), &[guid(u64::from(p))]).await });
    }
    while let Some(done) = tokio::time::timeout(DEADLINE, tasks.join_next()).await.unwrap() {
        done.unwrap().unwrap();
    }
    assert_eq!(list(sm.as_ref()).await.len(), 16);
    assert_eq!(ufm.handle().partitions().len(), 17, "16 partitions plus management");
    ufm.shutdown().await;
}
