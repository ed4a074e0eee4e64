//! `ib-kubernetes status` against the Kubernetes emulator: the real binary, seeded pods, NADs,
//! GuidBlocks, Events and ConfigMap, and the JSON report checked field by field.

use std::path::Path;
use std::time::Duration;

use ib_sim::{RunningSim, SimOptions};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

/// A PKey member as (GUID, namespace/pod, record state).
type Member = (String, String, String);

const DEADLINE: Duration = Duration::from_secs(120);

async fn start() -> (tempfile::TempDir, RunningSim, Client) {
    let dir = tempfile::tempdir().unwrap();
    let sim = RunningSim::start(SimOptions {
        dir: dir.path().to_owned(),
        api_port: None,
        ufm_port: None,
        kubelet: false,
        http: true,
    })
    .await
    .unwrap();
    let kubeconfig = Kubeconfig::read_from(sim.kubeconfig_path()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let client = Client::try_from(config).unwrap();
    (dir, sim, client)
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

async fn create(client: &Client, resource: &ApiResource, namespace: Option<&str>, object: Value) {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {:?}: {e}", object.metadata.name));
}

async fn pod(client: &Client, name: &str, networks: &str, node: Option<&str>) -> String {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    let object = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "team", "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": spec,
    });
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "team");
    let created = api.create(&PostParams::default(), &serde_json::from_value(object).unwrap()).await.unwrap();
    created.metadata.uid.unwrap()
}

async fn event(client: &Client, name: &str, pod: &str, uid: &str, type_: &str, reason: &str, time: &str) {
    let object = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "team"},
        "eventTime": time,
        "reportingController": "ib-kubernetes", "reportingInstance": "ib-kubernetes-0",
        "action": "ConfigureInfiniBand", "type": type_, "reason": reason,
        "note": format!("{reason} note"),
        "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "team", "name": pod, "uid": uid},
    });
    create(client, &resource("events.k8s.io", "v1", "Event", "events"), Some("team"), object).await;
}

fn nad(name: &str, config: Value) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"config": config.to_string()},
    })
}

fn allocation(pod: &str, uid: &str, network: &str, pkey: Option<&str>, state: &str) -> Value {
    let mut a = json!({
        "podUid": uid, "namespace": "team", "pod": pod, "network": network, "interface": "net1", "state": state
    });
    if let Some(p) = pkey {
        a["pkey"] = json!(p);
    }
    a
}

fn guidblock(name: &str, allocations: Value) -> Value {
    json!({
        "apiVersion": "ib-kubernetes.mellanox.com/v1alpha1", "kind": "GuidBlock",
        "metadata": {"name": name},
        "spec": {"start": name, "allocations": allocations},
    })
}

