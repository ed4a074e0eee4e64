//! The official Kubernetes Python client (PyPI `kubernetes`, a client nobody here wrote) against a
//! freshly started emulator: runs `tests/python/check_client.py`. The interpreter is
//! `KUBE_PYTHON` (`.ci/run` installs the pinned client into a virtual environment and sets it), or
//! `python3`; prints SKIP when neither can import the client.

mod common;

use common::{start, test_config};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn interpreter() -> Option<String> {
    let candidate = std::env::var("KUBE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&candidate).args(["-c", "import kubernetes"]).output().is_ok_and(|out| out.status.success());
    ok.then_some(candidate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works_against_the_emulator() {
    let Some(python) = interpreter() else {
        println!("SKIP: the kubernetes Python client is not importable (set KUBE_PYTHON; .ci/run installs it)");
        return;
    };
    let config = kube_emulator::EmulatorConfig { history_capacity: 64, ..test_config() };
    let (emulator, _client) = start(config).await;
    let handle = emulator.handle();
    // Enough pod writes that resourceVersion 1 is out of the pods' watch history, for the 410 check.
    for i in 0..80 {
        handle
            .create(
                kube_emulator::Resource::Pods,
                serde_json::json!({ "metadata": { "name": format!("filler-{i}"), "namespace": "other" } }),
            )
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/check_client.py");
    let mut command = tokio::process::Command::new(&python);
    command.arg(&script).arg(&kubeconfig).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("the Python check finished within 5 minutes")
        .expect("the Python check ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the Python client check failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    emulator.shutdown().await;
}
