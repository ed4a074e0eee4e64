//! What a plugin printed: its stderr read without blocking it, and its stdout turned into a result or
//! into an error that says what went wrong without repeating a secret.

use std::process::ExitStatus;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::super::protocol::ErrorResult;
use crate::manager::{BODY_EXCERPT_BYTES, SmError, excerpt};
use crate::redact::Redactor;

/// Reads to end of file, keeping the last `keep` bytes (the end is where a failure reports itself) and
/// dropping the rest, so the writer never blocks. Also tells whether anything was dropped.
pub(super) async fn read_tail(mut reader: impl AsyncRead + Unpin, keep: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                // Trim in batches, not at every read.
                if kept.len() > 2 * keep {
                    kept.drain(..kept.len() - keep);
                    cut = true;
                }
            }
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
        cut = true;
    }
    (kept, cut)
}

/// The error for a plugin that exited unsuccessfully; `stderr` is already scrubbed.
pub(super) fn failure(call: &str, status: ExitStatus, stdout: &[u8], stderr: &str, redactor: &Redactor) -> SmError {
    use std::os::unix::process::ExitStatusExt;
    if let Ok(error) = serde_json::from_slice::<ErrorResult>(stdout) {
        return SmError::Plugin {
            call: call.to_owned(),
            code: error.code,
            msg: excerpt(&redactor.scrub(&error.message()), BODY_EXCERPT_BYTES),
            outcome_unknown: error.outcome_unknown(),
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
    // It ran, and may have done part of its work before failing.
    SmError::Transport { call: call.to_owned(), reason, sent: true }
}

/// The last `max` bytes of `text`, cut at a character boundary, marked with `…` when cut.
pub(super) fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// An excerpt of what the plugin printed, scrubbed before it is cut.
pub(super) fn quoted(text: &str, redactor: &Redactor) -> String {
    excerpt(redactor.scrub(text).trim(), BODY_EXCERPT_BYTES)
}

/// Decodes a successful call's stdout as `T`, checking the protocol version when `version` is given.
pub(super) fn decode<T: DeserializeOwned>(
    call: &str,
    stdout: &[u8],
    version: Option<&str>,
    redactor: &Redactor,
) -> Result<T, SmError> {
    let bad = |reason: String| SmError::Decode { call: call.to_owned(), reason };
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the plugin exited 0 and printed nothing; a result object was expected".into()));
    }
    let value: Value = serde_json::from_slice(stdout)
        .map_err(|e| bad(format!("not JSON ({e}): {}", quoted(&String::from_utf8_lossy(stdout), redactor))))?;
    let Some(object) = value.as_object() else {
        return Err(bad(format!("a JSON object was expected, got {}", quoted(&value.to_string(), redactor))));
    };
    if object.contains_key("code") && object.contains_key("msg") {
        // Errors must come with a non-zero exit; reporting one as success would hide a failure.
        return Err(bad(format!(
            "the plugin exited 0 but printed an error object: {}",
            quoted(&value.to_string(), redactor)
        )));
    }
    if let Some(expected) = version {
        match object.get("protocolVersion").and_then(Value::as_str) {
            Some(got) if got == expected => {}
            Some(got) => {
                return Err(bad(format!(
                    "protocolVersion {}, expected {expected:?}",
                    quoted(&format!("{got:?}"), redactor)
                )));
            }
            None => return Err(bad(format!("protocolVersion missing, expected {expected:?}"))),
        }
    }
    serde_json::from_value(value).map_err(|e| bad(format!("not a valid result: {}", quoted(&e.to_string(), redactor))))
}
