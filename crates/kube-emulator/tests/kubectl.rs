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
