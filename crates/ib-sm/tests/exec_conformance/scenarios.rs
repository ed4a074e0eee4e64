//! The subnet-manager conformance scenarios: what every `SubnetManager` must do, whether built in or an
//! exec plugin. Shared as a file by `crates/ib-sm/tests/exec_conformance` (built-ins, the documented
//! example plugin) and by `plugins/*/tests/conformance.rs` (the plugin executables, which only those
//! crates can locate through `CARGO_BIN_EXE_<name>`).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ib_model::{Guid, PKey};
use ib_sm::{SmError, SubnetManager};

/// Generous: the suite must pass on a loaded two-core machine; each call is one process for plugins.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// What the manager under test keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// Memberships are kept and listed (UFM, the example plugin).
    Memberships,
    /// Nothing is kept; every change succeeds and LIST is empty (noop).
    Nothing,
}

pub fn pkey(value: u32) -> PKey {
    PKey::new(value).expect("valid pkey")
}

pub fn guid(value: u64) -> Guid {
    Guid::from_u64(value)
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not end within {DEADLINE:?}"),
    }
}

/// The GUIDs listed as members of `pkey`, whatever spelling the manager uses for partitions.
pub async fn members(sm: &dyn SubnetManager, pkey: PKey) -> BTreeSet<Guid> {
    let listed = within("LIST", sm.list_guids()).await.unwrap_or_else(|e| panic!("{}: list: {e}", sm.name()));
    // The controller reads the listing partition by partition: the same memberships, each once.
    let grouped = within("LIST", sm.list_partitions()).await.unwrap_or_else(|e| panic!("{}: list: {e}", sm.name()));
    let (mut a, mut b) = (grouped.into_pairs(), listed.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b, "{}: list_partitions lists other memberships than list_guids", sm.name());
    listed
        .into_iter()
        .filter(|(p, _)| ib_model::pkey::parse_number(p) == Some(u32::from(pkey.get())))
        .map(|(_, g)| g)
        .collect()
}

async fn ok(sm: &dyn SubnetManager, what: &str, f: impl Future<Output = Result<(), SmError>>) {
    within(what, f).await.unwrap_or_else(|e| panic!("{}: {what}: {e}", sm.name()));
}

/// Runs every scenario against `sm`. Each scenario uses its own partitions, and GUIDs no other
/// scenario uses, so the order does not matter and a fabric shared with other data is fine.
pub async fn run_all(sm: Arc<dyn SubnetManager>, holds: Holds) {
    validate(sm.as_ref()).await;
    add_list_remove(sm.as_ref(), holds).await;
    idempotent_and_duplicates(sm.as_ref(), holds).await;
    remove_non_members(sm.as_ref(), holds).await;
    partitions_are_separate(sm.as_ref(), holds).await;
    large_batch(sm.as_ref(), holds).await;
    concurrent_calls(Arc::clone(&sm), holds).await;
}

/// VALIDATE succeeds against a working manager.
pub async fn validate(sm: &dyn SubnetManager) {
    ok(sm, "validate", sm.validate()).await;
    assert!(!sm.name().is_empty());
}

/// Added GUIDs are listed under their partition; removed ones are not.
pub async fn add_list_remove(sm: &dyn SubnetManager, holds: Holds) {
    let p = pkey(0x11);
    let (a, b) = (guid(0x0200_0000_0000_1101), guid(0x0200_0ff0_00ff_1102));
    ok(sm, "add", sm.add_guids(p, &[a, b])).await;
    let expected = match holds {
        Holds::Memberships => BTreeSet::from([a, b]),
        Holds::Nothing => BTreeSet::new(),
    };
    assert_eq!(members(sm, p).await, expected, "{}: after add", sm.name());
    ok(sm, "remove", sm.remove_guids(p, &[a])).await;
    let expected = match holds {
        Holds::Memberships => BTreeSet::from([b]),
        Holds::Nothing => BTreeSet::new(),
    };
    assert_eq!(members(sm, p).await, expected, "{}: after removing one", sm.name());
    ok(sm, "remove", sm.remove_guids(p, &[b])).await;
    assert!(members(sm, p).await.is_empty(), "{}: after removing all", sm.name());
}

/// Adding twice, or with duplicates in one call, is harmless and lists each GUID once.
pub async fn idempotent_and_duplicates(sm: &dyn SubnetManager, holds: Holds) {
    let p = pkey(0x12);
    let (a, b) = (guid(0x0200_0000_0000_1201), guid(0x0200_0000_0000_1202));
    ok(sm, "add with duplicates", sm.add_guids(p, &[a, a, b])).await;
    ok(sm, "add again", sm.add_guids(p, &[a, b])).await;
    let listed = within("LIST", sm.list_guids()).await.unwrap_or_else(|e| panic!("{}: list: {e}", sm.name()));
    let in_p: Vec<Guid> = listed
        .into_iter()
        .filter(|(name, _)| ib_model::pkey::parse_number(name) == Some(0x12))
        .map(|(_, g)| g)
        .collect();
    let expected = if holds == Holds::Memberships { 2 } else { 0 };
    assert_eq!(in_p.len(), expected, "{}: each member listed once: {in_p:?}", sm.name());
    ok(sm, "remove with duplicates", sm.remove_guids(p, &[a, b, b])).await;
    assert!(members(sm, p).await.is_empty());
}

