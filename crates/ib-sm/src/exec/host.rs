//! The daemon's side of the exec protocol: runs the plugin once per call and trusts nothing it prints.
//!
//! How each misbehaviour surfaces (the controller retries all of them like any subnet-manager failure):
//!
//! | plugin does | error |
//! |---|---|
//! | cannot be started (missing, not executable) | [`SmError::Transport`] |
//! | overruns the timeout (hangs) | [`SmError::Timeout`]; its process group is killed |
//! | prints more than [`MAX_OUTPUT_BYTES`] | [`SmError::Decode`]; its process group is killed |
//! | exits 0 with anything but the command's result (bad JSON, wrong `protocolVersion`, error object) | [`SmError::Decode`] |
//! | exits non-zero with a JSON error | [`SmError::Plugin`] with its `code` and `msg` |
//! | exits non-zero without one, or dies by a signal | [`SmError::Transport`], with an excerpt of its stderr |
//! | VERSION names no version this daemon speaks | [`SmError::Config`] |

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ib_model::{Guid, PKey};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OnceCell, Semaphore};
use tracing::{debug, warn};

use super::protocol::{
    Command, EmptyResult, ErrorResult, ListResult, MAX_OUTPUT_BYTES, PROTOCOL_VERSION, Request, SUPPORTED_VERSIONS,
    VersionResult, negotiate, parse_guid,
};
use crate::manager::{BODY_EXCERPT_BYTES, BoxFuture, SmError, SubnetManager, excerpt};

/// Time one call may take, start to exit. Longer than the UFM plugin's own request timeout (30 s by
/// default), so that a plugin that times out itself reports its own, more precise, error first.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Plugin processes running at once. The controller may issue calls for many partitions together; a
/// bound keeps a burst from forking hundreds of processes (later calls wait for a slot, untimed).
pub const MAX_CONCURRENT_CALLS: usize = 8;

/// How much of stderr is kept for error messages; the rest is read and dropped so the plugin never blocks.
const STDERR_KEEP_BYTES: usize = 16 * 1024;

/// How to run one plugin.
#[derive(Clone)]
pub struct ExecConfig {
    /// The executable.
    pub path: PathBuf,
    /// Time one call may take before the plugin is killed.
    pub timeout: Duration,
    /// Variables set for the plugin on top of the daemon's own environment, which it inherits.
    pub env: Vec<(String, String)>,
}

impl ExecConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ExecConfig { path: path.into(), timeout: DEFAULT_TIMEOUT, env: Vec::new() }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Variable names only: the values may be credentials.
impl std::fmt::Debug for ExecConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecConfig")
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish()
    }
}

/// A subnet manager implemented by an executable speaking the exec protocol.
#[derive(Debug)]
pub struct ExecPlugin {
    name: String,
    config: ExecConfig,
    /// The version agreed through VERSION; asked once, before the first other call, and kept once known.
    version: OnceCell<&'static str>,
    slots: Semaphore,
}

