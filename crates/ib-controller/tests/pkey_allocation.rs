//! Partitions allocated one per network, against the real controller over HTTP: a NAD that asks gets
//! a key of `PKEY_ALLOCATION_RANGE`, shown on it with a finalizer; the key is held while pods use it,
//! given back after, never given twice (also across a restart), and what a NAD author writes by hand
//! is never taken for an allocation.

mod common;

use std::time::Duration;

use common::{Cluster, wait_for};
use ib_controller::pkey_allocator::{FINALIZER, LEDGER_NAME, PKEY_ANNOTATION, SETTLE};
use ib_sim::fixture::CONTROLLER_NAMESPACE;
use kube_emulator::{Fault, FaultRule, Resource};
use serde_json::{Value, json};

const ASK: &str = r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"own","allocate_pkey":true}"#;

fn range(text: &str) -> [(&str, &str); 1] {
    [("PKEY_ALLOCATION_RANGE", text)]
}

fn get_nad(cluster: &Cluster, ns: &str, name: &str) -> Option<Value> {
    cluster.api().get(Resource::NetworkAttachmentDefinitions, ns, name).map(|n| (*n).clone())
}

fn finalizers(nad: &Value) -> Vec<String> {
    nad["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The ledger as stored: key → holder.
fn ledger(cluster: &Cluster) -> serde_json::Map<String, Value> {
    let Some(map) = cluster.api().get(Resource::ConfigMaps, CONTROLLER_NAMESPACE, LEDGER_NAME) else {
        return serde_json::Map::new();
    };
    map["data"]
        .as_object()
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), serde_json::from_str(v.as_str().unwrap_or("null")).unwrap_or(Value::Null)))
                .collect()
        })
        .unwrap_or_default()
}

/// Events about a NAD: (type, reason, note).
fn nad_events(cluster: &Cluster, ns: &str, name: &str) -> Vec<(String, String, String)> {
    let (_, events) = cluster.api().list(Resource::Events, None);
    events
        .iter()
        .filter(|e| {
            e["regarding"]["kind"] == "NetworkAttachmentDefinition"
                && e["regarding"]["namespace"] == ns
                && e["regarding"]["name"] == name
        })
        .map(|e| {
            let s = |f: &str| e[f].as_str().unwrap_or("").to_owned();
            (s("type"), s("reason"), s("note"))
        })
        .collect()
}

/// The NAD's key as shown, once it has one and the finalizer.
async fn shown_key(cluster: &Cluster, ns: &str, name: &str) -> String {
    wait_for(&format!("{ns}/{name} to show its key"), || {
        let nad = get_nad(cluster, ns, name)?;
        let key = nad["metadata"]["annotations"][PKEY_ANNOTATION].as_str()?.to_owned();
        finalizers(&nad).contains(&FINALIZER.to_owned()).then_some(key)
    })
    .await
}

fn pkey_number(text: &str) -> u16 {
    ib_model::PKey::parse(text).expect("a valid key").get()
}

/// Waits until the allocator has read the ownership records after the request numbered `after`: it
/// reads them only when a key may be given back, so that read proves it has considered the release.
async fn records_read_after(cluster: &Cluster, after: u64) {
    wait_for("the allocator to read the ownership records", || {
        cluster
            .api()
            .requests()
            .iter()
            .any(|r| {
                r.seq > after && r.method == "GET" && r.path.ends_with("/guidblocks") && !r.query.contains("watch")
            })
            .then_some(())
    })
    .await;
}

