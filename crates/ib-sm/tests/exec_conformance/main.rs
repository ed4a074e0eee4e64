//! The conformance scenarios against the built-in managers (`noop`, `ufm` against the UFM emulator over
//! HTTP and HTTPS) and against the example plugin of `docs/plugins.md`, run through the exec host exactly
//! as printed in the document. The `noop` and `ufm` plugin executables run the same scenarios in
//! `plugins/*/tests/conformance.rs`.

mod scenarios;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ib_sm::secret::Secret;
use ib_sm::ufm::{Auth, Scheme, TlsTrust, UfmConfig};
use ib_sm::{ExecConfig, ExecPlugin, Noop, SmError, SubnetManager, Ufm};
use scenarios::{Holds, run_all};
use ufm_emulator::{RunningUfm, UfmConfig as EmulatorConfig, UfmEmulator};

fn ufm_client(ufm: &RunningUfm, port: u16) -> Ufm {
    let (scheme, tls) = match ufm.ca_pem() {
        Some(ca) => (Scheme::Https, TlsTrust::Pinned(ca.to_owned())),
        None => (Scheme::Http, TlsTrust::SystemRoots),
    };
    Ufm::new(UfmConfig {
        address: "127.0.0.1".into(),
        scheme,
        port,
        auth: Auth::Basic { username: "admin".into(), password: Secret::new("123456") },
        tls,
        request_timeout: Duration::from_secs(30),
        confirm_applied: true,
    })
    .expect("client builds")
}

#[tokio::test]
async fn builtin_noop() {
    run_all(Arc::new(Noop), Holds::Nothing).await;
}

#[tokio::test]
async fn builtin_ufm_over_http() {
    let ufm = UfmEmulator::start(EmulatorConfig::http()).await.expect("emulator");
    run_all(Arc::new(ufm_client(&ufm, ufm.addr().port())), Holds::Memberships).await;
    assert!(ufm.handle().partitions().keys().all(|p| *p == 0x7fff), "everything removed again");
    ufm.shutdown().await;
}

#[tokio::test]
async fn builtin_ufm_over_https() {
    let ufm = UfmEmulator::start(EmulatorConfig::https()).await.expect("emulator");
    run_all(Arc::new(ufm_client(&ufm, ufm.addr().port())), Holds::Memberships).await;
    ufm.shutdown().await;
}

#[tokio::test]
async fn builtin_ufm_unreachable() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let ufm = UfmEmulator::start(EmulatorConfig::http()).await.expect("emulator");
    let client = ufm_client(&ufm, port);
    for e in scenarios::unreachable(&client).await {
        assert!(matches!(e, SmError::Transport { .. }), "{e:?}");
    }
    ufm.shutdown().await;
}

/// The Python example of docs/plugins.md, written once into a directory of this test binary. Written
/// before any test of this binary starts a process, so no forked child can hold the file open for
/// writing when it is executed (ETXTBSY).
fn example_plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plugins.md"))
            .expect("docs/plugins.md");
        let after = doc.split("<!-- example-plugin -->").nth(1).expect("example marker in docs/plugins.md");
        let code = after
            .split("```python\n")
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .expect("a python block after the marker");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("exec-conformance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("example");
        std::fs::write(&path, format!("{code}\n")).expect("write plugin");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    })
}

#[tokio::test]
async fn documented_example_plugin() {
    let plugin = example_plugin();
    let state = plugin.with_file_name("state.json");
    let sm = ExecPlugin::new(ExecConfig::new(plugin).with_env("EXAMPLE_SM_STATE", state.display().to_string()));
    assert_eq!(sm.version().await.expect("VERSION"), "1.0.0");
    run_all(Arc::new(sm), Holds::Memberships).await;
}