/// What one run of the plugin left behind.
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl ExecPlugin {
    /// The plugin's name in log lines is its file name (`DAEMON_SM_PLUGIN`).
    pub fn new(config: ExecConfig) -> Self {
        let name = config
            .path
            .file_name()
            .map_or_else(|| config.path.display().to_string(), |n| n.to_string_lossy().into_owned());
        ExecPlugin { name, config, version: OnceCell::new(), slots: Semaphore::new(MAX_CONCURRENT_CALLS) }
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Runs VERSION (once; a failure is asked again next time) and returns the protocol version both sides
    /// speak.
    pub async fn version(&self) -> Result<&'static str, SmError> {
        self.version.get_or_try_init(|| self.negotiate()).await.copied()
    }

    async fn negotiate(&self) -> Result<&'static str, SmError> {
        let call = self.call_name(Command::Version);
        let request = Request::plain(PROTOCOL_VERSION, Command::Version);
        let result: VersionResult = self.call(Command::Version, &request, None).await?;
        let agreed = negotiate(&result.supported_versions).ok_or_else(|| {
            SmError::Config(format!(
                "{call}: the plugin speaks protocol versions [{}], this daemon speaks [{}]",
                result.supported_versions.join(", "),
                SUPPORTED_VERSIONS.join(", ")
            ))
        })?;
        debug!(plugin = %self.name, version = agreed, "exec plugin protocol version agreed");
        Ok(agreed)
    }

    fn call_name(&self, command: Command) -> String {
        format!("exec plugin {} {command}", self.config.path.display())
    }

    /// One call: runs the plugin and decodes its result as `T`, which must carry `protocolVersion` equal
    /// to `version` (VERSION passes `None`: its reply is what tells the version).
    async fn call<T: DeserializeOwned>(
        &self,
        command: Command,
        request: &Request,
        version: Option<&str>,
    ) -> Result<T, SmError> {
        let call = self.call_name(command);
        let input = serde_json::to_vec(request)
            .map_err(|e| SmError::Decode { call: call.clone(), reason: format!("cannot encode the request: {e}") })?;
        let started = Instant::now();
        let output = self.run(&call, command, input).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        debug!(plugin = %self.name, %command, elapsed_ms = started.elapsed().as_millis() as u64,
               status = %output.status, stderr = %excerpt(stderr.trim(), BODY_EXCERPT_BYTES), "exec plugin call");
        if !output.status.success() {
            return Err(failure(&call, output.status, &output.stdout, &stderr));
        }
        decode(&call, &output.stdout, version)
    }

    /// Starts the plugin, feeds it `input`, collects its output within the timeout and the size limit.
    async fn run(&self, call: &str, command: Command, input: Vec<u8>) -> Result<Output, SmError> {
        // The semaphore is never closed, so acquiring only waits.
        let _slot = self.slots.acquire().await.map_err(|e| SmError::Transport {
            call: call.to_owned(),
            reason: format!("no slot to run the plugin: {e}"),
        })?;
        let mut cmd = tokio::process::Command::new(&self.config.path);
        cmd.arg(command.as_str())
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the call (controller shutdown, a cancelled task) must not leave the plugin running.
            .kill_on_drop(true)
            // Its own process group, so that a timeout also kills whatever the plugin started (a shell
            // plugin's `curl`), which would otherwise keep the output pipe open.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| SmError::Transport {
            call: call.to_owned(),
            reason: format!("cannot start {}: {e}", self.config.path.display()),
        })?;
        let pid = child.id();
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(pid);
            return Err(SmError::Transport { call: call.to_owned(), reason: "the plugin's pipes are missing".into() });
        };

        let write = async move {
            // A plugin may exit without reading its request (VERSION usually does): a broken pipe is
            // not an error of the call, what the plugin prints decides.
            if let Err(e) = stdin.write_all(&input).await {
                debug!(error = %e, "exec plugin did not read its whole request");
            }
            drop(stdin);
        };
        let read_stderr = read_capped(stderr, STDERR_KEEP_BYTES);
        let collect = async {
            let mut stdout_buf = Vec::new();
            let read = stdout.take(MAX_OUTPUT_BYTES as u64 + 1).read_to_end(&mut stdout_buf).await;
            let oversized = stdout_buf.len() > MAX_OUTPUT_BYTES;
            if oversized {
                // It may still be writing: stop it now rather than waiting for the timeout.
                kill_group(pid);
                let _ = child.start_kill();
            }
            (read, oversized, stdout_buf, child.wait().await)
        };
        let work = async { tokio::join!(write, read_stderr, collect) };
        let ((), stderr_buf, (read, oversized, stdout_buf, status)) =
            match tokio::time::timeout(self.config.timeout, work).await {
                Ok(done) => done,
                Err(_) => {
                    kill_group(pid);
                    let _ = child.start_kill();
                    // Reap it so no zombie is left; it was just killed, so this is quick.
                    let _ = child.wait().await;
                    warn!(plugin = %self.name, %command, timeout_s = self.config.timeout.as_secs_f64(),
                          "exec plugin overran its time and was killed");
                    return Err(SmError::Timeout { call: call.to_owned(), timeout: self.config.timeout });
                }
            };
        if oversized {
            return Err(SmError::Decode {
                call: call.to_owned(),
                reason: format!("the plugin printed more than {MAX_OUTPUT_BYTES} bytes; it was killed"),
            });
        }
        read.map_err(|e| SmError::Transport {
            call: call.to_owned(),
            reason: format!("reading the plugin's output: {e}"),
        })?;
        let status = status.map_err(|e| SmError::Transport {
            call: call.to_owned(),
            reason: format!("waiting for the plugin: {e}"),
        })?;
        Ok(Output { status, stdout: stdout_buf, stderr: stderr_buf })
    }

    async fn membership(&self, command: Command, pkey: PKey, guids: &[Guid]) -> Result<(), SmError> {
        let version = self.version().await?;
        let request = Request::membership(version, command, pkey, guids);
        let _: EmptyResult = self.call(command, &request, Some(version)).await?;
        Ok(())
    }
}

