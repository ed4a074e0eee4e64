//! What each endpoint does once a request is authenticated and routed: parse the body, apply
//! it to the fabric, and render UFM's answer. Runs synchronously under the state lock.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

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
