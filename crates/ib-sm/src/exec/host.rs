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
//!
//! Every text a plugin controls (its error message, stderr, stdout quoted in an error) is scrubbed of
//! the credentials in the plugin's environment before it reaches an error or a log line.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ib_model::partition::PartitionOptions;
use ib_model::{Guid, PKey};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OnceCell, Semaphore};
use tracing::{debug, warn};

use super::environment;
use super::process::Run;
use super::protocol::{
    Command, EmptyResult, ListResult, MAX_OUTPUT_BYTES, PROTOCOL_VERSION, Request, SUPPORTED_VERSIONS, VersionResult,
    negotiate, parse_guid,
};
use crate::manager::{BODY_EXCERPT_BYTES, BoxFuture, SmCall, SmError, SubnetManager, excerpt};
use crate::redact::Redactor;
use output::{decode, failure, quoted, read_tail, tail};

/// Time one call may take, from the call to its result: the wait for a slot, the VERSION call that
/// precedes the first call, and the plugin's run. Longer than the UFM plugin's own request timeout (30 s
/// by default), so that a plugin that times out itself reports its own, more precise, error first.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Plugin processes running at once. The controller may issue calls for many partitions together; a
/// bound keeps a burst from forking hundreds of processes (later calls wait for a slot, within their
/// timeout).
pub const MAX_CONCURRENT_CALLS: usize = 8;

/// How much of the end of stderr is kept for error messages; the rest is read and dropped so the plugin
/// never blocks.
const STDERR_KEEP_BYTES: usize = 16 * 1024;

/// How to run one plugin.
#[derive(Clone)]
pub struct ExecConfig {
    /// The executable.
    pub path: PathBuf,
    /// Time one call may take, slot wait and VERSION included, before it fails and the plugin is killed.
    pub timeout: Duration,
    /// Variables set for the plugin on top of those it inherits from the daemon's environment (only
    /// those [`environment::is_inherited`] allows).
    pub env: Vec<(String, String)>,
}

impl ExecConfig {
    /// The plugin at `path`, with the default call timeout and no extra variables.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ExecConfig { path: path.into(), timeout: DEFAULT_TIMEOUT, env: Vec::new() }
    }

    /// The same, with calls bounded by `timeout` instead.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same, with `key=value` also set for the plugin.
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
pub struct ExecPlugin {
    name: String,
    config: ExecConfig,
    /// Exactly the plugin's environment: what it inherits, then [`ExecConfig::env`].
    env: Vec<(String, String)>,
    /// The credentials of `env`, kept out of every error and log line.
    redactor: Redactor,
    /// The version agreed through VERSION; asked once, before the first other call, and kept once known.
    version: OnceCell<&'static str>,
    slots: Semaphore,
}

/// What one run of the plugin left behind.
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    /// The end of stderr; `stderr_cut` when earlier output was dropped.
    stderr: Vec<u8>,
    stderr_cut: bool,
}

impl ExecPlugin {
    /// The plugin's name in log lines is its file name (`DAEMON_SM_PLUGIN`). Its environment is taken
    /// from the daemon's now.
    pub fn new(config: ExecConfig) -> Self {
        let name = config
            .path
            .file_name()
            .map_or_else(|| config.path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut env = environment::inherited(&name, environment::process_vars());
        for (key, value) in &config.env {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        let redactor = Redactor::for_environment(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        ExecPlugin {
            name,
            config,
            env,
            redactor,
            version: OnceCell::new(),
            slots: Semaphore::new(MAX_CONCURRENT_CALLS),
        }
    }

    /// The plugin executable.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Runs VERSION (once; a failure is asked again next time) and returns the protocol version both sides
    /// speak. Bounded by the timeout like any call.
    pub async fn version(&self) -> Result<&'static str, SmError> {
        let started = AtomicBool::new(false);
        self.bounded(Command::Version, &started, self.agreed_version()).await
    }

    async fn agreed_version(&self) -> Result<&'static str, SmError> {
        self.version.get_or_try_init(|| self.negotiate()).await.copied()
    }

    async fn negotiate(&self) -> Result<&'static str, SmError> {
        let call = self.call_name(Command::Version);
        let request = Request::plain(PROTOCOL_VERSION, Command::Version);
        let result: VersionResult = self.call(Command::Version, &request, None, None).await?;
        let agreed = negotiate(&result.supported_versions).ok_or_else(|| {
            SmError::Config(format!(
                "{call}: the plugin speaks protocol versions [{}], this daemon speaks [{}]",
                excerpt(&result.supported_versions.join(", "), BODY_EXCERPT_BYTES),
                SUPPORTED_VERSIONS.join(", ")
            ))
        })?;
        debug!(plugin = %self.name, version = agreed, "exec plugin protocol version agreed");
        Ok(agreed)
    }

    fn call_name(&self, command: Command) -> String {
        format!("exec plugin {} {command}", self.config.path.display())
    }

