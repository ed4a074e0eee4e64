//! The real controller with `DAEMON_SM_PLUGIN=ufm` and `DAEMON_SM_PLUGIN_PATH` holding the `ufm` plugin
//! executable: startup picks the plugin over the built-in, and pods are configured and released through
//! it against the Kubernetes and UFM emulators.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ib_controller::startup::{StartupError, subnet_manager};
use ib_controller::{Config, Controller};
use ib_sm::{EnvMap, ExecConfig, ExecPlugin, SubnetManager};
use kube_emulator::{EmulatorConfig, KubeEmulator, Resource};
use serde_json::{Value, json};
use ufm_emulator::{UfmConfig, UfmEmulator};

const DEADLINE: Duration = Duration::from_secs(120);
const PASSWORD: &str = "plugin-test-password";
const IB5: &str =
    r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"sriov-network","pkey":"0x5","link_state":"enable","ipam":{}}"#;

/// The directory cargo built the plugin into: what `DAEMON_SM_PLUGIN_PATH` would be.
fn plugin_dir() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ufm")).parent().expect("the plugin has a directory")
}

fn env(pairs: &[(&str, &str)]) -> EnvMap {
    pairs.iter().copied().collect()
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn startup_prefers_an_executable_in_the_plugin_path_over_every_builtin() {
    let dir = plugin_dir().display().to_string();
    let ufm_env = [
        ("DAEMON_SM_PLUGIN", "ufm"),
        ("DAEMON_SM_PLUGIN_PATH", dir.as_str()),
        ("UFM_ADDRESS", "127.0.0.1"),
        ("UFM_USERNAME", "admin"),
        ("UFM_PASSWORD", PASSWORD),
        ("K8S_NODE", "n"),
    ];
    let config = Config::from_env(&env(&ufm_env), None).expect("config");
    let sm = subnet_manager(&config).expect("subnet manager");
    assert_eq!(sm.name(), "ufm");
    assert!(format!("{sm:?}").starts_with("ExecPlugin"), "the plugin, not the built-in: {sm:?}");
    assert!(!format!("{sm:?}").contains(PASSWORD), "no credential in Debug");

    // Without an executable of that name, the built-in serves.
    let elsewhere = [("DAEMON_SM_PLUGIN_PATH", "/nonexistent-plugin-dir"), ("DAEMON_SM_PLUGIN", "ufm")];
    let mut e: EnvMap = env(&ufm_env);
    for (k, v) in elsewhere {
        e.set(k, v);
    }
    let builtin = subnet_manager(&Config::from_env(&e, None).expect("config")).expect("built-in");
    assert!(format!("{builtin:?}").starts_with("Ufm"), "{builtin:?}");

    // Any other name must be an executable there; the error says where it looked.
    let other = env(&[("DAEMON_SM_PLUGIN", "acme"), ("DAEMON_SM_PLUGIN_PATH", dir.as_str()), ("K8S_NODE", "n")]);
    match subnet_manager(&Config::from_env(&other, None).expect("config")) {
        Err(e @ StartupError::UnknownPlugin { .. }) => assert!(e.to_string().contains(&dir), "{e}"),
        other => panic!("expected an unknown plugin error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_configured_and_released_through_the_ufm_plugin() {
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.expect("kube emulator");
    let ufm = UfmEmulator::start(UfmConfig::http().with_credentials("admin", PASSWORD)).await.expect("ufm emulator");
    let port = ufm.addr().port().to_string();
    let dir = plugin_dir().display().to_string();
    let settings = [
        ("DAEMON_SM_PLUGIN", "ufm"),
        ("DAEMON_SM_PLUGIN_PATH", dir.as_str()),
        ("UFM_ADDRESS", "127.0.0.1"),
        ("UFM_HTTP_SCHEMA", "http"),
        ("UFM_PORT", port.as_str()),
        ("UFM_USERNAME", "admin"),
        ("UFM_PASSWORD", PASSWORD),
        ("ADMIN_ADDRESS", "127.0.0.1:0"),
        ("K8S_NODE", "control-plane-1"),
        ("POD_UID", "replica-a"),
        ("DAEMON_PERIODIC_UPDATE", "1"),
        ("LEADER_LEASE_DURATION", "4"),
        ("LEADER_RENEW_DEADLINE", "3"),
        ("LEADER_RETRY_PERIOD", "1"),
    ];
    let config = Config::from_env(&env(&settings), None).expect("config");
    // What startup builds, with the UFM_* the daemon's process environment would hold given to the plugin
    // explicitly: the test process's own environment has none.
    assert!(format!("{:?}", subnet_manager(&config).expect("sm")).starts_with("ExecPlugin"));
    let mut plugin = ExecConfig::new(env!("CARGO_BIN_EXE_ufm"));
    for (k, v) in settings.iter().filter(|(k, _)| k.starts_with("UFM_")) {
        plugin = plugin.with_env(*k, *v);
    }
    let sm: Arc<dyn SubnetManager> = Arc::new(ExecPlugin::new(plugin));
    let client = kube::Client::try_from(kube::Config::new(kube.url().parse().expect("url"))).expect("client");
    let controller = Controller::start(config, client, sm).await.expect("controller starts");
    let mut leading = controller.leading();
    tokio::time::timeout(DEADLINE, leading.wait_for(|l| *l)).await.expect("leads in time").expect("leading");

    let api = kube.handle();
    let nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                     "metadata": {"name": "ib", "namespace": "default"}, "spec": {"config": IB5}});
    api.create(Resource::NetworkAttachmentDefinitions, nad).expect("NAD");
    for name in ["a", "b"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": {"k8s.v1.cni.cncf.io/networks": "ib"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Pending"}});
        api.create(Resource::Pods, pod).expect("pod");
    }
    let guid_of = |name: &str| -> Option<String> {
        let pod = api.get(Resource::Pods, "default", name)?;
        let raw = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str()?.to_owned();
        let nets: Value = serde_json::from_str(&raw).ok()?;
        let cni = &nets[0]["cni-args"];
        (cni["mellanox.infiniband.app"] == "configured").then(|| cni["guid"].as_str().map(str::to_owned)).flatten()
    };
    let a = wait_for("pod a configured", || guid_of("a")).await;
    let b = wait_for("pod b configured", || guid_of("b")).await;
    let members: Vec<String> = ufm.handle().members(5).keys().map(|g| g.to_string()).collect();
    assert_eq!(members.len(), 2, "{members:?}");
    assert_ne!(a, b);

    api.delete_with_grace(Resource::Pods, "default", "a", Some(0)).expect("delete");
    wait_for("a's GUID to leave the pkey", || (ufm.handle().members(5).len() == 1).then_some(())).await;
    controller.shutdown().await;
    ufm.shutdown().await;
}
