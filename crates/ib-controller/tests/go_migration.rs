//! Taking over a cluster the Go daemon ran, and handing it back. The fixtures in `fixtures/go-daemon/`
//! hold what the Go daemon left behind in a real run (docs/migration.md says how they were captured):
//! its NADs, each pod's networks annotation byte for byte as it wrote it, and the exact bodies of its
//! UFM add requests. This controller takes over such a cluster, configures new pods, and stops (the
//! hand-back): no annotation it did not write changes, no membership is added or removed but the new
//! pods', no GUID moves, and what it writes for new pods reads as the Go daemon's own would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{Cluster, wait_for};
use kube_emulator::Resource;
use serde::Deserialize;
use serde_json::{Value, json};
use ufm_emulator::{Endpoint, Member, Membership};

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const CONFIGURED: &str = "mellanox.infiniband.app";

#[derive(Debug, Deserialize)]
struct Fixture {
    /// Which Go daemon wrote it, and how.
    captured_from: String,
    nads: Vec<Nad>,
    pods: Vec<Pod>,
    /// The bodies of the Go daemon's `POST /ufmRest/resources/pkeys` requests, in order.
    ufm_add_requests: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Nad {
    namespace: String,
    name: String,
    config: String,
}

#[derive(Debug, Deserialize)]
struct Pod {
    namespace: String,
    name: String,
    /// The networks annotation exactly as the Go daemon left it.
    networks: String,
}

fn fixtures() -> Vec<(PathBuf, Fixture)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go-daemon");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no fixtures in {}", dir.display());
    found
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let fixture = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, fixture)
        })
        .collect()
}

/// A cluster as the Go daemon left it: its NADs, its pods with their annotations, its memberships.
async fn go_cluster(fixture: &Fixture) -> Cluster {
    let cluster = Cluster::start().await;
    for nad in &fixture.nads {
        cluster.nad(&nad.namespace, &nad.name, &nad.config);
    }
    for (i, pod) in fixture.pods.iter().enumerate() {
        let object = go_pod(&pod.namespace, &pod.name, &format!("node-{i}"), &pod.networks);
        cluster.api().create(Resource::Pods, object).expect("create pod");
    }
    seed_fabric(&cluster, &fixture.ufm_add_requests);
    cluster
}

/// Replays the Go daemon's add requests into the fabric, with the attributes each carried.
fn seed_fabric(cluster: &Cluster, bodies: &[String]) {
    for body in bodies {
        let body: Value = serde_json::from_str(body).expect("a Go add request is JSON");
        let pkey = u16::from_str_radix(body["pkey"].as_str().expect("pkey").trim_start_matches("0x"), 16).unwrap();
        let member = Member {
            membership: body["membership"].as_str().expect("membership").parse::<Membership>().expect("membership"),
            index0: body["index0"].as_bool().expect("index0"),
            ip_over_ib: body["ip_over_ib"].as_bool().expect("ip_over_ib"),
        };
        let guids = body["guids"].as_array().expect("guids");
        cluster.fabric().seed_members(
            pkey,
            guids.iter().map(|g| (g.as_str().expect("guid").parse::<ufm_emulator::Guid>().expect("guid"), member)),
        );
    }
}

fn elements(networks: &str) -> Vec<Value> {
    serde_json::from_str(networks).unwrap_or_else(|e| panic!("{networks}: {e}"))
}

/// A pod as the Go daemon left it: Running once all its InfiniBand elements were configured, Pending
/// while one was not (ib-sriov-cni keeps failing the sandbox until it is).
fn go_pod(ns: &str, name: &str, node: &str, networks: &str) -> Value {
    let phase = if elements(networks).iter().all(|e| go_reads(e).is_some()) { "Running" } else { "Pending" };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "annotations": {NETWORKS: networks}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase}
    })
}

fn annotation(cluster: &Cluster, ns: &str, name: &str) -> String {
    let pod = cluster.get_pod(ns, name).unwrap_or_else(|| panic!("{ns}/{name} exists"));
    pod["metadata"]["annotations"][NETWORKS].as_str().unwrap_or_default().to_owned()
}