#[tokio::test]
async fn documented_example_plugin_reports_its_configuration_error() {
    // Without EXAMPLE_SM_STATE the example answers code 4 (invalid configuration).
    let sm = ExecPlugin::new(ExecConfig::new(example_plugin()).with_env("EXAMPLE_SM_STATE", ""));
    match sm.validate().await {
        Err(SmError::Plugin { code: 4, msg, .. }) => assert!(msg.contains("EXAMPLE_SM_STATE"), "{msg}"),
        other => panic!("expected a plugin error 4, got {other:?}"),
    }
}

/// A site file as people write them: comments, odd whitespace, a partition of a P_Key the scenarios
/// use, one named like ours, no newline at the end.
pub const OPENSM_SITE: &str = "# site\nDefault=0x7fff, ipoib : ALL=full ;\n  p11 = 0x0011 ,ipoib:\n\t0x0002c90300000001=full ; # same key as a scenario\nib-kubernetes-0x0A30=0x0a30 : SELF=full ;";

#[tokio::test]
async fn builtin_opensm_keeping_the_site_file_byte_for_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("partitions.conf");
    std::fs::write(&path, OPENSM_SITE).expect("site file");
    let reloads = dir.path().join("reloads");
    let reload = ib_sm::opensm::Reload::Command(vec![
        "sh".into(),
        "-c".into(),
        "echo reload >> \"$0\"".into(),
        reloads.display().to_string(),
    ]);
    let sm = Arc::new(ib_sm::OpenSm::new(ib_sm::opensm::OpenSmConfig::new(&path, reload)));
    run_all(Arc::clone(&sm) as Arc<dyn SubnetManager>, Holds::Memberships).await;
    let text = std::fs::read_to_string(&path).expect("read back");
    assert_eq!(
        text,
        format!(
            "{OPENSM_SITE}\n{}\n{}\n",
            ib_sm::opensm::partitions::BEGIN_MARKER,
            ib_sm::opensm::partitions::END_MARKER
        ),
        "everything removed again, the site's text untouched"
    );
    let stats = sm.stats();
    assert!(stats.reloads >= 1 && stats.reloads <= stats.batches, "{stats:?}");
}

#[tokio::test]
async fn builtin_opensm_unreachable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ib_sm::opensm::OpenSmConfig::new(
        dir.path().join("missing/partitions.conf"),
        ib_sm::opensm::Reload::PidFile(dir.path().join("opensm.pid")),
    );
    for e in scenarios::unreachable(&ib_sm::OpenSm::new(config)).await {
        assert!(matches!(e, SmError::Local { outcome_unknown: false, .. }), "{e:?}");
    }
}

/// The documented example speaks 1.0.0 only: an add with partition options is refused before the
/// plugin runs (it would make the GUID a full member), the same add with the default options is the
/// 1.0.0 ADD it always was.
#[tokio::test]
async fn a_1_0_0_plugin_is_never_sent_options_it_would_ignore() {
    use ib_model::partition::{Membership, PartitionOptions};
    let plugin = example_plugin();
    let state = plugin.with_file_name("state-options.json");
    let sm = ExecPlugin::new(ExecConfig::new(plugin).with_env("EXAMPLE_SM_STATE", state.display().to_string()));
    let pkey = ib_model::PKey::new(0x44).expect("pkey");
    let guid = ib_model::Guid::from_u64(0x0200_0000_0000_0044);
    let limited = PartitionOptions { membership: Membership::Limited, ..PartitionOptions::default() };
    let e = sm.add_guids_with(pkey, &[guid], &limited).await.unwrap_err();
    assert!(matches!(&e, SmError::Config(msg) if msg.contains("1.0.0") && msg.contains("0x0044")), "{e:?}");
    assert!(!e.outcome_unknown());
    assert!(!sm.list_guids().await.expect("LIST").iter().any(|(_, g)| *g == guid), "nothing was added");
    sm.add_guids_with(pkey, &[guid], &PartitionOptions::default()).await.expect("plain ADD");
    assert!(sm.list_guids().await.expect("LIST").iter().any(|(_, g)| *g == guid));
    sm.remove_guids(pkey, &[guid]).await.expect("REMOVE");
}
