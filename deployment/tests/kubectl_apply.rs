//! kubectl applies every manifest (the record CRD and the optional admission guard included) and
//! every example to the Kubernetes emulator, and every object of every file ends up stored as
//! written. Skipped (with a note) when kubectl is not on PATH.
//!
//! Files whose objects all have a `metadata.name` go through `kubectl apply` (GET, then POST for a new
//! object); `kubectl apply` refuses `generateName`, so a file using it (the test pod) goes through
//! `kubectl create`, as a user would. `--validate=false` because the emulator serves no OpenAPI schema.
//!
//! The Helm chart's rendering (every option on: the admission guard, the ServiceMonitor, the
//! NetworkPolicy, the PrometheusRule and the dashboard) goes the same way, every object of it, and
//! is read back with `kubectl get`, when helm is installed.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use ib_kubernetes_deployment::{EXAMPLES, MANIFESTS, OPTIONAL, Object, dir, load};
use kube_emulator::{EmulatorConfig, EmulatorHandle, KubeEmulator, Resource};
use serde_json::Value;

use common::kubectl_on_path;

fn served(object: &Object) -> Option<Resource> {
    let api_version = object.value["apiVersion"].as_str().unwrap_or_default();
    Resource::ALL.into_iter().find(|r| r.kind() == object.kind() && r.api_version() == api_version)
}

fn resource_of(object: &Object) -> Resource {
    served(object).unwrap_or_else(|| {
        panic!("{}: the emulator serves no {} {}", object.file, object.value["apiVersion"], object.kind())
    })
}

fn generated(object: &Object) -> bool {
    object.value["metadata"]["name"].as_str().is_none()
}

