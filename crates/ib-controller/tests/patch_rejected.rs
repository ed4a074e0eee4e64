//! A pod patch the API server refuses with 422 every time (an admission policy's denial, the annotation
//! size limit) is a failure: retried with backoff and reported on the pod, never a tight GET+PATCH loop.
//! A 422 for a patch planned on an older version of the pod is still a conflict: planned again at once.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, DEADLINE, IB5, wait_for};
use kube_emulator::{Fault, FaultRule, Resource};

const DENIAL: &str = "admission webhook \"deny-ib.example.com\" denied the request: InfiniBand annotations are frozen";

/// PATCH and GET requests the API server received for one pod.
fn requests_for(cluster: &Cluster, ns: &str, name: &str) -> (usize, usize) {
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
    let requests = cluster.api().requests();
    let on_pod = requests.iter().filter(|r| r.path == path);
    let patches = on_pod.clone().filter(|r| r.method == "PATCH").count();
    let gets = on_pod.filter(|r| r.method == "GET").count();
    (patches, gets)
}

/// Warning Events with reason `PatchFailed` on the pod: their notes.
fn patch_failed_events(cluster: &Cluster, name: &str) -> Vec<String> {
    let (_, events) = cluster.api().list(Resource::Events, None);
    events
        .iter()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == "PatchFailed" && e["type"] == "Warning")
        .map(|e| e["note"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Polls until `check` holds or the deadline passes; `false` on the deadline (the caller asserts, so
/// that the failure message can say what was seen).
async fn poll(mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_refused_every_time_backs_off_and_is_reported() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    // Retries back off 250 ms, 500 ms, 1 s, 2 s, then every 4 s.
    let controller = cluster.controller("a", &[("DAEMON_PERIODIC_UPDATE", "4")]).await;
    // Another pod is configured first: the controller works, and only the refused pod is stuck.
    cluster.pod("default", "other", "ib");
    cluster.wait_configured("default", "other", 1).await;

    cluster.api().inject_fault(
        FaultRule::new(Fault::Unprocessable(DENIAL.into()))
            .method("PATCH")
            .path("/api/v1/namespaces/default/pods/refused")
            .times(1_000_000),
    );
    cluster.pod("default", "refused", "ib");

    // Without backoff the controller re-reads and patches back to back: hundreds of patches before any
    // Event. Either way this wait ends; the assertions then say which it was.
    let reported = poll(|| {
        !patch_failed_events(&cluster, "refused").is_empty() || requests_for(&cluster, "default", "refused").0 > 100
    })
    .await;
    let (patches_at_event, gets_at_event) = requests_for(&cluster, "default", "refused");
    let events = patch_failed_events(&cluster, "refused");
    assert!(
        reported && !events.is_empty(),
        "no PatchFailed Warning Event on the refused pod after {patches_at_event} patches and {gets_at_event} reads"
    );
    assert!(patches_at_event <= 3, "{patches_at_event} patches before the first PatchFailed Event");
    let note = &events[0];
    assert!(note.contains("422") && note.contains("deny-ib.example.com"), "the Event names the refusal: {note}");

    // Two more refused attempts: retries, each after a longer wait. Counting requests rather than
    // measuring time: a loop without backoff sends far more than this many in any window.
    let retried = poll(|| requests_for(&cluster, "default", "refused").0 >= patches_at_event + 2).await;
    let (patches, gets) = requests_for(&cluster, "default", "refused");
    assert!(retried, "the refused patch was never retried ({patches} patches)");
    assert!(patches < 20, "{patches} patches by the second retry after the Event: no backoff");
    assert!(gets <= patches + 2, "{gets} reads for {patches} patches");
    println!(
        "PatchFailed Events so far: {}; patches {patches}, reads {gets}",
        patch_failed_events(&cluster, "refused").len()
    );
    // The other pod kept its configuration.
    assert_eq!(cluster.networks("default", "other")[0]["cni-args"]["mellanox.infiniband.app"], "configured");

    // The policy is lifted: the next retry goes through.
    cluster.api().clear_faults();
    cluster.wait_configured("default", "refused", 1).await;
    cluster.wait_converged().await;
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_an_older_version_is_a_conflict() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let controller = cluster.controller("a", &[("DAEMON_PERIODIC_UPDATE", "4")]).await;
    let path = "/api/v1/namespaces/default/pods/changing";
    cluster.api().inject_fault(FaultRule::new(Fault::Unprocessable(DENIAL.into())).method("PATCH").path(path).times(1));
    // The re-read after the refusal is held until the pod has changed.
    cluster.api().inject_fault(FaultRule::new(Fault::Hang { max: DEADLINE }).method("GET").path(path).times(1));
    cluster.pod("default", "changing", "ib");
    wait_for("the re-read after the refusal to be held", || (cluster.api().hung_requests() == 1).then_some(())).await;
    cluster
        .api()
        .mutate(Resource::Pods, "default", "changing", |p| {
            p["metadata"]["labels"] = serde_json::json!({"edited": "yes"})
        })
        .expect("edit the pod");
    cluster.api().release_hung();

    cluster.wait_configured("default", "changing", 1).await;
    assert!(
        patch_failed_events(&cluster, "changing").is_empty(),
        "a refusal of an older version is not reported as a failure"
    );
    let (patches, _) = requests_for(&cluster, "default", "changing");
    assert_eq!(patches, 2, "one refused patch, one on the new version");
    controller.shutdown().await;
}
