//! Nothing of an exec plugin outlives its call, zombies included: on a timeout, when the call is
//! dropped, and when the plugin exits leaving something behind, its whole process group is killed and
//! reaped. And the call's one timeout covers the wait for a slot and for VERSION too.
//!
//! In the container the daemon is PID 1, so what a plugin started becomes the daemon's child when the
//! plugin dies. This test binary makes itself a child subreaper to be in the same position: a process
//! the host forgot to reap stays a zombie, visible in `/proc`. Alone in its binary because the
//! subreaper attribute is process-wide.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ib_model::{Guid, PKey};
use ib_sm::{ExecConfig, ExecPlugin, SmError, SubnetManager};

/// Generous bound on anything a test waits for, so a broken host fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(60);

const VERSION_OK: &str = r#"#!/bin/sh
if [ "$1" = VERSION ]; then echo '{"protocolVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
"#;

/// Every script, written before any test of this binary starts a process (no forked child can then
/// hold one open for writing when it is executed). Each records its own pid and its child's in
/// `$IB_PLUGIN_OUT`.
fn scripts() -> &'static BTreeMap<&'static str, PathBuf> {
    static SCRIPTS: OnceLock<BTreeMap<&'static str, PathBuf>> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("exec-process-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Written then renamed, so a reader never sees a partial pid.
        let record = r#"echo $$ > "$IB_PLUGIN_OUT/plugin.pid.tmp"
mv "$IB_PLUGIN_OUT/plugin.pid.tmp" "$IB_PLUGIN_OUT/plugin.pid"
sleep 1000 &
echo $! > "$IB_PLUGIN_OUT/child.pid.tmp"; mv "$IB_PLUGIN_OUT/child.pid.tmp" "$IB_PLUGIN_OUT/child.pid"
"#;
        let all: Vec<(&'static str, String)> = vec![
            // Starts a grandchild and hangs waiting for it.
            ("hang", format!("{VERSION_OK}{record}wait\n")),
            // Answers and exits, leaving a grandchild that holds stdout and stderr open.
            ("leaves_child", format!("{VERSION_OK}{record}echo '{{\"protocolVersion\":\"1.0.0\"}}'\n")),
            // Hangs in VERSION already.
            ("hang_version", "#!/bin/sh\nexec sleep 1000\n".into()),
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

/// Becomes a child subreaper (see the module comment) and returns a fresh output directory.
fn setup(test: &str) -> PathBuf {
    scripts();
    rustix::process::set_child_subreaper(rustix::process::Pid::from_raw(1)).expect("PR_SET_CHILD_SUBREAPER");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("exec-process-group-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("out dir");
    out
}

fn plugin(name: &str, out: &Path, timeout: Duration) -> ExecPlugin {
    ExecPlugin::new(
        ExecConfig::new(&scripts()[name]).with_timeout(timeout).with_env("IB_PLUGIN_OUT", out.display().to_string()),
    )
}

fn pkey() -> PKey {
    PKey::new(5).expect("pkey")
}

fn guids() -> [Guid; 1] {
    [Guid::from_u64(0x0200_0000_0000_0001)]
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f).await.expect("the host ends the call within the deadline")
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pid the script recorded in `out/<file>`, once it is there.
async fn recorded(out: &Path, file: &str) -> u32 {
    let path = out.join(file);
    wait_for(file, || std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok())).await
}

/// Waits until `pid` is gone entirely: not running, and not a zombie either (`/proc/<pid>` exists
/// until the process is reaped).
async fn reaped(pid: u32, what: &str) {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    wait_for(&format!("{what} (pid {pid}) to be killed and reaped"), || (!proc.exists()).then_some(())).await;
}

#[tokio::test]
async fn a_timed_out_plugin_leaves_no_process_and_no_zombie() {
    let out = setup("timeout");
    let timeout = Duration::from_secs(3);
    let sm = plugin("hang", &out, timeout);
    let err = within(sm.add_guids(pkey(), &guids())).await.expect_err("the plugin hangs");
    assert!(matches!(err, SmError::Timeout { timeout: t, sent: true, .. } if t == timeout), "{err:?}");
    assert!(err.outcome_unknown(), "the plugin was running: it may have applied the add");
    reaped(recorded(&out, "child.pid").await, "the plugin's child").await;
    reaped(recorded(&out, "plugin.pid").await, "the plugin").await;
}

#[tokio::test]
async fn a_dropped_call_leaves_no_process_and_no_zombie() {
    let out = setup("dropped");
    // Only dropping the call can end it.
    let sm = plugin("hang", &out, Duration::from_secs(3600));
    let guids = guids();
    let mut call = sm.add_guids(pkey(), &guids);
    let child = tokio::select! {
        done = &mut call => panic!("the call ended: {done:?}"),
        child = recorded(&out, "child.pid") => child,
    };
    // The call's future, and with it the running plugin, is gone.
    drop(call);
    reaped(child, "the plugin's child").await;
    reaped(recorded(&out, "plugin.pid").await, "the plugin").await;
}

#[tokio::test]
async fn what_a_plugin_leaves_behind_dies_when_it_exits() {
    let out = setup("leftover");
    // The grandchild holds the plugin's stdout and stderr open; the call still ends when the plugin does.
    let sm = plugin("leaves_child", &out, Duration::from_secs(3600));
    within(sm.add_guids(pkey(), &guids())).await.expect("the plugin answered");
    reaped(recorded(&out, "child.pid").await, "the plugin's child").await;
    reaped(recorded(&out, "plugin.pid").await, "the plugin").await;
}

#[tokio::test]
async fn a_timeout_before_the_command_ran_certainly_applied_nothing() {
    let out = setup("version");
    let sm = plugin("hang_version", &out, Duration::from_secs(2));
    let err = within(sm.add_guids(pkey(), &guids())).await.expect_err("VERSION hangs");
    assert!(matches!(err, SmError::Timeout { sent: false, .. }), "{err:?}");
    assert!(err.to_string().contains("ADD"), "the call is named: {err}");
    assert!(!err.outcome_unknown());
}

#[tokio::test]
async fn waiting_for_a_slot_counts_against_the_one_timeout() {
    let out = setup("slots");
    let timeout = Duration::from_secs(5);
    let sm = Arc::new(plugin("hang", &out, timeout));
    assert_eq!(sm.call_timeout(), timeout, "what the controller bounds its call by");
    // Fill every slot with a hanging plugin.
    let holders: Vec<_> = (0..ib_sm::exec::MAX_CONCURRENT_CALLS)
        .map(|_| {
            let sm = Arc::clone(&sm);
            tokio::spawn(async move { within(sm.add_guids(pkey(), &guids())).await })
        })
        .collect();
    let running = out.join("plugin.pid");
    wait_for("a plugin in a slot", || running.exists().then_some(())).await;
    // This call waits for a slot, then runs; all of it within one timeout, not one for each.
    let started = Instant::now();
    let err = within(sm.add_guids(pkey(), &guids())).await.expect_err("the plugin hangs");
    let elapsed = started.elapsed();
    assert!(matches!(err, SmError::Timeout { .. }), "{err:?}");
    assert!(elapsed < timeout + timeout / 2, "{elapsed:?} for a call whose timeout is {timeout:?}");
    for holder in holders {
        let err = holder.await.expect("task").expect_err("hangs");
        assert!(matches!(err, SmError::Timeout { .. }), "{err:?}");
    }
}