/// Runs the real binary; returns (exit success, stdout, stderr).
async fn run_status(kubeconfig: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ib-kubernetes"));
    command.arg("status").arg("--kubeconfig").arg(kubeconfig).args(extra).kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, command.output()).await.expect("status finished").unwrap();
    (output.status.success(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

async fn seed_common(client: &Client) -> (String, String, String) {
    let nads = resource("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition", "network-attachment-definitions");
    create(
        client,
        &nads,
        Some("team"),
        nad("ib-a", json!({"cniVersion": "0.3.1", "type": "ib-sriov", "pkey": "0x0a"})),
    )
    .await;
    create(client, &nads, Some("team"), nad("ib-plain", json!({"cniVersion": "0.3.1", "type": "ib-sriov"}))).await;
    create(client, &nads, Some("team"), nad("eth", json!({"cniVersion": "0.3.1", "type": "macvlan"}))).await;
    let configured = r#"[{"name":"ib-a","interface":"net1","cni-args":{"mellanox.infiniband.app":"configured"}}]"#;
    let a = pod(client, "member-a", configured, Some("n1")).await;
    let b = pod(client, "member-b", configured, Some("n1")).await;
    let stuck = pod(client, "stuck", "ib-a", Some("n1")).await;
    pod(client, "fresh", "ib-plain", Some("n2")).await;
    pod(client, "unscheduled", "ib-a", None).await;
    pod(client, "ethernet-only", "eth", Some("n1")).await;
    (a, b, stuck)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reports_pool_members_and_waiting_pods() {
    let (_dir, sim, client) = start().await;
    let (a, b, stuck) = seed_common(&client).await;
    let blocks = resource("ib-kubernetes.mellanox.com", "v1alpha1", "GuidBlock", "guidblocks");
    create(
        &client,
        &blocks,
        None,
        guidblock(
            "0200000000000000",
            json!({
                "02:00:00:00:00:00:00:01": allocation("member-a", &a, "team/ib-a", Some("0x000a"), "Member"),
                "02:00:00:00:00:00:00:02": allocation("member-b", &b, "team/ib-a", Some("0x000a"), "Reserved"),
                "02:00:00:00:00:00:00:03": allocation("gone", "uid-gone", "team/ib-plain", None, "Releasing"),
            }),
        ),
    )
    .await;
    event(&client, "stuck.1", "stuck", &stuck, "Warning", "GUIDPoolExhausted", "2026-01-01T00:00:01.000000Z").await;
    event(&client, "stuck.2", "stuck", &stuck, "Warning", "SubnetManagerFailed", "2026-01-01T00:00:03.000000Z").await;
    event(&client, "a.1", "member-a", &a, "Warning", "SubnetManagerFailed", "2026-01-01T00:00:01.000000Z").await;
    event(&client, "a.2", "member-a", &a, "Normal", "Configured", "2026-01-01T00:00:02.000000Z").await;
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ib-kubernetes-config", "namespace": "kube-system"},
        "data": {"GUID_POOL_RANGE_START": "02:00:00:00:00:00:00:00", "GUID_POOL_RANGE_END": "02:00:00:00:00:00:03:ff"},
    });
    create(&client, &resource("", "v1", "ConfigMap", "configmaps"), Some("kube-system"), config_map).await;

    let (ok, stdout, stderr) = run_status(&sim.kubeconfig_path(), &["--json"]).await;
    assert!(ok, "status failed: {stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["pool"]["records"], 3);
    let range = &report["pool"]["range"];
    assert_eq!(range["source"], "configMap");
    assert_eq!(
        (range["start"].as_str(), range["end"].as_str()),
        (Some("02:00:00:00:00:00:00:00"), Some("02:00:00:00:00:00:03:ff"))
    );
    assert_eq!(
        (range["capacity"].as_u64(), range["inRange"].as_u64(), range["outOfRange"].as_u64()),
        (Some(1024), Some(3), Some(0))
    );
    let pkeys: Vec<(String, Vec<Member>)> = report["pkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let members = p["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["guid"].as_str().unwrap().to_owned(),
                        format!("{}/{}", m["namespace"].as_str().unwrap(), m["pod"].as_str().unwrap()),
                        m["state"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (p["pkey"].as_str().unwrap().to_owned(), members)
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        pkeys,
        vec![
            (s("none"), vec![(s("02:00:00:00:00:00:00:03"), s("team/gone"), s("Releasing"))]),
            (
                s("0x000a"),
                vec![
                    (s("02:00:00:00:00:00:00:01"), s("team/member-a"), s("Member")),
                    (s("02:00:00:00:00:00:00:02"), s("team/member-b"), s("Reserved")),
                ]
            ),
        ]
    );
    let waiting: Vec<(String, String)> = report["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                format!("{}/{}", w["namespace"].as_str().unwrap(), w["pod"].as_str().unwrap()),
                w["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        waiting,
        vec![
            (s("team/fresh"), s("NotConfiguredYet")),
            (s("team/stuck"), s("SubnetManagerFailed")),
            (s("team/unscheduled"), s("NotScheduled")),
        ]
    );
    let stuck_entry = report["waiting"].as_array().unwrap().iter().find(|w| w["pod"] == "stuck").unwrap();
    assert_eq!(stuck_entry["message"], "SubnetManagerFailed note");
    assert_eq!(stuck_entry["since"], "2026-01-01T00:00:03Z");
    assert_eq!(report["skipped"], json!({"blocks": 0, "entries": 0}));

    // The table names the same things, and flags override the ConfigMap.
    let (ok, table, stderr) = run_status(
        &sim.kubeconfig_path(),
        &["--pool-start", "02:00:00:00:00:00:00:02", "--pool-end", "02:00:00:00:00:00:00:02"],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(table.contains("1 of 1 GUIDs recorded") && table.contains("2 more recorded outside the range"), "{table}");
    assert!(table.contains("team/stuck  SubnetManagerFailed"), "{table}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_and_pods_print_cleanly() {
    let (_dir, sim, client) = start().await;
    seed_common(&client).await;
    let blocks = resource("ib-kubernetes.mellanox.com", "v1alpha1", "GuidBlock", "guidblocks");
    let huge = format!("\u{1b}]0;owned\u{7}{}", "A".repeat(200_000));
    create(
        &client,
        &blocks,
        None,
        guidblock(
            "0200000000000000",
            json!({
                "junk": {"podUid": 1},
                "02:00:00:00:00:00:00:09": "a string",
                "02:00:00:00:00:00:00:0a": allocation(&huge, "u", "team/ib-a", Some("0x0a"), "Member"),
                "02:00:00:00:00:00:00:0b": allocation("x", "u", "team/ib-a", Some("not a pkey"), "Member"),
                "02:00:00:00:00:00:00:0c": allocation("x", "u", "team/ib-a", None, "Bogus"),
            }),
        ),
    )
    .await;
    create(&client, &blocks, None, guidblock("not-a-block", json!({"x": 1}))).await;
    create(&client, &blocks, None, guidblock("0200000000000100", json!([1, 2, 3]))).await;
    // A pod whose annotation is far over the parser's limit, and one whose Event text is hostile.
    let uid = pod(&client, "huge", &"ib-a,".repeat(60_000), Some("n1")).await;
    event(&client, "huge.1", "huge", &uid, "Warning", &huge, "2026-01-01T00:00:01.000000Z").await;

    for extra in
        [&["--json"][..], &["--pool-start", "02:00:00:00:00:00:00:00", "--pool-end", "02:00:00:00:00:00:ff:ff"]]
    {
        let (ok, stdout, stderr) = run_status(&sim.kubeconfig_path(), extra).await;
        assert!(ok, "{stderr}");
        assert!(stdout.len() < 20_000, "output of {} bytes", stdout.len());
        assert!(!stdout.chars().any(|c| c.is_control() && c != '\n'), "control characters in {stdout:?}");
        if extra == ["--json"] {
            let report: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(report["skipped"], json!({"blocks": 1, "entries": 5}));
            assert_eq!(report["pool"]["records"], 1);
            let huge_pod = report["waiting"].as_array().unwrap().iter().find(|w| w["pod"] == "huge").unwrap();
            assert!(huge_pod["reason"].as_str().unwrap().starts_with("\u{fffd}]0;owned\u{fffd}AAA"), "{huge_pod}");
            assert!(huge_pod["reason"].as_str().unwrap().len() < 400);
        } else {
            assert!(stdout.contains("skipped as unreadable: 1 blocks, 5 entries"), "{stdout}");
        }
    }
    // No range anywhere: reported as unknown, not an error.
    let (ok, stdout, stderr) = run_status(&sim.kubeconfig_path(), &[]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("range unknown (no ConfigMap kube-system/ib-kubernetes-config"), "{stdout}");
    // Bad flags and an unreachable or unreadable kubeconfig: a clear error naming what failed.
    let (ok, _, stderr) =
        run_status(&sim.kubeconfig_path(), &["--pool-start", "02:zz", "--pool-end", "02:00:00:00:00:00:00:01"]).await;
    assert!(!ok && stderr.contains("--pool-start \"02:zz\" is not a GUID"), "{stderr}");
    let missing = sim.kubeconfig_path().with_file_name("missing");
    let (ok, _, stderr) = run_status(&missing, &[]).await;
    assert!(!ok && stderr.contains("reading the kubeconfig") && stderr.contains("missing"), "{stderr}");
    sim.shutdown().await;
    let (ok, _, stderr) = run_status(&sim_kubeconfig(&_dir), &["--timeout", "5"]).await;
    assert!(!ok && stderr.contains("ib-kubernetes status:"), "{stderr}");
}

fn sim_kubeconfig(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("kubeconfig")
}