    /// The one timeout of a call: `work` (slot waits, VERSION, the run) ends within it or is dropped,
    /// which kills the plugin's process group. `started` tells whether the command's own run had begun,
    /// that is whether the request may have been acted on.
    async fn bounded<T>(
        &self,
        command: Command,
        started: &AtomicBool,
        work: impl Future<Output = Result<T, SmError>>,
    ) -> Result<T, SmError> {
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, work).await {
            Ok(done) => done.map_err(|e| self.redact(e)),
            Err(_) => {
                let sent = started.load(Ordering::SeqCst);
                if sent {
                    warn!(plugin = %self.name, %command, timeout_s = timeout.as_secs_f64(),
                          "exec plugin overran its time; it was killed with its process group");
                } else {
                    warn!(plugin = %self.name, %command, timeout_s = timeout.as_secs_f64(),
                          "exec plugin call ran out of time waiting for a slot or for VERSION; the command never ran");
                }
                Err(SmError::Timeout { call: self.call_name(command), timeout, sent })
            }
        }
    }

    /// Every text of `error` with the credentials of the plugin's environment scrubbed.
    fn redact(&self, error: SmError) -> SmError {
        let scrub = |text: String| self.redactor.scrub(&text);
        match error {
            SmError::Transport { call, reason, sent } => SmError::Transport { call, reason: scrub(reason), sent },
            SmError::Status { call, status, body } => SmError::Status { call, status, body: scrub(body) },
            SmError::Decode { call, reason } => SmError::Decode { call, reason: scrub(reason) },
            SmError::Tls { call, reason } => SmError::Tls { call, reason: scrub(reason) },
            SmError::Config(text) => SmError::Config(scrub(text)),
            SmError::Local { call, reason, outcome_unknown } => {
                SmError::Local { call, reason: scrub(reason), outcome_unknown }
            }
            SmError::Plugin { call, code, msg, outcome_unknown } => {
                SmError::Plugin { call, code, msg: scrub(msg), outcome_unknown }
            }
            timeout @ SmError::Timeout { .. } => timeout,
        }
    }

    /// One run: runs the plugin and decodes its result as `T`, which must carry `protocolVersion` equal
    /// to `version` (VERSION passes `None`: its reply is what tells the version).
    async fn call<T: DeserializeOwned>(
        &self,
        command: Command,
        request: &Request,
        version: Option<&str>,
        started: Option<&AtomicBool>,
    ) -> Result<T, SmError> {
        let call = self.call_name(command);
        let input = serde_json::to_vec(&request)
            .map_err(|e| SmError::Config(format!("{call}: cannot encode the request: {e}")))?;
        let began = Instant::now();
        let output = self.run(&call, command, input, started).await?;
        let stderr = self.redactor.scrub_bytes(&output.stderr, output.stderr_cut, false);
        debug!(plugin = %self.name, %command, elapsed_ms = began.elapsed().as_millis() as u64,
               status = %output.status, stderr = %tail(stderr.trim(), BODY_EXCERPT_BYTES), "exec plugin call");
        if !output.status.success() {
            return Err(failure(&call, output.status, &output.stdout, &stderr, &self.redactor));
        }
        decode(&call, &output.stdout, version, &self.redactor)
    }

    /// Starts the plugin, feeds it `input`, collects its output within the size limit, and leaves nothing
    /// of it running. Not timed itself: dropping it (when [`ExecPlugin::bounded`] gives up) kills the
    /// plugin's process group.
    async fn run(
        &self,
        call: &str,
        command: Command,
        input: Vec<u8>,
        started: Option<&AtomicBool>,
    ) -> Result<Output, SmError> {
        let transport = |reason: String, sent: bool| SmError::Transport { call: call.to_owned(), reason, sent };
        // The semaphore is never closed, so acquiring only waits.
        let _slot =
            self.slots.acquire().await.map_err(|e| transport(format!("no slot to run the plugin: {e}"), false))?;
        let mut cmd = std::process::Command::new(&self.config.path);
        cmd.arg(command.as_str()).env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut run = Run::start(&mut cmd)
            .map_err(|e| transport(format!("cannot start {}: {e}", self.config.path.display()), false))?;
        if let Some(started) = started {
            started.store(true, Ordering::SeqCst);
        }
        // From here on the plugin may act on the request, and dropping `run` kills its group.
        let pipes = run.pipes().map_err(|e| transport(format!("the plugin's pipes: {e}"), true))?;
        let (mut stdin, stdout, stderr) = (pipes.stdin, pipes.stdout, pipes.stderr);
        let killer = run.killer();

        let write = async move {
            // A plugin may exit without reading its request (VERSION usually does): a broken pipe is
            // not an error of the call, what the plugin prints decides.
            if let Err(e) = stdin.write_all(&input).await {
                debug!(error = %e, "exec plugin did not read its whole request");
            }
            drop(stdin);
        };
        let read_stderr = read_tail(stderr, STDERR_KEEP_BYTES);
        let collect = async {
            let mut stdout_buf = Vec::new();
            let read = stdout.take(MAX_OUTPUT_BYTES as u64 + 1).read_to_end(&mut stdout_buf).await;
            let oversized = stdout_buf.len() > MAX_OUTPUT_BYTES;
            if oversized {
                // It may still be writing: stop it now rather than waiting for the timeout.
                killer.kill();
            }
            (read, oversized, stdout_buf)
        };
        let exit = async {
            let exited = run.exited().await;
            // The call ends with the plugin: whatever it left in its group dies now, which also closes
            // the pipes it may still hold.
            killer.kill();
            exited
        };
        let ((), (stderr_buf, stderr_cut), (read, oversized, stdout_buf), exited) =
            tokio::join!(write, read_stderr, collect, exit);
        exited.map_err(|e| transport(format!("waiting for the plugin: {e}"), true))?;
        let status = run.finish().map_err(|e| transport(format!("waiting for the plugin: {e}"), true))?;
        if oversized {
            return Err(SmError::Decode {
                call: call.to_owned(),
                reason: format!("the plugin printed more than {MAX_OUTPUT_BYTES} bytes; it was killed"),
            });
        }
        read.map_err(|e| transport(format!("reading the plugin's output: {e}"), true))?;
        Ok(Output { status, stdout: stdout_buf, stderr: stderr_buf, stderr_cut })
    }

    async fn membership(&self, command: Command, pkey: PKey, guids: &[Guid]) -> Result<(), SmError> {
        let started = AtomicBool::new(false);
        let work = async {
            let version = self.agreed_version().await?;
            let request = Request::membership(version, command, pkey, guids);
            let _: EmptyResult = self.call(command, &request, Some(version), Some(&started)).await?;
            Ok(())
        };
        self.bounded(command, &started, work).await
    }
}

