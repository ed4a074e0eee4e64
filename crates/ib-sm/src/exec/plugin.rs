//! The plugin's side of the exec protocol: turns any [`SubnetManager`] into a plugin executable.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     ib_sm::exec::plugin::main(|| Ok(Box::new(ib_sm::Noop)))
//! }
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;

use super::protocol::{
    Command, EmptyResult, ErrorResult, ListResult, Membership, PROTOCOL_VERSION, Request, SUPPORTED_VERSIONS,
    VersionResult, codes, is_supported,
};
use crate::env::EnvMap;
use crate::manager::{SmError, SubnetManager};

/// Largest request read from stdin: a request naming every GUID a controller could batch is far smaller.
const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

/// What to print on stdout and the exit status to end with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The JSON result or error object, one line.
    pub stdout: String,
    /// The exit status: 0 for a result, the error class otherwise.
    pub exit_code: u8,
}

impl Reply {
    fn ok(value: &impl serde::Serialize) -> Reply {
        match serde_json::to_string(value) {
            Ok(stdout) => Reply { stdout, exit_code: 0 },
            Err(e) => Reply::error(ErrorResult::new(codes::BAD_RESPONSE, format!("cannot encode the result: {e}"))),
        }
    }

    fn error(error: ErrorResult) -> Reply {
        // An ErrorResult is strings and a number: encoding cannot fail, but a fixed text is kept just in case.
        let stdout = serde_json::to_string(&error).unwrap_or_else(|_| {
            format!(r#"{{"protocolVersion":"{PROTOCOL_VERSION}","code":3,"msg":"unencodable error"}}"#)
        });
        Reply { stdout, exit_code: 1 }
    }
}

/// The error code a subnet-manager failure is reported with.
pub fn code_of(error: &SmError) -> u32 {
    match error {
        SmError::Transport { .. } | SmError::Timeout { .. } | SmError::Tls { .. } => codes::UNREACHABLE,
        SmError::Status { .. } | SmError::Local { .. } => codes::REFUSED,
        SmError::Decode { .. } => codes::BAD_RESPONSE,
        SmError::Config(_) => codes::INVALID_CONFIG,
        SmError::Plugin { code, .. } => *code,
    }
}

fn sm_error(error: &SmError, version: &str) -> ErrorResult {
    ErrorResult {
        protocol_version: Some(version.to_owned()),
        code: code_of(error),
        msg: error.to_string(),
        details: None,
        // The daemon keeps a GUID whose add may have been applied until a listing settles it.
        outcome_unknown: Some(error.outcome_unknown()),
    }
}

/// Answers one call. `command` is `argv[1]`; `make` builds the subnet manager, and is called only for
/// commands that need it, so VERSION works without any configuration.
pub async fn handle<F>(command: Option<&str>, stdin: &[u8], make: F) -> Reply
where
    F: FnOnce() -> Result<Box<dyn SubnetManager>, ErrorResult>,
{
    let Some(command) = command.and_then(Command::parse) else {
        let names: Vec<&str> = Command::ALL.iter().map(|c| c.as_str()).collect();
        return Reply::error(ErrorResult::new(
            codes::UNKNOWN_COMMAND,
            format!("unknown command {:?}; expected one of {}", command.unwrap_or(""), names.join(", ")),
        ));
    };
    match command {
        Command::Version => version_reply(stdin),
        Command::Validate => match prepare(command, stdin, make) {
            Err(reply) => reply,
            Ok((version, _, sm)) => match sm.validate().await {
                Ok(()) => Reply::ok(&EmptyResult { protocol_version: version }),
                Err(e) => Reply::error(sm_error(&e, &version)),
            },
        },
        Command::Add | Command::Remove => match prepare(command, stdin, make) {
            Err(reply) => reply,
            Ok((version, request, sm)) => {
                let (pkey, guids) = match request.partition() {
                    Ok(p) => p,
                    Err(e) => return invalid_request(&version, e.to_string()),
                };
                let options = match request.options() {
                    Ok(options) => options,
                    Err(e) => return invalid_request(&version, e.to_string()),
                };
                let done = if command == Command::Add {
                    match options {
                        Some(options) => sm.add_guids_with(pkey, &guids, &options).await,
                        None => sm.add_guids(pkey, &guids).await,
                    }
                } else {
                    sm.remove_guids(pkey, &guids).await
                };
                match done {
                    Ok(()) => Reply::ok(&EmptyResult { protocol_version: version }),
                    Err(e) => Reply::error(sm_error(&e, &version)),
                }
            }
        },
        Command::List => match prepare(command, stdin, make) {
            Err(reply) => reply,
            Ok((version, _, sm)) => match sm.list_guids().await {
                Ok(list) => Reply::ok(&ListResult {
                    protocol_version: version,
                    memberships: list
                        .into_iter()
                        .map(|(pkey, guid)| Membership { pkey, guid: guid.to_string() })
                        .collect(),
                }),
                Err(e) => Reply::error(sm_error(&e, &version)),
            },
        },
    }
}

/// VERSION: answered in the caller's version when we speak it, so an old daemon reads a reply it knows;
/// stdin may be empty, so that a person can run `plugin VERSION </dev/null`.
fn version_reply(stdin: &[u8]) -> Reply {
    let asked = serde_json::from_slice::<Request>(stdin).ok().map(|r| r.protocol_version);
    let version = asked.filter(|v| is_supported(v)).unwrap_or_else(|| PROTOCOL_VERSION.to_owned());
    Reply::ok(&VersionResult {
        protocol_version: version,
        supported_versions: SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
    })
}

fn invalid_request(version: &str, msg: String) -> Reply {
    let mut e = ErrorResult::new(codes::INVALID_REQUEST, msg);
    e.protocol_version = Some(version.to_owned());
    Reply::error(e)
}

/// Checks the request of a command other than VERSION and builds the manager: the agreed version, the
/// request and the manager, or the error reply.
#[allow(clippy::type_complexity)]
fn prepare<F>(command: Command, stdin: &[u8], make: F) -> Result<(String, Request, Box<dyn SubnetManager>), Reply>
where
    F: FnOnce() -> Result<Box<dyn SubnetManager>, ErrorResult>,
{
    let request: Request = serde_json::from_slice(stdin)
        .map_err(|e| Reply::error(ErrorResult::new(codes::INVALID_REQUEST, format!("stdin is not a request: {e}"))))?;
    let version = request.protocol_version.clone();
    if !is_supported(&version) {
        return Err(Reply::error(ErrorResult::new(
            codes::INCOMPATIBLE_VERSION,
            format!("protocolVersion {version:?} is not supported (supported: {})", SUPPORTED_VERSIONS.join(", ")),
        )));
    }
    if request.command != command {
        return Err(invalid_request(
            &version,
            format!("argv[1] is {command} but the request says {}", request.command),
        ));
    }
    match make() {
        Ok(sm) => Ok((version, request, sm)),
        Err(mut e) => {
            e.protocol_version = Some(version);
            Err(Reply::error(e))
        }
    }
}

/// The plugin's environment as an [`EnvMap`]; variables that are not UTF-8 are skipped rather than
/// aborting the plugin (none of ours can be).
pub fn process_env() -> EnvMap {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// A whole plugin process: reads `argv[1]` and stdin, answers on stdout, exits 0 on success and 1 on
/// error, as the protocol says.
pub fn main<F>(make: F) -> ExitCode
where
    F: FnOnce() -> Result<Box<dyn SubnetManager>, ErrorResult>,
{
    let command = std::env::args_os().nth(1).and_then(|a| a.into_string().ok());
    let mut stdin = Vec::new();
    let reply = match std::io::stdin().take(MAX_REQUEST_BYTES + 1).read_to_end(&mut stdin) {
        Err(e) => Reply::error(ErrorResult::new(codes::INVALID_REQUEST, format!("cannot read stdin: {e}"))),
        Ok(_) if stdin.len() as u64 > MAX_REQUEST_BYTES => Reply::error(ErrorResult::new(
            codes::INVALID_REQUEST,
            format!("the request is larger than {MAX_REQUEST_BYTES} bytes"),
        )),
        Ok(_) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(handle(command.as_deref(), &stdin, make)),
            Err(e) => {
                Reply::error(ErrorResult::new(codes::UNREACHABLE, format!("cannot start the async runtime: {e}")))
            }
        },
    };
    let mut out = std::io::stdout().lock();
    // If stdout is gone the daemon has given up on this call; nothing useful is left to do.
    let _ = writeln!(out, "{}", reply.stdout).and_then(|()| out.flush());
    ExitCode::from(reply.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Noop;
    use serde_json::{Value, json};

    fn noop() -> Result<Box<dyn SubnetManager>, ErrorResult> {
        Ok(Box::new(Noop))
    }

    async fn call(command: &str, stdin: &str) -> (Value, u8) {
        let reply = handle(Some(command), stdin.as_bytes(), noop).await;
        (serde_json::from_str(&reply.stdout).unwrap(), reply.exit_code)
    }

    #[tokio::test]
    async fn version_needs_no_request_or_configuration() {
        let reply = handle(Some("VERSION"), b"", || Err(ErrorResult::new(codes::INVALID_CONFIG, "unset"))).await;
        assert_eq!(reply.exit_code, 0);
        let v: Value = serde_json::from_str(&reply.stdout).unwrap();
        assert_eq!(v, json!({"protocolVersion": "1.0.0", "supportedVersions": ["1.0.0", "1.1.0"]}));
    }

    #[tokio::test]
    async fn requests_are_checked_before_the_manager_is_built() {
        let (v, code) = call("ADD", "not json").await;
        assert_eq!((v["code"].as_u64(), code), (Some(u64::from(codes::INVALID_REQUEST)), 1));
        let (v, _) = call("ADD", r#"{"protocolVersion":"2.0.0","command":"ADD"}"#).await;
        assert_eq!(v["code"], json!(codes::INCOMPATIBLE_VERSION));
        let (v, _) = call("ADD", r#"{"protocolVersion":"1.0.0","command":"LIST"}"#).await;
        assert_eq!(v["code"], json!(codes::INVALID_REQUEST));
        let (v, _) = call("ADD", r#"{"protocolVersion":"1.0.0","command":"ADD","pkey":"0x5","guids":["x"]}"#).await;
        assert_eq!(v["code"], json!(codes::INVALID_REQUEST));
        let (v, _) = call("add", "{}").await;
        assert_eq!(v["code"], json!(codes::UNKNOWN_COMMAND));
        let reply = handle(None, b"", noop).await;
        assert_eq!(reply.exit_code, 1);
    }

    #[tokio::test]
    async fn configuration_errors_are_reported_with_the_request_version() {
        let reply = handle(Some("VALIDATE"), br#"{"protocolVersion":"1.0.0","command":"VALIDATE"}"#, || {
            Err(ErrorResult::new(codes::INVALID_CONFIG, "UFM_ADDRESS is required"))
        })
        .await;
        let v: Value = serde_json::from_str(&reply.stdout).unwrap();
        assert_eq!(reply.exit_code, 1);
        assert_eq!(v, json!({"protocolVersion": "1.0.0", "code": 4, "msg": "UFM_ADDRESS is required"}));
    }

    #[tokio::test]
    async fn noop_answers_every_command() {
        let (v, code) = call("VALIDATE", r#"{"protocolVersion":"1.0.0","command":"VALIDATE"}"#).await;
        assert_eq!((v, code), (json!({"protocolVersion": "1.0.0"}), 0));
        let add =
            r#"{"protocolVersion":"1.0.0","command":"REMOVE","pkey":"0x0005","guids":["02:00:00:00:00:00:00:01"]}"#;
        assert_eq!(call("REMOVE", add).await.1, 0);
        let (v, _) = call("LIST", r#"{"protocolVersion":"1.0.0","command":"LIST"}"#).await;
        assert_eq!(v, json!({"protocolVersion": "1.0.0", "memberships": []}));
    }

    #[test]
    fn sm_errors_map_to_codes() {
        let call = || "c".to_owned();
        assert_eq!(
            code_of(&SmError::Transport { call: call(), reason: String::new(), sent: false }),
            codes::UNREACHABLE
        );
        assert_eq!(code_of(&SmError::Status { call: call(), status: 401, body: String::new() }), codes::REFUSED);
        assert_eq!(code_of(&SmError::Decode { call: call(), reason: String::new() }), codes::BAD_RESPONSE);
        let plugin = SmError::Plugin { call: call(), code: 123, msg: String::new(), outcome_unknown: false };
        assert_eq!(code_of(&plugin), 123);
    }

    #[test]
    fn errors_carry_whether_the_change_may_have_been_applied() {
        let call = || "c".to_owned();
        let timeout = SmError::Timeout { call: call(), timeout: std::time::Duration::from_secs(1), sent: true };
        assert_eq!(sm_error(&timeout, "1.0.0").outcome_unknown, Some(true));
        let refused = SmError::Status { call: call(), status: 401, body: String::new() };
        let e = sm_error(&refused, "1.0.0");
        assert_eq!((e.code, e.outcome_unknown), (codes::REFUSED, Some(false)));
        let down = SmError::Status { call: call(), status: 503, body: String::new() };
        assert_eq!(sm_error(&down, "1.0.0").outcome_unknown, Some(true));
    }
}
