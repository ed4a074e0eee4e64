//! `ib-kubernetes sim` as a library: files appear, kubectl answers with the kubeconfig, curl gets the
//! PKey list with the credentials of `ufm.env`, fixed ports are honoured.

mod common;

use std::path::Path;
use std::process::Output;

use common::{DEADLINE, pod};
use ib_sim::{RunningSim, SimOptions};
use tokio::process::Command;

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

async fn run(command: &mut Command) -> Output {
    tokio::time::timeout(DEADLINE, command.output()).await.expect("command finished in time").expect("command ran")
}

fn options(dir: &Path) -> SimOptions {
    SimOptions { dir: dir.join("sim"), api_port: None, ufm_port: None, kubelet: true, http: false }
}

#[tokio::test]
async fn kubectl_and_curl_work_with_the_written_files() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = RunningSim::start(options(tmp.path())).await.unwrap();
    let dir = sim.kubeconfig_path().parent().unwrap().to_owned();
    for file in ["kubeconfig", "ufm.env", "ufm-ca.pem"] {
        assert!(dir.join(file).is_file(), "{file} written");
    }
    assert!(sim.usage().contains(&format!("{}/kubeconfig", dir.display())));
    pod(&sim.kube().handle(), "default", "hello", None, Some("node-1"));
    assert!(sim.kubelet().unwrap().wait_running("default", "hello", DEADLINE).await);

    if on_path("kubectl") {
        let out =
            run(Command::new("kubectl").arg("--kubeconfig").arg(sim.kubeconfig_path()).args(["get", "pods", "-A"]))
                .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("hello") && stdout.contains("Running"), "{stdout}");
    } else {
        println!("SKIP: kubectl not on PATH");
    }

    if on_path("curl") {
        // The env file is loaded exactly as the usage text says, so its quoting is tested too: the
        // multi-line certificate must come back byte for byte.
        let script = r#"set -a; . "$1/ufm.env"; set +a
            printf '%s' "$UFM_CERTIFICATE" > "$1/cert-from-env.pem"
            curl -sS --fail --cacert "$1/ufm-ca.pem" -u "$UFM_USERNAME:$UFM_PASSWORD" \
                "$UFM_HTTP_SCHEMA://$UFM_ADDRESS:$UFM_PORT/ufmRest/resources/pkeys?guids_data=true""#;
        let out = run(Command::new("bash").args(["-c", script, "sh"]).arg(&dir)).await;
        assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(body.get("0x7fff").is_some(), "the management partition is listed: {body}");
        let from_env = std::fs::read_to_string(dir.join("cert-from-env.pem")).unwrap();
        assert_eq!(from_env, sim.ufm().ca_pem().unwrap());

        let wrong = run(Command::new("curl")
            .args(["-sS", "--fail", "-o", "/dev/null", "--cacert"])
            .arg(dir.join("ufm-ca.pem"))
            .args(["-u", "admin:wrong", &format!("https://127.0.0.1:{}/ufmRest/resources/pkeys", sim.ufm_env().port)]))
        .await;
        assert!(!wrong.status.success(), "a wrong password is refused");
    } else {
        println!("SKIP: curl not on PATH");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn fixed_ports_are_honoured_through_a_relay() {
    // Ask the OS for two free ports, release them, then request them explicitly.
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (api_port, ufm_port) = (free(), free());
    let tmp = tempfile::tempdir().unwrap();
    let sim = RunningSim::start(SimOptions {
        api_port: Some(api_port),
        ufm_port: Some(ufm_port),
        http: true,
        ..options(tmp.path())
    })
    .await
    .unwrap();
    assert_eq!(sim.api_addr().port(), api_port);
    assert_eq!(sim.ufm_env().port, ufm_port);
    assert!(sim.ca_path().is_none());
    let kubeconfig = std::fs::read_to_string(sim.kubeconfig_path()).unwrap();
    assert!(kubeconfig.contains(&format!("server: http://127.0.0.1:{api_port}")), "{kubeconfig}");

    let client =
        kube::Client::try_from(kube::Config::new(format!("http://127.0.0.1:{api_port}").parse().unwrap())).unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert!(version.git_version.starts_with('v'));

    // A port that is taken is a clear error, not a silent fallback.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = RunningSim::start(SimOptions { api_port: Some(port), ..options(tmp.path()) }).await.err().unwrap();
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    sim.shutdown().await;
}

/// `ufm.env` holds the UFM password: only its owner may read it, and nothing planted in the directory
/// beforehand (a symlink at the file's name or at the temporary name an earlier version used, a hard
/// link to an old file) can make the password land anywhere else.
#[cfg(unix)]
#[tokio::test]
async fn secret_files_are_private_and_never_written_through_planted_links() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sim");
    std::fs::create_dir(&dir).unwrap();
    // Files another user would like to receive the password in.
    let via_env = tmp.path().join("stolen-via-env");
    let via_partial = tmp.path().join("stolen-via-partial");
    let via_kubeconfig = tmp.path().join("stolen-via-kubeconfig");
    for f in [&via_env, &via_partial] {
        std::fs::write(f, "untouched").unwrap();
    }
    std::os::unix::fs::symlink(&via_env, dir.join("ufm.env")).unwrap();
    std::os::unix::fs::symlink(&via_partial, dir.join("ufm.partial")).unwrap();
    // An old kubeconfig, readable by all, with a second hard link outside the directory.
    std::fs::write(dir.join("kubeconfig"), "untouched").unwrap();
    std::fs::set_permissions(dir.join("kubeconfig"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::hard_link(dir.join("kubeconfig"), &via_kubeconfig).unwrap();

    let sim = RunningSim::start(options(tmp.path())).await.unwrap();
    let password = sim.ufm_env().password.clone();

    for file in ["ufm.env", "kubeconfig", "ufm-ca.pem"] {
        let meta = std::fs::symlink_metadata(dir.join(file)).unwrap();
        assert!(meta.file_type().is_file(), "{file} is a regular file, not the planted link");
        assert_eq!(meta.mode() & 0o777, 0o600, "{file} mode {:o}", meta.mode() & 0o777);
        assert_eq!(meta.nlink(), 1, "{file} is a fresh file, not the old one with its other links");
    }
    let env = std::fs::read_to_string(dir.join("ufm.env")).unwrap();
    assert!(env.contains(&password), "ufm.env holds the password");
    for f in [&via_env, &via_partial, &via_kubeconfig] {
        assert_eq!(std::fs::read_to_string(f).unwrap(), "untouched", "{} was written through", f.display());
    }
    // No temporary file is left behind; the planted `ufm.partial` link is simply not used.
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["kubeconfig", "ufm-ca.pem", "ufm.env", "ufm.partial"]);

    // A second start in the same directory replaces the files the same way.
    let again = RunningSim::start(options(tmp.path())).await.unwrap();
    let env = std::fs::read_to_string(dir.join("ufm.env")).unwrap();
    assert!(env.contains(&again.ufm_env().password) && !env.contains(&password));
    assert_eq!(std::fs::metadata(dir.join("ufm.env")).unwrap().mode() & 0o777, 0o600);
    again.shutdown().await;
    sim.shutdown().await;
}

/// The README's newcomer path on `ib-kubernetes sim --kubelet`, with kubectl and no extra flags:
/// apply the example NAD, create the example pod (which names no node), and watch it be scheduled
/// to a simulated node, configured by the controller and started, `kubectl describe pod` telling
/// each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_runs_the_example_pod_with_kubectl() {
    if !on_path("kubectl") {
        println!("SKIP: kubectl not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sim = RunningSim::start(options(tmp.path())).await.unwrap();
    let kubeconfig = sim.kubeconfig_path();
    let kubectl = |args: &[&str]| {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(&kubeconfig).arg("--cache-dir").arg(tmp.path().join("cache")).args(args);
        command
    };
    let example = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployment/examples").join(name).display().to_string()
    };
    let ok = |out: &Output| {
        assert!(out.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let nodes = ok(&run(&mut kubectl(&["get", "nodes"])).await);
    assert!(nodes.contains("node-01") && nodes.contains("Ready"), "{nodes}");
    let out = ok(&run(&mut kubectl(&["apply", "-f", &example("ib-crd.yaml")])).await);
    assert!(out.contains("created"), "{out}");
    let out = ok(&run(&mut kubectl(&["create", "-f", &example("test-pod.yaml")])).await);
    let name = out.split_whitespace().next().unwrap_or("").trim_start_matches("pod/").to_owned();
    assert!(name.starts_with("my-test-pod-"), "{out}");

    // Before the controller runs, the pod is scheduled but held: the CNI wants a GUID.
    let api = sim.kube().handle();
    common::eventually("held by the CNI", || sim.kubelet().unwrap().waiting_reason("default", &name).is_some()).await;
    let described = ok(&run(&mut kubectl(&["describe", "pod", &name])).await);
    assert!(described.contains("Scheduled") && described.contains("to node-"), "{described}");
    assert!(described.contains("FailedCreatePodSandBox"), "{described}");

    let mut env: ib_sm::EnvMap = sim.ufm_env().variables().into_iter().collect();
    env.set("DAEMON_SM_PLUGIN", "ufm");
    env.set("KUBECONFIG", kubeconfig.display().to_string());
    env.set("ADMIN_ADDRESS", "127.0.0.1:0");
    env.set("POD_NAMESPACE", "kube-system");
    env.set("POD_UID", "newcomer");
    env.set("K8S_NODE", "node-01");
    let config = ib_controller::Config::from_env(&env, None).unwrap();
    let controller = ib_controller::startup::start(config, &env).await.unwrap();
    assert!(sim.kubelet().unwrap().wait_running("default", &name, DEADLINE).await, "the example pod runs");
    let pod = api.get(kube_emulator::Resource::Pods, "default", &name).unwrap();
    let networks = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str().unwrap();
    assert!(networks.contains("\"configured\""), "{networks}");
    let described = ok(&run(&mut kubectl(&["describe", "pod", &name])).await);
    let events = described.split("Events:").nth(1).unwrap_or("");
    assert!(events.contains("Started"), "{described}");
    let pods = ok(&run(&mut kubectl(&["get", "pods", "-o", "wide"])).await);
    assert!(pods.contains(&name) && pods.contains("Running") && pods.contains("node-"), "{pods}");
    controller.shutdown().await;
    sim.shutdown().await;
}