/// Deletes a NAD and lets the allocator find its key unused, then, SETTLE later, run a pass again: a key
/// found unused is given back only when found unused again SETTLE later, so a key wrongly found unused
/// is gone once this returns.
async fn delete_nad_and_let_a_release_settle(cluster: &Cluster, ns: &str, name: &str) {
    let before = cluster.api().requests().last().map_or(0, |r| r.seq);
    cluster.api().delete(Resource::NetworkAttachmentDefinitions, ns, name).expect("delete NAD");
    records_read_after(cluster, before).await;
    tokio::time::sleep(SETTLE).await;
    let settled = cluster.api().requests().last().map_or(0, |r| r.seq);
    records_read_after(cluster, settled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_holds_its_key_while_its_pod_runs_and_gives_it_back_after() {
    let cluster = Cluster::start().await;
    cluster.nad("tenant-a", "own", ASK);
    let controller = cluster.controller("a", &range("0x1000-0x10ff")).await;
    let key = shown_key(&cluster, "tenant-a", "own").await;
    assert_eq!(key, "0x1000", "the lowest key of the range");
    assert_eq!(ledger(&cluster)[&key]["namespace"], "tenant-a");
    let events = wait_for("the allocation Event", || {
        let e = nad_events(&cluster, "tenant-a", "own");
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(events[0].0, "Normal");
    assert_eq!(events[0].1, "PKeyAllocated");
    assert!(events[0].2.contains("0x1000"), "{events:?}");

    cluster.pod("tenant-a", "p", "own");
    let nets = cluster.wait_configured("tenant-a", "p", 1).await;
    assert_eq!(nets[0]["cni-args"]["pkey"], "0x1000");
    let guid = ib_model::Guid::parse(nets[0]["cni-args"]["guid"].as_str().expect("guid")).expect("valid").to_ufm();
    assert!(cluster.members(0x1000).contains(&guid));
    if common::exec_plugin().is_none() {
        // The exec plugin's protocol carries no partition name.
        assert_eq!(cluster.fabric().partition(0x1000).expect("partition").name, "tenant_a_own");
    }

    // Deleting the NAD while the pod runs: the finalizer holds it, and the key stays allocated.
    delete_nad_and_let_a_release_settle(&cluster, "tenant-a", "own").await;
    let nad = get_nad(&cluster, "tenant-a", "own").expect("the finalizer keeps the NAD");
    assert!(nad["metadata"]["deletionTimestamp"].is_string());
    assert!(finalizers(&nad).contains(&FINALIZER.to_owned()));
    assert!(ledger(&cluster).contains_key("0x1000"));
    assert!(cluster.members(0x1000).contains(&guid));

    // The pod ends: the key is given back, the finalizer removed, the NAD gone.
    cluster.api().delete_with_grace(Resource::Pods, "tenant-a", "p", Some(0)).expect("delete pod");
    wait_for("the NAD to go", || get_nad(&cluster, "tenant-a", "own").is_none().then_some(())).await;
    assert!(ledger(&cluster).is_empty(), "{:?}", ledger(&cluster));
    wait_for("the partition to empty", || cluster.members(0x1000).is_empty().then_some(())).await;
    controller.shutdown().await;
}

/// A pod planned into a key just as its NAD goes, whose ownership record takes longer to write than the
/// allocator waits between its two reads of the records: the key must stay allocated, since the pod
/// joins it once the record is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_not_given_back_while_a_pods_record_is_still_being_written() {
    let cluster = Cluster::start().await;
    cluster.nad("tenant-a", "own", ASK);
    let controller = cluster.controller("a", &range("0x1000-0x10ff")).await;
    let key = shown_key(&cluster, "tenant-a", "own").await;

    // Every write of ownership records hangs: the pod is planned into the key, its record never lands.
    let hang = || FaultRule::new(Fault::Hang { max: Duration::from_secs(600) }).path("*guidblocks*").times(10_000);
    cluster.api().inject_fault(hang().method("PATCH"));
    cluster.api().inject_fault(hang().method("POST"));
    cluster.pod("tenant-a", "p", "own");
    wait_for("the pod's record write to hang", || (cluster.api().hung_requests() > 0).then_some(())).await;

    // The NAD goes: no record names the key, found twice, SETTLE apart, and more.
    delete_nad_and_let_a_release_settle(&cluster, "tenant-a", "own").await;
    // One more pass: it reads the records again while the key is held; a key given back stops them.
    let again = cluster.api().requests().last().map_or(0, |r| r.seq);
    wait_for("another pass of the allocator, or the key given back", || {
        let read = cluster.api().requests().iter().any(|r| {
            r.seq > again && r.method == "GET" && r.path.ends_with("/guidblocks") && !r.query.contains("watch")
        });
        (read || !ledger(&cluster).contains_key(&key)).then_some(())
    })
    .await;
    assert!(ledger(&cluster).contains_key(&key), "given back while a pod is planned into it: {:?}", ledger(&cluster));
    let nad = get_nad(&cluster, "tenant-a", "own").expect("the finalizer keeps the NAD");
    assert!(finalizers(&nad).contains(&FINALIZER.to_owned()));

    // The record lands: the pod is configured in the key it was planned into.
    cluster.api().clear_faults();
    cluster.api().release_hung();
    let nets = cluster.wait_configured("tenant-a", "p", 1).await;
    assert_eq!(nets[0]["cni-args"]["pkey"], key.as_str());
    assert!(ledger(&cluster).contains_key(&key));

    // The pod ends: now the key is given back and the NAD goes.
    cluster.api().delete_with_grace(Resource::Pods, "tenant-a", "p", Some(0)).expect("delete pod");
    wait_for("the NAD to go", || get_nad(&cluster, "tenant-a", "own").is_none().then_some(())).await;
    assert!(ledger(&cluster).is_empty(), "{:?}", ledger(&cluster));
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_networks_never_share_a_key_also_across_a_restart() {
    let cluster = Cluster::start().await;
    // The same name in two namespaces: two networks.
    cluster.nad("a", "x", ASK);
    cluster.nad("c", "x", ASK);
    let first = cluster.controller("a", &range("0x1000-0x10ff")).await;
    let a = shown_key(&cluster, "a", "x").await;
    let c = shown_key(&cluster, "c", "x").await;
    assert_ne!(a, c);
    first.shutdown().await;

    // A network created while no controller runs, sorting between the two: a restart that forgot
    // the ledger would hand out the lowest keys again in name order, moving `c/x` to another key.
    cluster.nad("b", "x", ASK);
    let second = cluster.controller("b", &range("0x1000-0x10ff")).await;
    let b = shown_key(&cluster, "b", "x").await;
    assert!(b != a && b != c, "{a} {b} {c}");
    assert_eq!(shown_key(&cluster, "a", "x").await, a);
    assert_eq!(shown_key(&cluster, "c", "x").await, c);
    assert_eq!(ledger(&cluster).len(), 3);

    cluster.pod("c", "p", "x");
    let nets = cluster.wait_configured("c", "p", 1).await;
    assert_eq!(nets[0]["cni-args"]["pkey"], c.as_str());
    assert_eq!(cluster.members(pkey_number(&c)).len(), 1);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_range_is_an_event_on_the_nad_and_its_pods_wait() {
    let cluster = Cluster::start().await;
    cluster.nad("first", "n", ASK);
    cluster.nad("second", "n", ASK);
    let controller = cluster.controller("a", &range("0x2000-0x2000")).await;
    assert_eq!(shown_key(&cluster, "first", "n").await, "0x2000");
    let events = wait_for("the range-full Event", || {
        let e = nad_events(&cluster, "second", "n");
        e.iter().any(|(_, reason, _)| reason == "PKeyRangeExhausted").then_some(e)
    })
    .await;
    for (type_, _, note) in &events {
        assert_eq!(type_, "Warning");
        assert!(note.contains("0x2000-0x2000"), "{note}");
        assert!(!note.contains("first"), "an Event on a tenant's NAD names no other tenant: {note}");
    }
    cluster.pod("second", "p", "n");
    wait_for("the pod's waiting Event", || {
        cluster.events_for("p").iter().any(|(reason, _)| reason == "PartitionNotAllocated").then_some(())
    })
    .await;
    assert!(cluster.networks("second", "p")[0]["cni-args"]["mellanox.infiniband.app"].is_null());
    let nad = get_nad(&cluster, "second", "n").expect("NAD");
    assert!(nad["metadata"]["annotations"][PKEY_ANNOTATION].is_null() && finalizers(&nad).is_empty());
    assert!(cluster.members(0x2000).is_empty());

    // The first network goes: the second gets the key and its pod is configured in it.
    cluster.api().delete(Resource::NetworkAttachmentDefinitions, "first", "n").expect("delete");
    assert_eq!(shown_key(&cluster, "second", "n").await, "0x2000");
    let nets = cluster.wait_configured("second", "p", 1).await;
    assert_eq!(nets[0]["cni-args"]["pkey"], "0x2000");
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_nad_author_writes_by_hand_gets_nothing() {
    let cluster = Cluster::start().await;
    cluster.nad("a-victim", "own", ASK);
    // A NAD naming the victim's future key, with the annotation and the finalizer written by hand.
    let hostile = json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "forged", "namespace": "evil",
                     "annotations": {PKEY_ANNOTATION: "0x1000"}, "finalizers": [FINALIZER]},
        "spec": {"config": r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"f","pkey":"0x1000"}"#}
    });
    let forged = cluster.api().create(Resource::NetworkAttachmentDefinitions, hostile).expect("create");
    let forged_uid = forged["metadata"]["uid"].as_str().expect("uid").to_owned();
    // A NAD that asks, claiming the victim's key in the annotation.
    let claimer = json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "claimer", "namespace": "evil", "annotations": {PKEY_ANNOTATION: "0x1000"}},
        "spec": {"config": ASK}
    });
    cluster.api().create(Resource::NetworkAttachmentDefinitions, claimer).expect("create");
    // A ledger-looking ConfigMap in the tenant's own namespace.
    let holder = json!({"namespace": "evil", "name": "forged", "uid": forged_uid}).to_string();
    let fake = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": LEDGER_NAME, "namespace": "evil"},
        "data": {"0x1000": holder}
    });
    cluster.api().create(Resource::ConfigMaps, fake).expect("create");

    let controller = cluster.controller("a", &range("0x1000-0x10ff")).await;
    let victim = shown_key(&cluster, "a-victim", "own").await;
    assert_eq!(victim, "0x1000");
    let claimed = shown_key(&cluster, "evil", "claimer").await;
    assert_eq!(claimed, "0x1001", "the hand-written annotation is corrected, not honoured");
    wait_for("the forged annotation and finalizer to be removed", || {
        let nad = get_nad(&cluster, "evil", "forged")?;
        (nad["metadata"]["annotations"][PKEY_ANNOTATION].is_null() && finalizers(&nad).is_empty()).then_some(())
    })
    .await;

    cluster.pod("a-victim", "v", "own");
    cluster.pod("evil", "f", "forged");
    cluster.pod("evil", "c", "claimer");
    cluster.wait_configured("a-victim", "v", 1).await;
    let nets = cluster.wait_configured("evil", "c", 1).await;
    assert_eq!(nets[0]["cni-args"]["pkey"], "0x1001");
    wait_for("the forger's pod to be refused", || {
        cluster.events_for("f").iter().any(|(reason, _)| reason == "PartitionReserved").then_some(())
    })
    .await;
    assert_eq!(cluster.members(0x1000).len(), 1, "only the victim is in its partition");
    let stored = ledger(&cluster);
    assert_eq!(stored.len(), 2);
    assert_eq!(stored["0x1000"]["namespace"], "a-victim");
    // The allocation Event on the claimer's NAD names its own key and nothing of the victim.
    let notes = nad_events(&cluster, "evil", "claimer");
    assert!(!notes.is_empty());
    for (_, _, note) in notes {
        assert!(note.contains("partition 0x1001 ") && !note.contains("victim"), "{note}");
    }
    controller.shutdown().await;
}
