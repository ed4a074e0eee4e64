//! The exec host against plugins that misbehave in every way the protocol forbids: each is a clear
//! `SmError` of a known kind, the daemon's process is never harmed, and a plugin that recovers is used
//! again. Also what a well-behaved plugin receives: argv, stdin and environment.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use ib_model::{Guid, PKey};
use ib_sm::exec::protocol::MAX_OUTPUT_BYTES;
use ib_sm::{ExecConfig, ExecPlugin, SmError, SubnetManager};

/// Generous bound on any one call of a test, so a broken host fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(120);

/// Answers VERSION correctly; every other command runs `$BODY`.
const VERSION_OK: &str = r#"#!/bin/sh
if [ "$1" = VERSION ]; then echo '{"protocolVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
"#;

/// Every script, by name. They are all written before any test of this binary starts a process, so no
/// forked child can hold a script open for writing when it is executed (ETXTBSY).
fn scripts() -> &'static BTreeMap<&'static str, PathBuf> {
    static SCRIPTS: OnceLock<BTreeMap<&'static str, PathBuf>> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("exec-misbehaving-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let with_version = |body: &str| format!("{VERSION_OK}{body}\n");
        let all: Vec<(&'static str, String)> = vec![
            ("garbage", with_version("echo 'this is not json'")),
            ("not_an_object", with_version("echo '[1,2,3]'")),
            ("silent", with_version("exit 0")),
            ("wrong_result_version", with_version(r#"echo '{"protocolVersion":"0.9.0"}'"#)),
            (
                "wrong_version",
                "#!/bin/sh\necho '{\"protocolVersion\":\"2.0.0\",\"supportedVersions\":[\"2.0.0\",\"3.0.0\"]}'\n"
                    .into(),
            ),
            ("version_garbage", "#!/bin/sh\necho nonsense\n".into()),
            // Never stops writing: the host must stop it after the limit, not wait for the timeout.
            ("huge", with_version("exec yes")),
            // The shell waits for a child in its own process group: both must die at the timeout.
            ("hang", with_version(r#"sleep 1000 & echo $! > "$PID_FILE"; wait"#)),
            ("hang_version", "#!/bin/sh\nexec sleep 1000\n".into()),
            ("crash", with_version("echo 'about to crash' >&2; kill -SEGV $$")),
            ("exit3", with_version("echo 'partial' ; echo 'boom: the SM library failed' >&2; exit 3")),
            (
                "error_json",
                with_version(
                    r#"echo '{"protocolVersion":"1.0.0","code":6,"msg":"UFM refused","details":"status 403"}'; exit 1"#,
                ),
            ),
            ("error_exit0", with_version(r#"echo '{"protocolVersion":"1.0.0","code":5,"msg":"down"}'"#)),
            (
                "bad_list",
                with_version(r#"echo '{"protocolVersion":"1.0.0","memberships":[{"pkey":"0x5","guid":"zz"}]}'"#),
            ),
            // Fails VERSION until a marker file exists, then behaves.
            (
                "recovers",
                r#"#!/bin/sh
if [ ! -e "$MARKER" ]; then echo 'starting up' >&2; exit 1; fi
if [ "$1" = VERSION ]; then echo '{"protocolVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
echo '{"protocolVersion":"1.0.0"}'
"#
                .into(),
            ),
            // Records what it was given.
            (
                "recorder",
                with_version(
                    r#"printf '%s' "$1" > "$OUT_DIR/argv"
cat > "$OUT_DIR/stdin"
printf '%s|%s' "$IBK_EXTRA" "${PATH:+has-path}" > "$OUT_DIR/env"
echo '{"protocolVersion":"1.0.0"}'"#,
                ),
            ),
        ];
        all.into_iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                std::fs::write(&path, text).expect("write script");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
                (name, path)
            })
            .collect()
    })
}

fn plugin(name: &str) -> ExecConfig {
    ExecConfig::new(scripts().get(name).unwrap_or_else(|| panic!("no script {name}")))
}

fn pkey() -> PKey {
    PKey::new(5).expect("pkey")
}

fn guids() -> [Guid; 2] {
    [Guid::from_u64(0x0200_0000_0000_0001), Guid::from_u64(0x0200_0000_0000_0002)]
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f).await.expect("the host ends the call within the deadline")
}

async fn validate_err(config: ExecConfig) -> SmError {
    let sm = ExecPlugin::new(config);
    within(sm.validate()).await.expect_err("validate must fail")
}

fn reason(e: &SmError) -> &str {
    match e {
        SmError::Transport { reason, .. }
        | SmError::Decode { reason, .. }
        | SmError::Tls { reason, .. }
        | SmError::Local { reason, .. } => reason,
        SmError::Config(reason) => reason,
        SmError::Plugin { msg, .. } => msg,
        SmError::Status { body, .. } => body,
        SmError::Timeout { .. } => "",
    }
}

#[tokio::test]
async fn bad_json_is_a_decode_error() {
    for name in ["garbage", "not_an_object", "silent"] {
        let e = validate_err(plugin(name)).await;
        assert!(matches!(e, SmError::Decode { .. }), "{name}: {e:?}");
        assert!(e.to_string().contains("VALIDATE"), "the call is named: {e}");
    }
    let e = validate_err(plugin("garbage")).await;
    assert!(reason(&e).contains("this is not json"), "the output is quoted: {e}");
}

#[tokio::test]
async fn a_result_in_another_protocol_version_is_a_decode_error() {
    let e = validate_err(plugin("wrong_result_version")).await;
    assert!(matches!(e, SmError::Decode { .. }), "{e:?}");
    assert!(reason(&e).contains("0.9.0"), "{e}");
}

#[tokio::test]
async fn no_common_version_is_a_configuration_error_naming_both_lists() {
    let e = validate_err(plugin("wrong_version")).await;
    assert!(matches!(e, SmError::Config(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("2.0.0, 3.0.0") && text.contains("[1.0.0, 1.1.0]"), "{text}");
    let e = validate_err(plugin("version_garbage")).await;
    assert!(matches!(e, SmError::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("VERSION"), "{e}");
}

#[tokio::test]
async fn huge_output_is_refused_without_waiting_for_the_timeout() {
    // The timeout is far beyond the deadline: only the size limit can end this call.
    let e = validate_err(plugin("huge").with_timeout(Duration::from_secs(3600))).await;
    assert!(matches!(e, SmError::Decode { .. }), "{e:?}");
    assert!(reason(&e).contains(&MAX_OUTPUT_BYTES.to_string()), "{e}");
}

#[tokio::test]
async fn a_hang_is_a_timeout_and_the_whole_process_group_is_killed() {
    let pid_file = scripts()["hang"].with_file_name("hang.pid");
    let _ = std::fs::remove_file(&pid_file);
    // Long enough that VERSION and the start of VALIDATE finish first even on a loaded machine.
    let timeout = Duration::from_secs(10);
    let config = plugin("hang").with_timeout(timeout).with_env("PID_FILE", pid_file.display().to_string());
    let e = validate_err(config).await;
    assert!(matches!(e, SmError::Timeout { timeout: t, .. } if t == timeout), "{e:?}");
    // The shell's child was in the plugin's process group, so it was killed too (and reaped by init).
    let pid = std::fs::read_to_string(&pid_file).expect("the plugin wrote its child's pid");
    let proc = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    let start = std::time::Instant::now();
    loop {
        // Gone, or a zombie waiting for init: either way no longer running.
        match std::fs::read_to_string(&proc) {
            Err(_) => break,
            Ok(stat) if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) => break,
            Ok(_) => {}
        }
        assert!(start.elapsed() < DEADLINE, "the plugin's child {} still runs", pid.trim());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = validate_err(plugin("hang_version").with_timeout(Duration::from_secs(2))).await;
    assert!(matches!(e, SmError::Timeout { .. }), "VERSION is timed too: {e:?}");
}

#[tokio::test]
async fn a_crash_is_a_transport_error_with_the_signal_and_stderr() {
    let e = validate_err(plugin("crash")).await;
    assert!(matches!(e, SmError::Transport { .. }), "{e:?}");
    let text = reason(&e);
    assert!(text.contains("signal 11") && text.contains("about to crash"), "{text}");
}

#[tokio::test]
async fn a_failure_without_a_json_error_is_a_transport_error_with_the_status_and_stderr() {
    let e = validate_err(plugin("exit3")).await;
    assert!(matches!(e, SmError::Transport { .. }), "{e:?}");
    let text = reason(&e);
    assert!(text.contains("status 3") && text.contains("boom: the SM library failed"), "{text}");
}

#[tokio::test]
async fn a_json_error_is_a_plugin_error_with_code_and_details() {
    let sm = ExecPlugin::new(plugin("error_json"));
    for e in [
        within(sm.validate()).await.expect_err("validate"),
        within(sm.add_guids(pkey(), &guids())).await.expect_err("add"),
        within(sm.list_guids()).await.expect_err("list"),
    ] {
        assert_eq!(e.label(), "plugin");
        match e {
            SmError::Plugin { code, msg, call, outcome_unknown } => {
                assert_eq!((code, msg.as_str()), (6, "UFM refused: status 403"));
                assert!(call.contains("error_json"), "{call}");
                // Code 6 without `outcomeUnknown`: the plugin may have reached the subnet manager.
                assert!(outcome_unknown);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn an_error_object_with_exit_status_zero_is_refused() {
    let e = validate_err(plugin("error_exit0")).await;
    assert!(matches!(e, SmError::Decode { .. }), "{e:?}");
}

#[tokio::test]
async fn unparsable_guids_in_list_are_a_decode_error() {
    let sm = ExecPlugin::new(plugin("bad_list"));
    let e = within(sm.list_guids()).await.expect_err("list");
    assert!(matches!(e, SmError::Decode { .. }), "{e:?}");
    assert!(reason(&e).contains("zz"), "{e}");
}

#[tokio::test]
async fn a_missing_plugin_is_a_transport_error() {
    let missing = scripts()["garbage"].with_file_name("does-not-exist");
    let e = validate_err(ExecConfig::new(&missing)).await;
    assert!(matches!(e, SmError::Transport { .. }), "{e:?}");
    assert!(reason(&e).contains("does-not-exist"), "{e}");
}

#[tokio::test]
async fn a_failed_version_is_asked_again_and_the_plugin_used_once_it_recovers() {
    let marker = scripts()["recovers"].with_file_name("recovers.ready");
    let _ = std::fs::remove_file(&marker);
    let sm = ExecPlugin::new(plugin("recovers").with_env("MARKER", marker.display().to_string()));
    let e = within(sm.validate()).await.expect_err("not ready yet");
    assert!(matches!(e, SmError::Transport { .. }) && reason(&e).contains("starting up"), "{e:?}");
    std::fs::write(&marker, "").expect("marker");
    within(sm.validate()).await.expect("ready now");
    within(sm.add_guids(pkey(), &guids())).await.expect("add");
}

#[tokio::test]
async fn the_plugin_gets_the_command_the_request_and_the_environment() {
    let out = scripts()["recorder"].with_file_name("recorder-out");
    std::fs::create_dir_all(&out).expect("out dir");
    let sm = ExecPlugin::new(
        plugin("recorder").with_env("OUT_DIR", out.display().to_string()).with_env("IBK_EXTRA", "extra-value"),
    );
    assert_eq!(sm.name(), "recorder");
    within(sm.remove_guids(pkey(), &guids())).await.expect("remove");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).expect(f);
    assert_eq!(read("argv"), "REMOVE");
    let stdin: serde_json::Value = serde_json::from_str(&read("stdin")).expect("stdin is JSON");
    assert_eq!(
        stdin,
        serde_json::json!({"protocolVersion": "1.0.0", "command": "REMOVE", "pkey": "0x0005",
                           "guids": ["02:00:00:00:00:00:00:01", "02:00:00:00:00:00:00:02"]})
    );
    assert_eq!(read("env"), "extra-value|has-path", "extra variables on top of the inherited environment");
}