/// Runs kubectl against the emulator off the runtime's worker threads, and asserts it succeeded.
async fn kubectl(kubectl: &Path, kubeconfig: &Path, args: Vec<String>) -> String {
    let mut command = Command::new(kubectl);
    command.arg("--kubeconfig").arg(kubeconfig).args(&args).current_dir(dir());
    let out: Output = tokio::task::spawn_blocking(move || common::run(command)).await.expect("kubectl task");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("kubectl {}:\n{stdout}", args.join(" "));
    assert!(
        out.status.success(),
        "kubectl {} failed ({}):\nstdout: {stdout}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn file_args(verb: &str, files: &[&str]) -> Vec<String> {
    let mut args = vec![verb.to_string(), "--validate=false".to_string()];
    for file in files {
        args.push("-f".to_string());
        args.push((*file).to_string());
    }
    args
}

/// The stored object for `object`: by name, or the one object whose name starts with its
/// `generateName`.
fn stored(handle: &EmulatorHandle, object: &Object) -> std::sync::Arc<Value> {
    let resource = resource_of(object);
    let namespace = match object.value["metadata"]["namespace"].as_str() {
        _ if !resource.namespaced() => "",
        Some(ns) => ns,
        None => "default",
    };
    let what = format!("{}: {} {namespace}/{}", object.file, object.kind(), object.name());
    if generated(object) {
        let (_, items) = handle.list(resource, Some(namespace));
        let mut found = items.into_iter().filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(object.name()) && n.len() > object.name().len())
        });
        let one = found.next().unwrap_or_else(|| panic!("{what}: not created"));
        assert!(found.next().is_none(), "{what}: created more than once");
        one
    } else {
        handle.get(resource, namespace, object.name()).unwrap_or_else(|| panic!("{what}: not created"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_every_manifest_and_example_to_the_emulator() {
    let Some(kubectl_path) = kubectl_on_path() else {
        println!("SKIP: kubectl not on PATH");
        return;
    };
    let emulator = KubeEmulator::start(EmulatorConfig::default()).await.expect("emulator starts");
    let temp = tempfile::tempdir().expect("temp dir");
    let kubeconfig = temp.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).expect("kubeconfig written");

    let files: Vec<&str> = MANIFESTS.iter().chain(OPTIONAL).chain(EXAMPLES).copied().collect();
    let objects: Vec<Object> = files.iter().flat_map(|f| load(f).unwrap_or_else(|e| panic!("{e}"))).collect();
    let (created, applied): (Vec<&str>, Vec<&str>) =
        files.iter().partition(|f| objects.iter().any(|o| o.file == **f && generated(o)));
    assert!(!applied.is_empty());

    let out = kubectl(&kubectl_path, &kubeconfig, file_args("apply", &applied)).await;
    let applied_objects = objects.iter().filter(|o| applied.contains(&o.file.as_str())).count();
    assert_eq!(out.lines().filter(|l| l.ends_with(" created")).count(), applied_objects, "kubectl apply said:\n{out}");
    if !created.is_empty() {
        kubectl(&kubectl_path, &kubeconfig, file_args("create", &created)).await;
    }

    let handle = emulator.handle();
    for kind in ["CustomResourceDefinition", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] {
        assert!(objects.iter().any(|o| o.kind() == kind), "no {kind} was applied");
    }
    // Everything outside metadata arrives as written (the emulator stores objects untyped and defaults
    // nothing), except a new pod's status, which the apiserver resets.
    for object in &objects {
        assert_stored_as_written(&handle, object);
    }

    // A second apply of unchanged files changes nothing.
    let out = kubectl(&kubectl_path, &kubeconfig, file_args("apply", &applied)).await;
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "second kubectl apply said:\n{out}");

    emulator.shutdown().await;
}

/// Stored as written: everything outside metadata, and the labels and annotations.
fn assert_stored_as_written(handle: &EmulatorHandle, object: &Object) {
    let stored = stored(handle, object);
    let what = format!("{}: {} {}", object.file, object.kind(), object.name());
    assert_eq!(stored["kind"], object.value["kind"], "{what}");
    for (field, value) in object.value.as_object().expect("object").iter() {
        if !matches!(field.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
            assert_eq!(&stored[field], value, "{what}: {field}");
        }
    }
    for field in ["labels", "annotations"] {
        for (key, value) in object.value["metadata"][field].as_object().into_iter().flatten() {
            assert_eq!(&stored["metadata"][field][key], value, "{what}: metadata.{field}.{key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_rendered_chart_to_the_emulator() {
    let Some(kubectl_path) = kubectl_on_path() else {
        println!("SKIP: kubectl not on PATH");
        return;
    };
    let Some(helm) = common::Helm::find() else { return };
    let set = "admission.enabled=true,serviceMonitor.enabled=true,networkPolicy.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true";
    let objects = helm.objects("kube-system", &["--set", set]);
    // Every kind the chart renders is served, the optional ones included.
    let unserved: Vec<String> = objects
        .iter()
        .filter(|o| served(o).is_none())
        .map(|o| format!("{} {}", o.value["apiVersion"], o.kind()))
        .collect();
    assert!(unserved.is_empty(), "the emulator serves no {unserved:?}");
    for kind in ["Service", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"] {
        assert!(objects.iter().any(|o| o.kind() == kind), "the chart rendered no {kind} with {set}");
    }
    let applied: Vec<&Object> = objects.iter().collect();

    let emulator = KubeEmulator::start(EmulatorConfig::default()).await.expect("emulator starts");
    let temp = tempfile::tempdir().expect("temp dir");
    let kubeconfig = temp.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).expect("kubeconfig written");
    let rendered = temp.path().join("chart.yaml");
    let text: Vec<String> = applied.iter().map(|o| serde_json::to_string(&o.value).expect("JSON")).collect();
    // JSON documents are YAML documents.
    std::fs::write(&rendered, text.join("\n---\n")).expect("rendered chart written");
    let args = vec!["apply".to_owned(), "--validate=false".to_owned(), "-f".to_owned(), rendered.display().to_string()];
    let out = kubectl(&kubectl_path, &kubeconfig, args.clone()).await;
    assert_eq!(out.lines().filter(|l| l.ends_with(" created")).count(), applied.len(), "kubectl apply said:\n{out}");
    let handle = emulator.handle();
    for object in &applied {
        assert_stored_as_written(&handle, object);
    }
    // Read back through kubectl as well: every object, in the order rendered, as written.
    let get =
        vec!["get".to_owned(), "-f".to_owned(), rendered.display().to_string(), "-o".to_owned(), "json".to_owned()];
    let listed: Value =
        serde_json::from_str(&kubectl(&kubectl_path, &kubeconfig, get).await).expect("kubectl get -o json");
    let items = listed["items"].as_array().expect("kubectl get lists items");
    assert_eq!(items.len(), applied.len(), "kubectl get -f returned {listed}");
    for (item, object) in items.iter().zip(&applied) {
        let what = format!("{} {}", object.kind(), object.name());
        assert_eq!(
            (&item["kind"], &item["metadata"]["name"]),
            (&object.value["kind"], &object.value["metadata"]["name"]),
            "{what}"
        );
        for (field, value) in object.value.as_object().expect("object") {
            if !matches!(field.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                assert_eq!(&item[field], value, "{what}: {field} as kubectl reads it");
            }
        }
    }
    let out = kubectl(&kubectl_path, &kubeconfig, args).await;
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "second kubectl apply said:\n{out}");
    emulator.shutdown().await;
}