/// Every partition member of the fabric with its attributes.
fn fabric_members(cluster: &Cluster) -> BTreeMap<(u16, String), Member> {
    cluster
        .fabric()
        .partitions()
        .into_iter()
        .flat_map(|(pkey, p)| p.members.into_iter().map(move |(g, m)| ((pkey, g.to_string()), m)))
        .collect()
}

fn removals(cluster: &Cluster) -> Vec<String> {
    cluster
        .fabric()
        .requests()
        .into_iter()
        .filter(|r| matches!(r.endpoint, Endpoint::RemoveGuidsAction | Endpoint::DeleteGuids | Endpoint::DeletePkey))
        .map(|r| format!("{} {}", r.path, r.body))
        .collect()
}

/// How the Go daemon reads an element at its start (`initGUIDPool`): configured marker, GUID from
/// `infiniband-guid` or `cni-args.guid`; the pkey from `cni-args.pkey` (empty when missing).
fn go_reads(element: &Value) -> Option<(String, String)> {
    if element["cni-args"][CONFIGURED] != "configured" {
        return None;
    }
    let guid = element["infiniband-guid"]
        .as_str()
        .filter(|g| !g.is_empty())
        .or_else(|| element["cni-args"]["guid"].as_str())?
        .to_lowercase();
    let pkey = element["cni-args"]["pkey"].as_str().unwrap_or_default().to_owned();
    Some((guid, pkey))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_cluster_taken_over_and_handed_back_keeps_every_pod_as_it_was() {
    for (path, fixture) in fixtures() {
        let what = format!("{} ({})", path.display(), fixture.captured_from);
        let cluster = go_cluster(&fixture).await;
        let members_before = fabric_members(&cluster);
        assert!(!members_before.is_empty(), "{what}: the fixture's add requests seed members");
        let configured = fixture
            .pods
            .iter()
            .flat_map(|p| serde_json::from_str::<Vec<Value>>(&p.networks).expect("a Go annotation is a JSON list"))
            .filter_map(|e| go_reads(&e))
            .count();
        assert!(configured > 0, "{what}: the fixture has configured elements");

        // Take over.
        let controller = cluster.controller("rust-replica", &[]).await;
        // One new pod per NAD of the fixture: configured by this controller.
        let mut new_pods = Vec::new();
        for (i, nad) in fixture.nads.iter().enumerate() {
            let name = format!("after-takeover-{i}");
            cluster.pod(&nad.namespace, &name, &format!(r#"[{{"name":"{}","interface":"net1"}}]"#, nad.name));
            cluster.wait_configured(&nad.namespace, &name, 1).await;
            new_pods.push((nad.namespace.clone(), name));
        }
        // What the Go daemon left unconfigured in its own pods is configured too.
        for pod in &fixture.pods {
            cluster.wait_configured(&pod.namespace, &pod.name, elements(&pod.networks).len()).await;
        }
        // The import is done once a record exists; let one resync pass run as well, so that drift
        // repair has had its chance to touch what it should not.
        wait_for("ownership records", || (!cluster.api().list(Resource::GuidBlocks, None).1.is_empty()).then_some(()))
            .await;

        let check = |when: &str| {
            for pod in &fixture.pods {
                let now = annotation(&cluster, &pod.namespace, &pod.name);
                let before = elements(&pod.networks);
                if before.iter().all(|e| go_reads(e).is_some()) {
                    assert_eq!(
                        now, pod.networks,
                        "{what}: {when}: the annotation of {}/{} changed",
                        pod.namespace, pod.name
                    );
                    continue;
                }
                // A pod the Go daemon left partly configured: what it configured stays as it wrote it, and
                // the rest is configured now.
                let now = elements(&now);
                assert_eq!(now.len(), before.len(), "{what}: {when}: {}/{}", pod.namespace, pod.name);
                for (b, n) in before.iter().zip(&now) {
                    if go_reads(b).is_some() {
                        assert_eq!(
                            n, b,
                            "{what}: {when}: {}/{}: a Go-configured element changed",
                            pod.namespace, pod.name
                        );
                    } else {
                        assert!(
                            go_reads(n).is_some(),
                            "{what}: {when}: {}/{}: {n} left unconfigured",
                            pod.namespace,
                            pod.name
                        );
                    }
                }
            }
            let members = fabric_members(&cluster);
            for (key, member) in &members_before {
                assert_eq!(members.get(key), Some(member), "{what}: {when}: membership {key:?} was removed or changed");
            }
            assert!(removals(&cluster).is_empty(), "{what}: {when}: removals sent: {:?}", removals(&cluster));
            members
        };
        let members = check("after the takeover");
        // The only additions are the GUIDs of what was not configured before (new pods, elements the Go
        // daemon left unconfigured), each in its NAD's partition, none a GUID the Go daemon gave out.
        let added: BTreeSet<(u16, String)> =
            members.keys().filter(|k| !members_before.contains_key(*k)).cloned().collect();
        let old_guids: BTreeSet<&str> = members_before.keys().map(|(_, g)| g.as_str()).collect();
        let mut expected = BTreeSet::new();
        let fixture_pods = fixture.pods.iter().map(|p| (p.namespace.clone(), p.name.clone(), Some(&p.networks)));
        let new_ones = new_pods.iter().map(|(ns, name)| (ns.clone(), name.clone(), None));
        for (ns, name, before) in fixture_pods.chain(new_ones) {
            let before: Vec<Value> = before.map(|b| elements(b)).unwrap_or_default();
            for (i, e) in elements(&annotation(&cluster, &ns, &name)).iter().enumerate() {
                if before.get(i).is_some_and(|b| go_reads(b).is_some()) {
                    continue;
                }
                let (guid, pkey) =
                    go_reads(e).unwrap_or_else(|| panic!("{what}: the Go daemon reads {ns}/{name} #{i}: {e}"));
                let ufm_guid = guid.replace(':', "");
                assert!(
                    !old_guids.contains(ufm_guid.as_str()),
                    "{what}: {ns}/{name} got a GUID the Go daemon gave out"
                );
                let pkey = u16::from_str_radix(pkey.trim_start_matches("0x"), 16)
                    .unwrap_or_else(|_| panic!("{what}: {ns}/{name}: the pkey {pkey:?} is one the Go daemon parses"));
                expected.insert((pkey, ufm_guid));
            }
        }
        assert_eq!(added, expected, "{what}: memberships added");

        // Hand back: a graceful stop releases the lease for the Go daemon and writes nothing else.
        controller.shutdown().await;
        let members_at_stop = check("after the stop");
        assert_eq!(members_at_stop, members, "{what}: the stop changed memberships");
        let lease = cluster.api().get(Resource::Leases, "kube-system", "ib-kubernetes-leader").expect("lease");
        let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default();
        assert!(holder.is_empty(), "{what}: the lease is released for the Go daemon, held by {holder:?}");
    }
}

/// A tenant copies a GUID out of a Go-configured pod's annotation into a pod of its own, marker and
/// all, before the takeover: the older pod keeps the GUID, the copy is refused, and nothing the Go
/// daemon configured is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_copy_of_a_go_annotation_steals_nothing_at_the_takeover() {
    let (path, fixture) = fixtures().into_iter().next().expect("a fixture");
    let cluster = go_cluster(&fixture).await;
    let victim = &fixture.pods[0];
    // Creation times have whole seconds: the copy is made in a later second than the victim, so that it
    // is the younger one, as a copy made after the fact is.
    let created = cluster.get_pod(&victim.namespace, &victim.name).expect("victim")["metadata"]["creationTimestamp"]
        .as_str()
        .expect("creationTimestamp")
        .parse::<k8s_openapi::jiff::Timestamp>()
        .expect("RFC 3339");
    wait_for("the next second", || {
        (k8s_openapi::jiff::Timestamp::now().as_second() > created.as_second()).then_some(())
    })
    .await;
    cluster
        .api()
        .create(Resource::Pods, go_pod(&victim.namespace, "forged-copy", "node-99", &victim.networks))
        .expect("create the forged pod");
    let members_before = fabric_members(&cluster);

    let _controller = cluster.controller("rust-replica", &[]).await;
    let events = wait_for("an Event for the forged copy", || {
        let events = cluster.events_for("forged-copy");
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert!(events.iter().any(|(reason, _)| reason == "DuplicateGUID"), "{}: events {events:?}", path.display());
    assert_eq!(annotation(&cluster, &victim.namespace, &victim.name), victim.networks);
    assert_eq!(fabric_members(&cluster), members_before, "{}: memberships changed", path.display());
    assert!(removals(&cluster).is_empty());
}
