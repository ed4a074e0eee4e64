//! The conformance scenarios against the `noop` plugin executable, through the daemon's exec host.

#[path = "../../../crates/ib-sm/tests/exec_conformance/scenarios.rs"]
mod scenarios;

use std::sync::Arc;

use ib_sm::{ExecConfig, ExecPlugin, SubnetManager};
use scenarios::{Holds, run_all};

fn plugin() -> ExecPlugin {
    ExecPlugin::new(ExecConfig::new(env!("CARGO_BIN_EXE_noop")))
}

#[tokio::test]
async fn noop_plugin_conforms() {
    let sm = plugin();
    assert_eq!(sm.version().await.expect("VERSION"), "1.1.0");
    assert_eq!(sm.name(), "noop");
    run_all(Arc::new(sm), Holds::Nothing).await;
}

#[test]
fn noop_plugin_answers_by_hand_and_refuses_unknown_commands() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let run = |arg: &str, stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_noop"))
            .arg(arg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("plugin starts");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("plugin ends");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
        (out.status.code(), json)
    };
    // VERSION needs no request at all, so a person can try a plugin with `</dev/null`.
    let (code, json) = run("VERSION", "");
    assert_eq!((code, json["supportedVersions"][0].as_str()), (Some(0), Some("1.0.0")));
    let (code, json) = run("FROB", "{}");
    assert_eq!((code, json["code"].as_u64()), (Some(1), Some(2)));
    let (code, json) = run("ADD", r#"{"protocolVersion":"1.0.0","command":"ADD","pkey":"0x0005","guids":[]}"#);
    assert_eq!((code, json), (Some(0), serde_json::json!({"protocolVersion": "1.0.0"})));
}
