//! An exec plugin sees only the environment it needs: the `UFM_*` variables, `IB_PLUGIN_*` and its own
//! prefix, `PATH` and the locale; never the daemon's Kubernetes credentials nor anything else.
//!
//! The daemon's environment is the process's own, which a test cannot change (no `unsafe` for
//! `set_var`), so this test runs itself again as a child process with a hostile environment, and the
//! child runs a plugin that writes down what it sees.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ib_sm::{ExecConfig, ExecPlugin, SubnetManager};

const DEADLINE: Duration = Duration::from_secs(120);
const TEST: &str = "the_plugin_sees_only_what_it_needs";
/// Set in the child; names the file the plugin's environment is written to.
const DUMP: &str = "IB_SM_TEST_ENV_DUMP";

/// Runs in the child: a plugin called `acme-sm` that writes its environment, NUL-separated.
async fn child(dump: &Path) {
    let dir = dump.with_extension("dir");
    std::fs::create_dir_all(&dir).expect("dir");
    let script = dir.join("acme-sm");
    std::fs::write(
        &script,
        r#"#!/bin/sh
if [ "$1" = VERSION ]; then echo '{"protocolVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
env -0 > "$IB_PLUGIN_DUMP"
echo '{"protocolVersion":"1.0.0"}'
"#,
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let sm = ExecPlugin::new(ExecConfig::new(&script).with_env("IB_PLUGIN_DUMP", dump.display().to_string()));
    tokio::time::timeout(DEADLINE, sm.validate()).await.expect("in time").expect("validate");
    // What the daemon would log about the plugin: variable names only.
    let shown = format!("{sm:?}");
    assert!(shown.contains("UFM_PASSWORD") && !shown.contains("canary"), "{shown}");
}

#[tokio::test]
async fn the_plugin_sees_only_what_it_needs() {
    if let Some(dump) = std::env::var_os(DUMP) {
        child(Path::new(&dump)).await;
        return;
    }
    let dump = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("exec-environment-{}.env", std::process::id()));
    let _ = std::fs::remove_file(&dump);
    let run = tokio::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(DUMP, &dump)
        .env("KUBECONFIG", "/home/admin/.kube/canary-config")
        .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .env("KUBERNETES_SERVICE_PORT", "443")
        .env("IB_CANARY", "canary-value")
        .env("DAEMON_SM_PLUGIN", "acme-sm")
        .env("UFM_ADDRESS", "ufm.example")
        .env("UFM_USERNAME", "admin")
        .env("UFM_PASSWORD", "canary-password")
        .env("IB_PLUGIN_LOG_LEVEL", "debug")
        .env("ACME_SM_STATE", "/var/lib/acme")
        .env("LANG", "C.UTF-8")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run).await.expect("the child ends").expect("the child runs");
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = std::fs::read(&dump).expect("the plugin wrote its environment");
    let vars: Vec<(String, String)> = seen
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .filter_map(|v| String::from_utf8_lossy(v).split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("UFM_ADDRESS"), Some("ufm.example"));
    assert_eq!(get("UFM_PASSWORD"), Some("canary-password"), "the UFM plugin needs its credentials");
    assert_eq!(get("IB_PLUGIN_LOG_LEVEL"), Some("debug"));
    assert_eq!(get("ACME_SM_STATE"), Some("/var/lib/acme"), "the plugin's own prefix");
    assert_eq!(get("LANG"), Some("C.UTF-8"));
    assert!(get("PATH").is_some());
    for hidden in ["KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "IB_CANARY", DUMP] {
        assert_eq!(get(hidden), None, "{hidden} must not reach the plugin");
    }
    // Everything else the test process had (cargo's variables among them) stays behind too.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    for (name, _) in &vars {
        assert!(!name.starts_with("CARGO"), "{name} reached the plugin");
    }
    let _ = std::fs::remove_file(&dump);
}
