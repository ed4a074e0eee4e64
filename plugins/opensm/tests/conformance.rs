//! The conformance scenarios against the `opensm` plugin executable, through the daemon's exec host,
//! with a site's partitions file: the same scenarios the built-in `opensm` passes, and the same file.

#[path = "../../../crates/ib-sm/tests/exec_conformance/scenarios.rs"]
mod scenarios;

use std::path::Path;
use std::sync::Arc;

use ib_sm::{ExecConfig, ExecPlugin, SmError, SubnetManager};
use scenarios::{Holds, run_all};

const SITE: &str = "# site\nDefault=0x7fff, ipoib : ALL=full ;\n  p11 = 0x0011 ,ipoib:\n\t0x0002c90300000001=full ;";

fn plugin(dir: &Path) -> ExecPlugin {
    ExecPlugin::new(
        ExecConfig::new(env!("CARGO_BIN_EXE_opensm"))
            .with_env("OPENSM_PARTITIONS_FILE", dir.join("partitions.conf").display().to_string())
            .with_env("OPENSM_RELOAD_COMMAND", "true")
            .with_env("OPENSM_PID_FILE", ""),
    )
}

#[tokio::test]
async fn opensm_plugin_conforms_and_writes_what_the_builtin_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("partitions.conf");
    std::fs::write(&path, SITE).expect("site file");
    let sm = plugin(dir.path());
    assert_eq!(sm.name(), "opensm");
    run_all(Arc::new(plugin(dir.path())), Holds::Memberships).await;

    // The same text as the built-in writes for the same memberships.
    let guid = ib_model::Guid::from_u64(0x0200_0ff0_00ff_0009);
    let pkey = ib_model::PKey::new(0xa30).expect("pkey");
    sm.add_guids(pkey, &[guid]).await.expect("add");
    let by_plugin = std::fs::read(&path).expect("read");
    let builtin_dir = tempfile::tempdir().expect("temp dir");
    let builtin_path = builtin_dir.path().join("partitions.conf");
    std::fs::write(&builtin_path, SITE).expect("site file");
    let builtin = ib_sm::OpenSm::new(ib_sm::opensm::OpenSmConfig::new(
        &builtin_path,
        ib_sm::opensm::Reload::Command(vec!["true".into()]),
    ));
    builtin.add_guids(pkey, &[guid]).await.expect("built-in add");
    assert_eq!(
        String::from_utf8_lossy(&by_plugin),
        String::from_utf8_lossy(&std::fs::read(&builtin_path).expect("read"))
    );
    assert_eq!(sm.list_guids().await.expect("list"), [("0x0A30".to_owned(), guid)]);
    assert!(by_plugin.starts_with(SITE.as_bytes()));
}

#[tokio::test]
async fn opensm_plugin_reports_refusal_and_configuration_by_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No partitions file: refused (code 6), certainly not applied.
    let e = plugin(dir.path()).add_guids(ib_model::PKey::new(5).expect("pkey"), &[ib_model::Guid::from_u64(1)]).await;
    match e {
        Err(SmError::Plugin { code: 6, msg, outcome_unknown: false, .. }) => {
            assert!(msg.contains("partitions.conf"), "{msg}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A bad variable: code 4, naming it and its value.
    let bad = ExecPlugin::new(
        ExecConfig::new(env!("CARGO_BIN_EXE_opensm"))
            .with_env("OPENSM_MEMBERSHIP", "both")
            .with_env("OPENSM_PID_FILE", ""),
    );
    match bad.validate().await {
        Err(SmError::Plugin { code: 4, msg, .. }) => {
            assert!(msg.contains("OPENSM_MEMBERSHIP") && msg.contains("both"), "{msg}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}
