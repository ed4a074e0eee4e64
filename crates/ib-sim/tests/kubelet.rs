//! The simulated kubelet starts a pod exactly when ib-sriov-cni would let its sandbox come up.

mod common;

use std::time::Duration;

use common::{DEADLINE, IB_RUNTIME, IB5, MACVLAN, MGMT, eventually, nad, phase, pod, set_networks};
use ib_sim::kubelet::{Kubelet, KubeletError, KubeletOptions, PodOutcome, WaitReason};
use kube_emulator::{EmulatorConfig, KubeEmulator, Resource};
use serde_json::json;

const NS: &str = "team";

#[tokio::test]
async fn ib_pod_runs_only_once_configured_with_a_guid() {
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.unwrap();
    let api = kube.handle();
    nad(&api, NS, "ib5", IB5);
    let kubelet = Kubelet::start(api.clone());

    pod(&api, NS, "trainer", Some("ib5"), Some("node-1"));
    eventually("trainer held", || kubelet.waiting_reason(NS, "trainer").is_some()).await;
    assert!(matches!(kubelet.waiting_reason(NS, "trainer"), Some(WaitReason::NotConfigured { .. })));
    assert_eq!(phase(&api, NS, "trainer"), "Pending");

    // Configured but without a GUID: ib-sriov-cni still refuses a VF.
    set_networks(&api, NS, "trainer", r#"[{"name":"ib5","cni-args":{"mellanox.infiniband.app":"configured"}}]"#);
    eventually("no-GUID reason", || matches!(kubelet.waiting_reason(NS, "trainer"), Some(WaitReason::NoGuid { .. })))
        .await;
    assert_eq!(phase(&api, NS, "trainer"), "Pending");

    set_networks(
        &api,
        NS,
        "trainer",
        r#"[{"name":"ib5","cni-args":{"guid":"02:00:00:00:00:00:00:01","mellanox.infiniband.app":"configured"}}]"#,
    );
    assert!(kubelet.wait_running(NS, "trainer", DEADLINE).await);
    assert_eq!(phase(&api, NS, "trainer"), "Running");
    let started = kubelet.started_at(NS, "trainer").unwrap();
    let stored = api.get(Resource::Pods, NS, "trainer").unwrap();
    assert_eq!(stored["metadata"]["uid"].as_str(), Some(started.uid.as_str()));
    assert_eq!(stored["status"]["containerStatuses"][0]["ready"], true);
    assert!(kubelet.waiting_reason(NS, "trainer").is_none());
}

#[tokio::test]
async fn runtime_config_guid_counts_only_with_the_capability() {
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.unwrap();
    let api = kube.handle();
    nad(&api, NS, "ib5", IB5);
    nad(&api, NS, "ibrt", IB_RUNTIME);
    let kubelet = Kubelet::start(api.clone());

    // The NAD has no infinibandGUID capability, so libcni would not pass `infiniband-guid`.
    let without = r#"[{"name":"ib5","infiniband-guid":"02:00:00:00:00:00:00:02","cni-args":{"mellanox.infiniband.app":"configured"}}]"#;
    pod(&api, NS, "plain", Some(without), Some("node-1"));
    let with = r#"[{"name":"ibrt","infiniband-guid":"02:00:00:00:00:00:00:03","cni-args":{"mellanox.infiniband.app":"configured"}}]"#;
    pod(&api, NS, "capable", Some(with), Some("node-1"));

    assert!(kubelet.wait_running(NS, "capable", DEADLINE).await);
    eventually("plain held", || matches!(kubelet.waiting_reason(NS, "plain"), Some(WaitReason::NoGuid { .. }))).await;
    assert_eq!(phase(&api, NS, "plain"), "Pending");
}

#[tokio::test]
async fn plain_pods_run_at_once_and_unscheduled_ones_are_scheduled() {
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.unwrap();
    let api = kube.handle();
    // Created before the kubelet starts: picked up from the initial list.
    pod(&api, NS, "early", None, Some("node-1"));
    let kubelet = Kubelet::start(api.clone());
    pod(&api, NS, "web", None, Some("node-1"));
    pod(&api, NS, "unscheduled", None, None);
    let mut other = api.get(Resource::Pods, NS, "web").unwrap().as_ref().clone();
    other["metadata"] = json!({ "name": "custom", "namespace": NS });
    other["spec"] = json!({ "schedulerName": "volcano", "containers": [{ "name": "c", "image": "i" }] });
    api.create(Resource::Pods, other).unwrap();

    assert!(kubelet.wait_running(NS, "early", DEADLINE).await);
    assert!(kubelet.wait_running(NS, "web", DEADLINE).await);
    assert!(kubelet.wait_running(NS, "unscheduled", DEADLINE).await);
    let bound = api.get(Resource::Pods, NS, "unscheduled").unwrap();
    let node = bound["spec"]["nodeName"].as_str().unwrap().to_owned();
    assert!(api.get(Resource::Nodes, "", &node).is_some(), "bound to a registered node, not {node}");
    // Another scheduler's pod is not ours to place.
    assert!(!kubelet.wait_running(NS, "custom", Duration::from_millis(200)).await);
    assert!(api.get(Resource::Pods, NS, "custom").unwrap()["spec"].get("nodeName").is_none());
    assert_eq!(api.list(Resource::Nodes, None).1.len(), 16);
    // Without record_events the kubelet writes no Events.
    assert!(api.list(Resource::CoreEvents, None).1.is_empty());
}

#[tokio::test]
async fn a_pod_no_node_fits_waits_for_one_and_every_step_is_an_event() {
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.unwrap();
    let api = kube.handle();
    let kubelet = Kubelet::start_with(api.clone(), KubeletOptions { record_events: true });
    let mut pinned = json!({
        "metadata": { "name": "pinned", "namespace": NS },
        "spec": { "nodeSelector": { "kubernetes.io/hostname": "node-03" }, "containers": [{ "name": "c", "image": "i" }] }
    });
    api.mutate(Resource::Nodes, "", "node-03", |n| n["spec"]["unschedulable"] = json!(true)).unwrap();
    api.create(Resource::Pods, pinned.take()).unwrap();
    let reasons = |api: &kube_emulator::EmulatorHandle| -> Vec<String> {
        let mut events = api.list(Resource::CoreEvents, Some(NS)).1;
        events.sort_by_key(|e| e["metadata"]["resourceVersion"].as_str().unwrap_or("").parse::<u64>().unwrap_or(0));
        events.iter().map(|e| e["reason"].as_str().unwrap_or("").to_owned()).collect()
    };
    eventually("FailedScheduling", || reasons(&api) == ["FailedScheduling"]).await;
    assert_eq!(phase(&api, NS, "pinned"), "Pending");

    // Uncordoning the node is a node change: the pod is placed there and runs.
    api.mutate(Resource::Nodes, "", "node-03", |n| n["spec"]["unschedulable"] = json!(false)).unwrap();
    assert!(kubelet.wait_running(NS, "pinned", DEADLINE).await);
    assert_eq!(api.get(Resource::Pods, NS, "pinned").unwrap()["spec"]["nodeName"], "node-03");
    eventually("Scheduled and Started", || reasons(&api) == ["FailedScheduling", "Scheduled", "Started"]).await;
    let scheduled = api.list(Resource::Events, Some(NS)).1;
    assert!(
        scheduled.iter().any(|e| e["note"] == "Successfully assigned team/pinned to node-03"),
        "visible through events.k8s.io too: {scheduled:?}"
    );

    // A pod held by its network says why, once.
    pod(&api, NS, "no-nad", Some("missing-net"), None);
    eventually("sandbox failure", || reasons(&api).iter().filter(|r| *r == "FailedCreatePodSandBox").count() == 1)
        .await;
    let events = api.list(Resource::CoreEvents, Some(NS)).1;
    let failure = events.iter().find(|e| e["reason"] == "FailedCreatePodSandBox").unwrap();
    assert!(failure["message"].as_str().unwrap().contains("missing-net"), "{failure}");
    assert_eq!(failure["involvedObject"]["name"], "no-nad");
    assert_eq!(failure["type"], "Warning");
}

#[tokio::test]
async fn a_missing_nad_holds_the_pod_until_it_exists() {
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.unwrap();
    let api = kube.handle();
    let kubelet = Kubelet::start(api.clone());
    pod(&api, NS, "late-net", Some("other/macvlan@net1"), Some("node-1"));
    eventually("held", || matches!(kubelet.waiting_reason(NS, "late-net"), Some(WaitReason::NadMissing { .. }))).await;
    assert_eq!(phase(&api, NS, "late-net"), "Pending");

    // Not an InfiniBand network: nothing more to wait for once Multus finds it.
    nad(&api, "other", "macvlan", MACVLAN);
    assert!(kubelet.wait_running(NS, "late-net", DEADLINE).await);
}

#[tokio::test]
async fn bad_annotations_and_bad_nads_keep_pods_pending() {
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.unwrap();
    let api = kube.handle();
    nad(&api, NS, "mgmt", MGMT);
    let kubelet = Kubelet::start(api.clone());
    pod(&api, NS, "broken-json", Some(r#"[{"name":"ib5""#), Some("node-1"));
    pod(&api, NS, "mgmt-pkey", Some("mgmt"), Some("node-1"));
    eventually("both held", || {
        matches!(kubelet.waiting_reason(NS, "broken-json"), Some(WaitReason::AnnotationInvalid(_)))
            && matches!(kubelet.waiting_reason(NS, "mgmt-pkey"), Some(WaitReason::NadInvalid { .. }))
    })
    .await;
    let reason = kubelet.waiting_reason(NS, "mgmt-pkey").unwrap().to_string();
    assert!(reason.contains("0x7fff"), "{reason}");
    assert_eq!(kubelet.waiting().len(), 2);
}

#[tokio::test]
async fn finish_on_request() {
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.unwrap();
    let api = kube.handle();
    let kubelet = Kubelet::start(api.clone());
    pod(&api, NS, "job", None, Some("node-1"));
    assert!(kubelet.wait_running(NS, "job", DEADLINE).await);

    let done = kubelet.finish(NS, "job", PodOutcome::Succeeded).unwrap();
    assert_eq!(done["status"]["phase"], "Succeeded");
    assert_eq!(done["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    assert!(matches!(kubelet.finish(NS, "job", PodOutcome::Failed), Err(KubeletError::AlreadyFinished { .. })));
    assert!(matches!(kubelet.finish(NS, "nope", PodOutcome::Failed), Err(KubeletError::NotFound { .. })));

    // A pod can also fail before it ever ran.
    pod(&api, NS, "doomed", None, None);
    let failed = kubelet.finish(NS, "doomed", PodOutcome::Failed).unwrap();
    assert_eq!(failed["status"]["phase"], "Failed");
    kubelet.stop();
}