/// Reads up to `keep` bytes and discards the rest until end of file, so the writer never blocks.
async fn read_capped(mut reader: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// Kills the plugin's process group (the plugin and anything it started). The group still exists: the
/// plugin has not been reaped yet, so its id cannot have been reused.
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) else {
        return;
    };
    // Already gone is fine: that is what we want.
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// The error for a plugin that exited unsuccessfully.
fn failure(call: &str, status: ExitStatus, stdout: &[u8], stderr: &str) -> SmError {
    use std::os::unix::process::ExitStatusExt;
    if let Ok(error) = serde_json::from_slice::<ErrorResult>(stdout) {
        return SmError::Plugin {
            call: call.to_owned(),
            code: error.code,
            msg: excerpt(&error.message(), BODY_EXCERPT_BYTES),
        };
    }
    let how = match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("the plugin was killed by signal {signal}"),
        (Some(code), None) => format!("the plugin exited with status {code} without a JSON error on stdout"),
        (None, None) => format!("the plugin ended abnormally ({status})"),
    };
    let stderr = stderr.trim();
    let reason = if stderr.is_empty() {
        how
    } else {
        // The end of stderr is where a crash reports itself.
        format!("{how}; stderr: {}", tail(stderr, BODY_EXCERPT_BYTES))
    };
    SmError::Transport { call: call.to_owned(), reason }
}

/// The last `max` bytes of `text`, cut at a character boundary, marked with `…` when cut.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// Decodes a successful call's stdout as `T`, checking the protocol version when `version` is given.
fn decode<T: DeserializeOwned>(call: &str, stdout: &[u8], version: Option<&str>) -> Result<T, SmError> {
    let bad = |reason: String| SmError::Decode { call: call.to_owned(), reason };
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the plugin exited 0 and printed nothing; a result object was expected".into()));
    }
    let value: Value = serde_json::from_slice(stdout).map_err(|e| {
        bad(format!("not JSON ({e}): {}", excerpt(String::from_utf8_lossy(stdout).trim(), BODY_EXCERPT_BYTES)))
    })?;
    let Some(object) = value.as_object() else {
        return Err(bad(format!(
            "a JSON object was expected, got {}",
            excerpt(&value.to_string(), BODY_EXCERPT_BYTES)
        )));
    };
    if object.contains_key("code") && object.contains_key("msg") {
        // Errors must come with a non-zero exit; reporting one as success would hide a failure.
        return Err(bad(format!(
            "the plugin exited 0 but printed an error object: {}",
            excerpt(&value.to_string(), BODY_EXCERPT_BYTES)
        )));
    }
    if let Some(expected) = version {
        match object.get("protocolVersion").and_then(Value::as_str) {
            Some(got) if got == expected => {}
            Some(got) => return Err(bad(format!("protocolVersion {got:?}, expected {expected:?}"))),
            None => return Err(bad(format!("protocolVersion missing, expected {expected:?}"))),
        }
    }
    serde_json::from_value(value).map_err(|e| bad(format!("not a valid result: {e}")))
}

