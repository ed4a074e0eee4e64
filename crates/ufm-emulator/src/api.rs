//! What each endpoint does once a request is authenticated and routed: parse the body, apply
//! it to the fabric, and render UFM's answer. Runs synchronously under the state lock.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::apply::PendingChange;
use crate::config::{LastUpdatedFormat, UnknownPkeyGet};
use crate::control::Inner;
use crate::routes::Route;
use crate::state::StateError;
use crate::wire::{
    GuidsRequest, ListFlags, PartitionRequest, RemoveRequest, WireError, error_json, format_pkey, parse_pkey_readable,
    parse_pkey_writable, partition_json,
};

/// A status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply { status: StatusCode::OK, body }
    }

    /// Mocks and UFM alike answer a successful write with an empty object; clients ignore it.
    fn done() -> Self {
        Reply::ok(json!({}))
    }

    pub fn error(status: StatusCode, message: &str) -> Self {
        Reply { status, body: error_json(message) }
    }
}

/// Why an endpoint refused a request.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<ApiError> for Reply {
    fn from(err: ApiError) -> Self {
        let status = match &err {
            ApiError::Wire(_) => StatusCode::BAD_REQUEST,
            ApiError::State(StateError::UnseenGuids(_) | StateError::UnknownPkey(_)) => StatusCode::NOT_FOUND,
        };
        Reply::error(status, &err.to_string())
    }
}

/// Fixed facts reported by the version endpoint besides the configured release.
const COMPONENT_VERSIONS: [(&str, &str); 6] = [
    ("opensm", "5.18.0.MLNX20240128.3f266a48"),
    ("sharp", "3.6.0.MLNX20240128.a4e9ae8f"),
    ("ibdiagnet", "2.13.0.MLNX20240128.a8a4f2a0"),
    ("telemetry", "1.16.3"),
    ("mft", "4.27.0-83"),
    ("ufm_webui", "6.19.0"),
];

/// Fields that do not change per request.
pub struct Settings<'a> {
    pub version: &'a str,
    pub last_updated_format: LastUpdatedFormat,
}

/// Whether a route changes partitions (and so waits to be applied under an apply delay).
fn is_write(route: &Route) -> bool {
    matches!(
        route,
        Route::AddGuids
            | Route::SetGuids
            | Route::RemoveGuidsAction
            | Route::DeleteGuids { .. }
            | Route::CreatePkey
            | Route::SetQos
            | Route::DeletePkey { .. }
    )
}

/// Answers one routed request. Without an apply delay, or for a read, the request is applied at
/// once. With one, a write is checked and taken into the accepted model, answered, and queued to be
/// applied to the visible fabric when due; reads see the visible fabric only.
pub fn handle(route: &Route, query: Option<&str>, body: &[u8], inner: &mut Inner, settings: &Settings<'_>) -> Reply {
    if !is_write(route) || (inner.apply.model().is_immediate() && inner.apply.pending.is_empty()) {
        return apply(route, query, body, inner, settings);
    }
    let mut accepted = inner.accepted.take().unwrap_or_else(|| inner.fabric.clone());
    std::mem::swap(&mut inner.fabric, &mut accepted);
    let before = inner.fabric.generation();
    let reply = dispatch(route, query, body, inner, settings).unwrap_or_else(Reply::from);
    let changed = inner.fabric.generation() != before;
    std::mem::swap(&mut inner.fabric, &mut accepted);
    if changed {
        let due = inner.apply.due(std::time::Instant::now());
        inner.apply.pending.push_back(PendingChange {
            due,
            route: route.clone(),
            query: query.map(str::to_owned),
            body: body.to_vec(),
        });
    }
    if !inner.apply.pending.is_empty() {
        inner.accepted = Some(accepted);
    }
    reply
}

/// Applies, in order, every waiting change due at `now` or before to the visible fabric.
pub fn apply_due(inner: &mut Inner, now: std::time::Instant, settings: &Settings<'_>) {
    while inner.apply.next_due().is_some_and(|due| due <= now) {
        let Some(change) = inner.apply.pending.pop_front() else { break };
        let reply = apply(&change.route, change.query.as_deref(), &change.body, inner, settings);
        if reply.status != StatusCode::OK {
            // The accepted model took it; the visible fabric can only differ through seeding.
            tracing::debug!(status = reply.status.as_u16(), route = ?change.route, "ufm-emulator: a queued change failed");
        }
    }
    if inner.apply.pending.is_empty() {
        inner.accepted = None;
    }
}

