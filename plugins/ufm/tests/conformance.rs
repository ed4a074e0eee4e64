//! The conformance scenarios against the `ufm` plugin executable, through the daemon's exec host, talking
//! to the UFM emulator over HTTP and HTTPS: the same scenarios the built-in `ufm` passes.

#[path = "../../../crates/ib-sm/tests/exec_conformance/scenarios.rs"]
mod scenarios;

use std::sync::Arc;

use ib_sm::{ExecConfig, ExecPlugin, SmError, SubnetManager};
use scenarios::{Holds, run_all};
use ufm_emulator::{RunningUfm, UfmConfig, UfmEmulator};

/// The plugin configured, through its environment, for `ufm` at `port` with `password`.
fn plugin(ufm: &RunningUfm, port: u16, password: &str) -> ExecPlugin {
    let mut config = ExecConfig::new(env!("CARGO_BIN_EXE_ufm"))
        .with_env("UFM_ADDRESS", "127.0.0.1")
        .with_env("UFM_PORT", port.to_string())
        .with_env("UFM_USERNAME", "admin")
        .with_env("UFM_PASSWORD", password);
    config = match ufm.ca_pem() {
        Some(ca) => config.with_env("UFM_HTTP_SCHEMA", "https").with_env("UFM_CERTIFICATE", ca),
        None => config.with_env("UFM_HTTP_SCHEMA", "http"),
    };
    ExecPlugin::new(config)
}

#[tokio::test]
async fn ufm_plugin_conforms_over_http() {
    let ufm = UfmEmulator::start(UfmConfig::http()).await.expect("emulator");
    let sm = plugin(&ufm, ufm.addr().port(), "123456");
    assert_eq!(sm.name(), "ufm");
    run_all(Arc::new(sm), Holds::Memberships).await;
    assert!(ufm.handle().partitions().keys().all(|p| *p == 0x7fff), "everything removed again");
    ufm.shutdown().await;
}

#[tokio::test]
async fn ufm_plugin_conforms_over_https_trusting_exactly_ufm_certificate() {
    let ufm = UfmEmulator::start(UfmConfig::https()).await.expect("emulator");
    run_all(Arc::new(plugin(&ufm, ufm.addr().port(), "123456")), Holds::Memberships).await;
    ufm.shutdown().await;
}

#[tokio::test]
async fn ufm_plugin_writes_what_the_builtin_writes() {
    let ufm = UfmEmulator::start(UfmConfig::http()).await.expect("emulator");
    let sm = plugin(&ufm, ufm.addr().port(), "123456");
    let guid = ib_model::Guid::from_u64(0x0200_0ff0_00ff_0009);
    sm.add_guids(ib_model::PKey::new(0xa30).expect("pkey"), &[guid]).await.expect("add");
    // The partition as UFM names it, the GUID as UFM lists it: the Go plugin's wire format.
    assert_eq!(sm.list_guids().await.expect("list"), [("0xa30".to_owned(), guid)]);
    assert_eq!(ufm.handle().members(0xa30).len(), 1);
    ufm.shutdown().await;
}

#[tokio::test]
async fn ufm_plugin_reports_refusal_unreachability_and_missing_configuration_by_code() {
    let ufm = UfmEmulator::start(UfmConfig::http()).await.expect("emulator");
    // Wrong password: UFM answers 401, the plugin reports code 6 (refused).
    let e = plugin(&ufm, ufm.addr().port(), "wrong").validate().await.expect_err("refused");
    assert!(matches!(e, SmError::Plugin { code: 6, .. }), "{e:?}");
    assert!(!e.to_string().contains("wrong"), "no credential in the error: {e}");

    // Nothing listens: code 5 (unreachable) on every call.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    for e in scenarios::unreachable(&plugin(&ufm, port, "123456")).await {
        assert!(matches!(e, SmError::Plugin { code: 5, .. }), "{e:?}");
    }

    // No UFM_* (empty means unset, whatever the test's own environment holds): code 4, naming them.
    let mut bare = ExecConfig::new(env!("CARGO_BIN_EXE_ufm"));
    for key in ["UFM_ADDRESS", "UFM_USERNAME", "UFM_PASSWORD", "UFM_TOKEN"] {
        bare = bare.with_env(key, "");
    }
    let bare = ExecPlugin::new(bare);
    match bare.validate().await {
        Err(SmError::Plugin { code: 4, msg, .. }) => assert!(msg.contains("UFM_ADDRESS"), "{msg}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    ufm.shutdown().await;
}

/// The plugin speaks 1.1.0: partition options reach UFM through it as through the built-in.
#[tokio::test]
async fn ufm_plugin_carries_partition_options() {
    use ib_model::partition::{Membership, MtuLimit, PartitionOptions, Qos, RateLimit};
    let ufm = UfmEmulator::start(UfmConfig::http()).await.expect("emulator");
    let sm = plugin(&ufm, ufm.addr().port(), "123456");
    assert_eq!(sm.version().await.expect("VERSION"), "1.1.0");
    let qos =
        Qos { mtu_limit: MtuLimit::Mtu4K, service_level: 4, rate_limit: RateLimit::from_gbps(200.0).expect("rate") };
    let options = PartitionOptions { membership: Membership::Limited, index0: false, ip_over_ib: true, qos: Some(qos) };
    let guid = ib_model::Guid::from_u64(0x0200_0000_0000_0031);
    sm.add_guids_with(ib_model::PKey::new(0x31).expect("pkey"), &[guid], &options).await.expect("add");
    let partition = ufm.handle().partition(0x31).expect("created");
    let member = partition.members[&ufm_emulator::Guid::from(guid.as_u64())];
    assert_eq!((member.membership, member.index0), (ufm_emulator::Membership::Limited, false));
    assert_eq!((partition.qos.mtu_limit, partition.qos.service_level, partition.qos.rate_limit), (4, 4, 200.0));
    ufm.shutdown().await;
}