impl SubnetManager for ExecPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> BoxFuture<'_, Result<(), SmError>> {
        Box::pin(async move {
            let version = self.version().await?;
            let request = Request::plain(version, Command::Validate);
            let _: EmptyResult = self.call(Command::Validate, &request, Some(version)).await?;
            Ok(())
        })
    }

    fn add_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> BoxFuture<'a, Result<(), SmError>> {
        Box::pin(self.membership(Command::Add, pkey, guids))
    }

    fn remove_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> BoxFuture<'a, Result<(), SmError>> {
        Box::pin(self.membership(Command::Remove, pkey, guids))
    }

    fn list_guids(&self) -> BoxFuture<'_, Result<Vec<(String, Guid)>, SmError>> {
        Box::pin(async move {
            let version = self.version().await?;
            let request = Request::plain(version, Command::List);
            let result: ListResult = self.call(Command::List, &request, Some(version)).await?;
            let call = self.call_name(Command::List);
            result
                .memberships
                .into_iter()
                .map(|m| {
                    if m.pkey.is_empty() {
                        return Err(SmError::Decode {
                            call: call.clone(),
                            reason: "a membership has an empty pkey".into(),
                        });
                    }
                    let guid = parse_guid(&m.guid).map_err(|reason| SmError::Decode { call: call.clone(), reason })?;
                    Ok((m.pkey, guid))
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_checks_shape_and_version() {
        let ok: EmptyResult = decode("c", br#"{"protocolVersion":"1.0.0"}"#, Some("1.0.0")).unwrap();
        assert_eq!(ok.protocol_version, "1.0.0");
        let kind = |out: &[u8]| decode::<EmptyResult>("c", out, Some("1.0.0")).unwrap_err();
        for out in [&b""[..], b"  \n", b"garbage", b"[1]", br#"{"protocolVersion":"9.9.9"}"#, b"{}"] {
            assert!(matches!(kind(out), SmError::Decode { .. }), "{}", String::from_utf8_lossy(out));
        }
        let err = kind(br#"{"protocolVersion":"1.0.0","code":5,"msg":"down"}"#);
        assert!(err.to_string().contains("exited 0 but printed an error"), "{err}");
    }

    #[test]
    fn tails_cut_at_char_boundaries() {
        assert_eq!(tail("short", 10), "short");
        assert_eq!(tail(&"é".repeat(10), 5), "…éé");
    }

    #[test]
    fn config_debug_hides_values() {
        let c = ExecConfig::new("/plugins/x").with_env("UFM_PASSWORD", "hunter2");
        let shown = format!("{c:?}");
        assert!(shown.contains("UFM_PASSWORD") && !shown.contains("hunter2"), "{shown}");
    }
}

/// Fuzzing of what a plugin may print: arbitrary bytes and arbitrary JSON decode to a result or to a
/// clear error, never a panic. The case count follows `PROPTEST_CASES` (default 2,000).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000)
    }

    fn json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("protocolVersion".to_owned()),
            Just("memberships".to_owned()),
            Just("pkey".to_owned()),
            Just("guid".to_owned()),
            Just("code".to_owned()),
            Just("msg".to_owned()),
            "[a-zA-Z]{1,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            Just(serde_json::json!(PROTOCOL_VERSION)),
            "[0-9a-fA-F:.x-]{0,24}".prop_map(Value::String),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn plugin_output_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), v in json()) {
            for out in [bytes, v.to_string().into_bytes()] {
                let _ = decode::<ListResult>("LIST", &out, Some(PROTOCOL_VERSION));
                let _ = decode::<EmptyResult>("ADD", &out, Some(PROTOCOL_VERSION));
                let _ = decode::<VersionResult>("VERSION", &out, None);
                let _ = serde_json::from_slice::<ErrorResult>(&out);
            }
        }

        /// A decoded LIST result names only memberships that were in the output.
        #[test]
        fn decoded_lists_come_from_the_output(v in json()) {
            if let Ok(list) = decode::<ListResult>("LIST", v.to_string().as_bytes(), Some(PROTOCOL_VERSION)) {
                prop_assert_eq!(v["memberships"].as_array().map_or(0, Vec::len), list.memberships.len());
            }
        }
    }
}