/// The name, path, timeout and variable names; never a value.
impl std::fmt::Debug for ExecPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecPlugin")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("version", &self.version.get())
            .finish_non_exhaustive()
    }
}

impl SubnetManager for ExecPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> SmCall<'_> {
        Box::pin(async move {
            let started = AtomicBool::new(false);
            let work = async {
                let version = self.agreed_version().await?;
                let request = Request::plain(version, Command::Validate);
                let _: EmptyResult = self.call(Command::Validate, &request, Some(version), Some(&started)).await?;
                Ok(())
            };
            self.bounded(Command::Validate, &started, work).await
        })
    }

    fn add_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a> {
        Box::pin(self.membership(Command::Add, pkey, guids))
    }

    /// The default options are the 1.0.0 ADD, unchanged. Others go to a plugin that agreed to 1.1.0
    /// or later; a 1.0.0 plugin would ignore them and make every GUID a full member, so the call is
    /// refused before the plugin runs.
    fn add_guids_with<'a>(&'a self, pkey: PKey, guids: &'a [Guid], options: &'a PartitionOptions) -> SmCall<'a> {
        if *options == PartitionOptions::default() {
            return self.add_guids(pkey, guids);
        }
        Box::pin(async move {
            let started = AtomicBool::new(false);
            let work = async {
                let version = self.agreed_version().await?;
                if version == PROTOCOL_VERSION {
                    return Err(SmError::Config(format!(
                        "{}: the plugin speaks protocol {PROTOCOL_VERSION}, which cannot carry partition options \
                         (membership, index0, ip_over_ib, QoS); nothing was sent for partition {pkey}",
                        self.call_name(Command::Add)
                    )));
                }
                let request = Request::add_with(version, pkey, guids, options);
                let _: EmptyResult = self.call(Command::Add, &request, Some(version), Some(&started)).await?;
                Ok(())
            };
            self.bounded(Command::Add, &started, work).await
        })
    }

    fn remove_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a> {
        Box::pin(self.membership(Command::Remove, pkey, guids))
    }

    fn list_guids(&self) -> BoxFuture<'_, Result<Vec<(String, Guid)>, SmError>> {
        Box::pin(async move {
            let started = AtomicBool::new(false);
            let work = async {
                let version = self.agreed_version().await?;
                let request = Request::plain(version, Command::List);
                let result: ListResult = self.call(Command::List, &request, Some(version), Some(&started)).await?;
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
                        let guid = parse_guid(&m.guid).map_err(|reason| SmError::Decode {
                            call: call.clone(),
                            reason: quoted(&reason, &self.redactor),
                        })?;
                        Ok((m.pkey, guid))
                    })
                    .collect()
            };
            self.bounded(Command::List, &started, work).await
        })
    }

    /// The one timeout covers everything a call does: the wait for a slot, VERSION before the first
    /// call, and the plugin's run. Killing and reaping the plugin after it happens in the background.
    fn call_timeout(&self) -> Duration {
        self.config.timeout
    }
}

mod output;

#[cfg(test)]
mod tests;

/// Fuzzing of what a plugin may print: arbitrary bytes and arbitrary JSON decode to a result or to a
/// clear error, never a panic. The case count follows `PROPTEST_CASES` (default 2,000).
#[cfg(test)]
mod fuzz;
