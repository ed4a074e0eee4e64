//! Cross-check with kubectl (client-go), an independent client: discovery, create, table and
//! JSON output, `get -w`, merge and JSON patches, and delete with its wait-for-deletion watch.
//! Skips (with a printed line) when kubectl is not installed.

mod common;

use common::{start, test_config};
use kube_emulator::{Resource, RunningEmulator};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn kubectl_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("kubectl")).find(|candidate| candidate.is_file())
}

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .arg("--request-timeout=30s")
            .args(args)
            .env_remove("KUBECONFIG");
        command
    }

    /// Runs kubectl on a blocking thread and returns stdout; fails the test on a non-zero exit.
    async fn run(&self, args: &[&str]) -> String {
        let mut command = self.command(args);
        let args = args.join(" ");
        let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "kubectl {args} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        );
        stdout
    }

    /// Runs kubectl expecting it to fail; returns stderr.
    async fn fail(&self, args: &[&str]) -> String {
        let mut command = self.command(args);
        let args = args.join(" ");
        let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("kubectl runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "kubectl {args} succeeded unexpectedly: {stderr}");
        stderr
    }
}

fn repository_file(relative: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative).to_string_lossy().into_owned()
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

async fn setup(emulator: &RunningEmulator, dir: &Path, binary: PathBuf) -> Kubectl {
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    Kubectl { binary, kubeconfig, cache: dir.join("cache") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_round_trip() {
    let Some(binary) = kubectl_path() else {
        println!("SKIP: kubectl not on PATH");
        return;
    };
    let (emulator, _client) = start(test_config()).await;
    let handle = emulator.handle();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = setup(&emulator, dir.path(), binary).await;

    let nad = write(
        dir.path(),
        "nad.json",
        &json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": { "name": "ib-net" },
            "spec": { "config": "{\"type\":\"ib-sriov\",\"pkey\":\"0x6\"}" }
        }),
    );
    let pod = write(
        dir.path(),
        "pod.json",
        &json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": "p", "annotations": { "k8s.v1.cni.cncf.io/networks": "ib-net" } },
            "spec": { "nodeName": "node-1", "containers": [{ "name": "c", "image": "busybox" }] }
        }),
    );
    let out = kubectl.run(&["create", "-f", &nad, "--validate=false"]).await;
    assert!(out.contains("networkattachmentdefinition.k8s.cni.cncf.io/ib-net created"), "{out}");
    let out = kubectl.run(&["create", "-f", &pod, "--validate=false"]).await;
    assert!(out.contains("pod/p created"), "{out}");
    assert!(handle.get(Resource::Pods, "default", "p").is_some());

    let table = kubectl.run(&["get", "pods"]).await;
    let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(&row[..4], &["p", "0/1", "Pending", "0"], "{table}");

    let nads = kubectl.run(&["get", "network-attachment-definitions"]).await;
    assert!(nads.lines().next().unwrap_or("").starts_with("NAME"), "{nads}");
    assert!(nads.contains("ib-net"), "{nads}");
    let short = kubectl.run(&["get", "net-attach-def", "ib-net", "-o", "name"]).await;
    assert_eq!(short.trim(), "networkattachmentdefinition.k8s.cni.cncf.io/ib-net");

    let json_out: Value = serde_json::from_str(&kubectl.run(&["get", "pod", "p", "-o", "json"]).await).unwrap();
    assert_eq!(json_out["metadata"]["name"], "p");
    assert_eq!(json_out["status"]["phase"], "Pending");
    let all: Value = serde_json::from_str(&kubectl.run(&["get", "pods", "-A", "-o", "json"]).await).unwrap();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1));

    // `get -w`: start watching, then change the pod and wait for the new row.
    let mut watch = kubectl
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w starts");
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_line = |pred: &dyn Fn(&str) -> bool| -> Option<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    let initial = tokio::task::block_in_place(|| wait_line(&|l| l.starts_with("p ")));
    assert!(initial.is_some_and(|l| l.contains("Pending")));
    handle
        .mutate(Resource::Pods, "default", "p", |p| {
            p["status"] =
                json!({ "phase": "Running", "containerStatuses": [{ "name": "c", "ready": true, "restartCount": 0 }] });
        })
        .unwrap();
    let running = tokio::task::block_in_place(|| wait_line(&|l| l.starts_with("p ") && l.contains("Running")));
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
    let running = running.expect("kubectl get -w printed the change");
    assert!(running.contains("1/1"), "{running}");

    let out =
        kubectl.run(&["patch", "pod", "p", "--type", "merge", "-p", r#"{"metadata":{"labels":{"team":"ib"}}}"#]).await;
    assert!(out.contains("pod/p patched"), "{out}");
    let out = kubectl
        .run(&[
            "patch",
            "pod",
            "p",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/metadata/annotations/guid","value":"02:00:00:00:00:00:00:0a"}]"#,
        ])
        .await;
    assert!(out.contains("pod/p patched"), "{out}");
    let stored = handle.get(Resource::Pods, "default", "p").unwrap();
    assert_eq!(stored["metadata"]["labels"]["team"], "ib");
    assert_eq!(stored["metadata"]["annotations"]["guid"], "02:00:00:00:00:00:00:0a");
    let out =
        kubectl.run(&["patch", "pod", "p", "--type", "merge", "-p", r#"{"metadata":{"labels":{"team":"ib"}}}"#]).await;
    assert!(out.contains("(no change)"), "{out}");

    let out = kubectl.run(&["delete", "pod", "p"]).await;
    assert!(out.contains("pod \"p\" deleted"), "{out}");
    assert!(handle.get(Resource::Pods, "default", "p").is_none(), "delete waited for removal");
    let out = kubectl.run(&["delete", "network-attachment-definitions", "ib-net"]).await;
    assert!(out.contains("deleted"), "{out}");
    let empty = kubectl.run(&["get", "pods", "-o", "json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&empty).unwrap()["items"], json!([]));
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_guidblocks_with_their_printer_columns() {
    let Some(binary) = kubectl_path() else {
        println!("SKIP: kubectl not on PATH");
        return;
    };
    let (emulator, _client) = start(test_config()).await;
    let handle = emulator.handle();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = setup(&emulator, dir.path(), binary).await;

    let block = write(
        dir.path(),
        "block.json",
        &json!({
            "apiVersion": "ib-kubernetes.mellanox.com/v1alpha1",
            "kind": "GuidBlock",
            "metadata": { "name": "0200000000000100" },
            "spec": { "start": "02:00:00:00:00:00:01:00", "allocations": {
                "02:00:00:00:00:00:01:05": { "podUid": "u1", "namespace": "a", "pod": "p", "network": "a/ib",
                                             "interface": "net1", "pkey": "0x0005", "state": "Member" } } }
        }),
    );
    let out = kubectl.run(&["apply", "-f", &block, "--validate=false"]).await;
    assert!(out.contains("guidblock.ib-kubernetes.mellanox.com/0200000000000100 created"), "{out}");
    assert!(handle.get(Resource::GuidBlocks, "", "0200000000000100").is_some());

    let table = kubectl.run(&["get", "gb"]).await;
    let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "START", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(&row[..2], ["0200000000000100", "02:00:00:00:00:00:01:00"], "{table}");
    let name = kubectl.run(&["get", "guidblocks.ib-kubernetes.mellanox.com", "-o", "name"]).await;
    assert_eq!(name.trim(), "guidblock.ib-kubernetes.mellanox.com/0200000000000100");

    let out = kubectl
        .run(&[
            "patch",
            "gb",
            "0200000000000100",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"allocations":{"02:00:00:00:00:00:01:05":{"state":"Releasing"}}}}"#,
        ])
        .await;
    assert!(out.contains("patched"), "{out}");
    let stored = handle.get(Resource::GuidBlocks, "", "0200000000000100").unwrap();
    assert_eq!(stored["spec"]["allocations"]["02:00:00:00:00:00:01:05"]["state"], "Releasing");
    assert_eq!(stored["spec"]["allocations"]["02:00:00:00:00:00:01:05"]["pod"], "p");

    let out = kubectl.run(&["delete", "gb", "0200000000000100"]).await;
    assert!(out.contains("deleted"), "{out}");
    assert!(handle.get(Resource::GuidBlocks, "", "0200000000000100").is_none());
    emulator.shutdown().await;
}

/// An emulator, a scratch directory and kubectl pointed at it; `None` (after printing SKIP) when
/// kubectl is not installed.
async fn session() -> Option<(RunningEmulator, tempfile::TempDir, Kubectl)> {
    let Some(binary) = kubectl_path() else {
        println!("SKIP: kubectl not on PATH");
        return None;
    };
    let (emulator, _client) = start(test_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubectl = setup(&emulator, dir.path(), binary).await;
    Some((emulator, dir, kubectl))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_events_written_through_either_api() {
    let Some((emulator, _dir, kubectl)) = session().await else { return };
    let handle = emulator.handle();
    let pod = handle
        .create(
            Resource::Pods,
            json!({ "metadata": { "name": "p", "namespace": "default" },
                    "spec": { "nodeName": "node-01", "containers": [{ "name": "c", "image": "i" }] } }),
        )
        .unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
    // As the controller writes it: events.k8s.io/v1.
    handle
        .create(
            Resource::Events,
            json!({ "metadata": { "name": "p.17a", "namespace": "default" },
                    "eventTime": "2025-01-01T00:00:00.000000Z", "type": "Warning", "reason": "BadNetwork",
                    "note": "NetworkAttachmentDefinition default/ib-net: pkey 0x7fff is reserved",
                    "action": "Configure", "reportingController": "ib-kubernetes", "reportingInstance": "ib-0",
                    "regarding": { "kind": "Pod", "namespace": "default", "name": "p", "uid": uid, "apiVersion": "v1" } }),
        )
        .unwrap();
    // As a kubelet writes it: core v1.
    handle
        .create(
            Resource::CoreEvents,
            json!({ "metadata": { "name": "p.17b", "namespace": "default" }, "type": "Normal", "reason": "Scheduled",
                    "message": "Successfully assigned default/p to node-01", "source": { "component": "default-scheduler" },
                    "firstTimestamp": "2025-01-01T00:00:01Z", "lastTimestamp": "2025-01-01T00:00:01Z", "count": 1,
                    "involvedObject": { "kind": "Pod", "namespace": "default", "name": "p", "uid": uid, "apiVersion": "v1" } }),
        )
        .unwrap();

    let events = kubectl.run(&["get", "events"]).await;
    let header: Vec<&str> = events.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "{events}");
    assert!(events.contains("BadNetwork") && events.contains("pkey 0x7fff is reserved"), "{events}");
    assert!(events.contains("Scheduled") && events.contains("pod/p"), "{events}");
    let v1 = kubectl.run(&["get", "events.v1.events.k8s.io", "-o", "json"]).await;
    let v1: Value = serde_json::from_str(&v1).unwrap();
    let notes: Vec<&str> = v1["items"].as_array().unwrap().iter().filter_map(|e| e["note"].as_str()).collect();
    assert_eq!(notes.len(), 2, "{v1}");
    assert!(notes.contains(&"Successfully assigned default/p to node-01"), "{notes:?}");

    let described = kubectl.run(&["describe", "pod", "p"]).await;
    let events_section = described.split("Events:").nth(1).unwrap_or("");
    assert!(events_section.contains("Warning  BadNetwork"), "{described}");
    assert!(events_section.contains("pkey 0x7fff is reserved"), "{described}");
    assert!(events_section.contains("Normal   Scheduled"), "{described}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_validates_explains_and_applies_server_side() {
    let Some((emulator, dir, kubectl)) = session().await else { return };
    let handle = emulator.handle();

    // The repository's own examples, with kubectl's default (strict) validation.
    let out = kubectl.run(&["apply", "-f", &repository_file("deployment/examples/ib-crd.yaml")]).await;
    assert!(out.contains("networkattachmentdefinition.k8s.cni.cncf.io/ib-sriov-network created"), "{out}");
    let out = kubectl.run(&["apply", "-f", &repository_file("deployment/examples/sriov-dp-configmap.yaml")]).await;
    assert!(out.contains("created"), "{out}");
    let out = kubectl.run(&["create", "-f", &repository_file("deployment/examples/test-pod.yaml")]).await;
    assert!(out.contains("pod/my-test-pod-") && out.contains(" created"), "{out}");

    // A field the Pod schema does not know is refused, naming the field.
    let typo = write(
        dir.path(),
        "typo.json",
        &json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "typo" },
                 "spec": { "containers": [{ "name": "c", "image": "i", "imagePullPolicyy": "Always" }] } }),
    );
    let err = kubectl.fail(&["create", "-f", &typo]).await;
    assert!(err.contains(r#"unknown field "spec.containers[0].imagePullPolicyy""#), "{err}");
    assert!(handle.get(Resource::Pods, "default", "typo").is_none());
    let out = kubectl.run(&["create", "-f", &typo, "--validate=warn"]).await;
    assert!(out.contains("pod/typo created"), "{out}");

    let explained = kubectl.run(&["explain", "pod.spec"]).await;
    assert!(explained.contains("KIND:") && explained.contains("Pod"), "{explained}");
    assert!(explained.contains("containers"), "{explained}");
    let explained = kubectl.run(&["explain", "nodes.status.nodeInfo"]).await;
    assert!(explained.contains("kubeletVersion"), "{explained}");

    // Server-side apply: create, then merge a second configuration into the live object.
    let first = write(
        dir.path(),
        "cm1.json",
        &json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg", "labels": { "a": "1" } },
                 "data": { "x": "1" } }),
    );
    let out = kubectl.run(&["apply", "--server-side", "-f", &first]).await;
    assert!(out.contains("configmap/cfg serverside-applied"), "{out}");
    handle
        .mutate(Resource::ConfigMaps, "default", "cfg", |cm| {
            cm["data"]["set-by-someone-else"] = json!("kept");
        })
        .unwrap();
    let second = write(
        dir.path(),
        "cm2.json",
        &json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg", "labels": { "b": "2" } },
                 "data": { "x": "2" } }),
    );
    let out = kubectl.run(&["apply", "--server-side", "-f", &second]).await;
    assert!(out.contains("configmap/cfg serverside-applied"), "{out}");
    let stored = handle.get(Resource::ConfigMaps, "default", "cfg").unwrap();
    assert_eq!(stored["data"], json!({ "x": "2", "set-by-someone-else": "kept" }));
    assert_eq!(stored["metadata"]["labels"], json!({ "a": "1", "b": "2" }));
    let managers: Vec<&str> =
        stored["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|m| m["manager"].as_str()).collect();
    assert_eq!(managers, ["kubectl"], "{stored}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_nodes() {
    let Some((emulator, _dir, kubectl)) = session().await else { return };
    let handle = emulator.handle();
    handle
        .create(
            Resource::Nodes,
            json!({ "metadata": { "name": "node-01", "labels": { "node-role.kubernetes.io/worker": "" } },
                    "status": { "conditions": [{ "type": "Ready", "status": "True" }],
                                "nodeInfo": { "kubeletVersion": "v1.33.0" } } }),
        )
        .unwrap();
    let nodes = kubectl.run(&["get", "nodes"]).await;
    let header: Vec<&str> = nodes.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "{nodes}");
    let row: Vec<&str> = nodes.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!((row[0], row[1], row[2], row[4]), ("node-01", "Ready", "worker", "v1.33.0"), "{nodes}");
    let out = kubectl.run(&["cordon", "node-01"]).await;
    assert!(out.contains("cordoned"), "{out}");
    let nodes = kubectl.run(&["get", "no"]).await;
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    emulator.shutdown().await;
}