/// Applies one routed request and renders the reply. Records when the partition
/// configuration changed, for `last_updated`.
pub fn apply(route: &Route, query: Option<&str>, body: &[u8], inner: &mut Inner, settings: &Settings<'_>) -> Reply {
    let before = inner.fabric.generation();
    let reply = dispatch(route, query, body, inner, settings).unwrap_or_else(Reply::from);
    if inner.fabric.generation() != before {
        inner.last_updated = Some(jiff::Timestamp::now());
    }
    reply
}

fn dispatch(
    route: &Route,
    query: Option<&str>,
    body: &[u8],
    inner: &mut Inner,
    settings: &Settings<'_>,
) -> Result<Reply, ApiError> {
    let fabric = &mut inner.fabric;
    Ok(match route {
        Route::Version => version(settings.version),
        Route::AddGuids => {
            fabric.add(&GuidsRequest::parse(body, false)?)?;
            Reply::done()
        }
        Route::SetGuids => {
            fabric.set(&GuidsRequest::parse(body, true)?)?;
            Reply::done()
        }
        Route::RemoveGuidsAction => {
            fabric.remove(&RemoveRequest::parse(body)?);
            Reply::done()
        }
        Route::DeleteGuids { pkey, guids } => {
            fabric.remove(&RemoveRequest::from_path(pkey, guids)?);
            Reply::done()
        }
        Route::ListPkeys => list(inner, ListFlags::from_query(query)),
        Route::GetPkey { pkey } => {
            let pkey = parse_pkey_readable(pkey)?;
            let flags = ListFlags::from_query(query);
            match (fabric.get(pkey), inner.unknown_pkey_get) {
                (Some(partition), _) => Reply::ok(partition_json(&partition.view(), flags)),
                (None, UnknownPkeyGet::EmptyObject) => Reply::ok(json!({})),
                (None, UnknownPkeyGet::NotFound) => {
                    return Err(StateError::UnknownPkey(pkey).into());
                }
            }
        }
        Route::CreatePkey => {
            fabric.create(&PartitionRequest::parse(body)?);
            Reply::done()
        }
        Route::SetQos => {
            fabric.set_qos(&PartitionRequest::parse(body)?)?;
            Reply::done()
        }
        Route::DeletePkey { pkey } => {
            fabric.delete(parse_pkey_writable(pkey)?)?;
            Reply::done()
        }
        Route::LastUpdated => Reply::ok(json!({
            "last_updated": inner.last_updated.map(|t| render_time(t, settings.last_updated_format)),
        })),
        Route::ListTokens => Reply::ok(json!(inner.credentials.tokens())),
        Route::CreateToken => {
            let token = uuid::Uuid::new_v4().simple().to_string();
            Reply::ok(json!(inner.credentials.add_token(token)))
        }
    })
}

fn version(release: &str) -> Reply {
    let mut obj = Map::new();
    obj.insert("ufm_release_version".into(), Value::from(release));
    for (name, v) in COMPONENT_VERSIONS {
        obj.insert(name.into(), Value::from(v));
    }
    obj.insert("plugins".into(), json!({}));
    Reply::ok(Value::Object(obj))
}

/// E4: without flags UFM answers a bare list of PKey names; with flags a map keyed by PKey.
fn list(inner: &Inner, flags: ListFlags) -> Reply {
    let partitions = inner.fabric.partitions();
    if !flags.any() {
        let names: Vec<String> = partitions.keys().map(|p| format_pkey(*p)).collect();
        return Reply::ok(json!(names));
    }
    let map: Map<String, Value> = partitions
        .iter()
        .map(|(pkey, partition)| (format_pkey(*pkey), partition_json(&partition.view(), flags)))
        .collect();
    Reply::ok(Value::Object(map))
}

/// Both formats real UFM versions have used; `DayFirst` is in server-local time like UFM.
fn render_time(at: jiff::Timestamp, format: LastUpdatedFormat) -> String {
    match format {
        LastUpdatedFormat::Legacy => at.strftime("%a %b %e %H:%M:%S UTC %Y").to_string(),
        LastUpdatedFormat::DayFirst => {
            at.to_zoned(jiff::tz::TimeZone::system()).strftime("%d-%m-%Y, %H:%M:%S").to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_time_matches_the_old_ufm_rendering() {
        let at: jiff::Timestamp = "2020-09-03T11:42:39Z".parse().unwrap();
        assert_eq!(render_time(at, LastUpdatedFormat::Legacy), "Thu Sep  3 11:42:39 UTC 2020");
        let day_first = render_time(at, LastUpdatedFormat::DayFirst);
        assert_eq!(day_first.len(), "03-09-2020, 11:42:39".len(), "{day_first}");
    }

    #[test]
    fn version_names_every_component() {
        let reply = version("6.19.0-7");
        assert_eq!(reply.body["ufm_release_version"], "6.19.0-7");
        assert!(reply.body["opensm"].is_string());
        assert_eq!(reply.body["plugins"], json!({}));
    }
}
