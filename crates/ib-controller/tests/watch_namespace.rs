//! `WATCH_NAMESPACE`: a controller restricted to one namespace never touches a pod of another one: no
//! annotation written, no Event, no GUID, no membership, whether the pod was there before the
//! controller started (its first list and a new leader's fresh list) or came later (its watch).

mod common;

use common::{Cluster, IB5, wait_for};
use kube_emulator::Resource;

const RANGE: [(&str, &str); 2] =
    [("GUID_POOL_RANGE_START", "02:00:00:00:00:00:01:00"), ("GUID_POOL_RANGE_END", "02:00:00:00:00:00:01:3f")];

fn resource_version(cluster: &Cluster, ns: &str, name: &str) -> String {
    let pod = cluster.get_pod(ns, name).expect("pod exists");
    pod["metadata"]["resourceVersion"].as_str().expect("resourceVersion").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_other_namespaces_are_never_touched() {
    let cluster = Cluster::start().await;
    for ns in ["mine", "other"] {
        cluster.nad(ns, "ib", IB5);
    }
    // Another tenant's pods, there before the controller: one waiting, one asking for a GUID of the
    // restricted controller's range, one naming a NAD of the watched namespace.
    cluster.pod("other", "victim", "ib");
    cluster.pod(
        "other",
        "requester",
        r#"[{"name":"ib","namespace":"other","cni-args":{"guid":"02:00:00:00:00:00:01:00"}}]"#,
    );
    cluster.pod("other", "cross", "mine/ib");
    let before: Vec<String> =
        ["victim", "requester", "cross"].iter().map(|n| resource_version(&cluster, "other", n)).collect();

    let mut extra = vec![("WATCH_NAMESPACE", "mine")];
    extra.extend(RANGE);
    let first = cluster.controller("a", &extra).await;
    cluster.pod("mine", "p", "ib");
    cluster.wait_configured("mine", "p", 1).await;

    // Later arrivals in both namespaces; the one in the watched namespace is created last, so a
    // controller that saw the other one would have handled it first.
    cluster.pod("other", "late", "ib");
    let late_before = resource_version(&cluster, "other", "late");
    cluster.pod("mine", "q", "ib, ib");
    cluster.wait_configured("mine", "q", 2).await;

    // A new leader reads every pod afresh: its list is restricted too.
    first.shutdown().await;
    let second = cluster.controller("b", &extra).await;
    cluster.pod("mine", "r", "ib");
    cluster.wait_configured("mine", "r", 1).await;
    let ours: std::collections::BTreeSet<String> = ["p", "q", "r"]
        .iter()
        .flat_map(|n| cluster.networks("mine", n).as_array().cloned().unwrap_or_default())
        .map(|e| e["cni-args"]["guid"].as_str().expect("guid").to_owned())
        .collect();
    assert_eq!(ours.len(), 4);
    wait_for("memberships of the watched namespace only", || (cluster.members(5).len() == 4).then_some(())).await;

    for (name, rv) in ["victim", "requester", "cross"].iter().zip(&before).chain([(&"late", &late_before)]) {
        assert_eq!(&resource_version(&cluster, "other", name), rv, "other/{name} was written to");
        assert!(cluster.events_for(name).is_empty(), "Events about other/{name}: {:?}", cluster.events_for(name));
    }
    let (_, events) = cluster.api().list(Resource::Events, Some("other"));
    assert!(events.is_empty(), "Events in the other namespace: {events:?}");
    let members = cluster.members(5);
    assert_eq!(members.len(), 4, "only the watched namespace's GUIDs are members: {members:?}");
    second.shutdown().await;
}