/// Removing GUIDs that are not members (of an existing or an unknown partition) succeeds: the
/// controller removes GUIDs it has just allocated, to be sure.
pub async fn remove_non_members(sm: &dyn SubnetManager, holds: Holds) {
    let p = pkey(0x13);
    let (a, stranger) = (guid(0x0200_0000_0000_1301), guid(0x0200_0000_0000_13ff));
    ok(sm, "remove from an unknown partition", sm.remove_guids(pkey(0x7ffe), &[stranger])).await;
    ok(sm, "add", sm.add_guids(p, &[a])).await;
    ok(sm, "remove a non-member", sm.remove_guids(p, &[stranger])).await;
    let expected = if holds == Holds::Memberships { BTreeSet::from([a]) } else { BTreeSet::new() };
    assert_eq!(members(sm, p).await, expected, "{}: the member stays", sm.name());
    ok(sm, "remove", sm.remove_guids(p, &[a])).await;
}

/// A GUID may be a member of several partitions; removing it from one leaves the others.
pub async fn partitions_are_separate(sm: &dyn SubnetManager, holds: Holds) {
    let (p, q) = (pkey(0x14), pkey(0xa30));
    let a = guid(0x0200_0000_0000_1401);
    ok(sm, "add p", sm.add_guids(p, &[a])).await;
    ok(sm, "add q", sm.add_guids(q, &[a])).await;
    ok(sm, "remove p", sm.remove_guids(p, &[a])).await;
    assert!(members(sm, p).await.is_empty());
    let expected = if holds == Holds::Memberships { BTreeSet::from([a]) } else { BTreeSet::new() };
    assert_eq!(members(sm, q).await, expected, "{}: still in 0xa30", sm.name());
    ok(sm, "remove q", sm.remove_guids(q, &[a])).await;
}

/// A batch as large as a big group commit goes through in one call (for plugins: a large stdin and a
/// large LIST on stdout).
pub async fn large_batch(sm: &dyn SubnetManager, holds: Holds) {
    let p = pkey(0x15);
    let batch: Vec<Guid> = (0..2000u64).map(|i| guid(0x0215_0000_0000_0000 + i)).collect();
    ok(sm, "add a large batch", sm.add_guids(p, &batch)).await;
    let listed = members(sm, p).await;
    let expected = if holds == Holds::Memberships { batch.len() } else { 0 };
    assert_eq!(listed.len(), expected, "{}: large batch listed", sm.name());
    ok(sm, "remove a large batch", sm.remove_guids(p, &batch)).await;
    assert!(members(sm, p).await.is_empty());
}

/// Calls from many tasks at once through one shared trait object, as the controller makes them.
pub async fn concurrent_calls(sm: Arc<dyn SubnetManager>, holds: Holds) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12u32 {
        let sm = Arc::clone(&sm);
        tasks.spawn(async move { sm.add_guids(pkey(0x100 + i), &[guid(0x0216_0000_0000_0000 + u64::from(i))]).await });
    }
    while let Some(done) = within("concurrent adds", tasks.join_next()).await {
        done.expect("task").unwrap_or_else(|e| panic!("concurrent add: {e}"));
    }
    for i in 0..12u32 {
        let expected = if holds == Holds::Memberships {
            BTreeSet::from([guid(0x0216_0000_0000_0000 + u64::from(i))])
        } else {
            BTreeSet::new()
        };
        assert_eq!(members(sm.as_ref(), pkey(0x100 + i)).await, expected);
        ok(sm.as_ref(), "remove", sm.remove_guids(pkey(0x100 + i), &[guid(0x0216_0000_0000_0000 + u64::from(i))]))
            .await;
    }
}

/// Against a manager that cannot be reached, every call fails (with some error, never a hang or panic).
pub async fn unreachable(sm: &dyn SubnetManager) -> Vec<SmError> {
    let mut errors = Vec::new();
    errors.push(within("validate", sm.validate()).await.expect_err("validate fails"));
    errors.push(within("add", sm.add_guids(pkey(0x16), &[guid(0x0200_0000_0000_1601)])).await.expect_err("add fails"));
    errors.push(within("remove", sm.remove_guids(pkey(0x16), &[guid(1)])).await.expect_err("remove fails"));
    errors.push(within("list", sm.list_guids()).await.expect_err("list fails"));
    errors
}
