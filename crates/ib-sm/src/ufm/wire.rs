//! UFM's JSON, byte for byte as the Go plugin wrote it (tests/go_wire_format.rs pins it), and the parse of its partition
//! listing.
//!
//! Request bodies are built by string formatting, not serde, because the Go plugin's exact spacing (a
//! space after each `:` and `,` of the outer object, none between array items) is part of the contract
//! the emulator and any recorded traffic check.

use ib_model::partition::{PartitionOptions, Qos};
use ib_model::{Guid, PKey, SmListing};
use serde_json::Value;

mod typed;

/// Why a partition listing could not be read. Names the partition key and the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a JSON object of partitions: {0}")]
    NotAnObject(String),
    #[error("partition {pkey:?}: expected an object, got {got}")]
    PartitionNotAnObject { pkey: String, got: String },
    #[error("partition {pkey:?}: \"guids\" must be a list, got {got}")]
    GuidsNotAList { pkey: String, got: String },
    #[error("partition {pkey:?}: guid entry {index} has no \"guid\" string: {got}")]
    MissingGuid { pkey: String, index: usize, got: String },
    #[error("partition {pkey:?}: bad GUID {value:?}: expected 16 hex digits")]
    BadGuid { pkey: String, value: String },
    #[error("\"last_updated\" must be a string or null, got {0}")]
    LastUpdated(String),
}

/// The add body: full members, in index 0, with IPoIB, as the Go plugin always asked.
pub fn add_body(pkey: PKey, guids: &[Guid]) -> String {
    add_body_with(pkey, guids, &PartitionOptions::default())
}

/// The add body with `options`' membership, `index0` and `ip_over_ib`, in the Go plugin's layout: the
/// default options give its bytes exactly. QoS is not part of it: UFM sets QoS through `qos_conf`.
pub fn add_body_with(pkey: PKey, guids: &[Guid], options: &PartitionOptions) -> String {
    format!(
        r#"{{"pkey": "{pkey}", "index0": {}, "ip_over_ib": {}, "membership": "{}", "guids": [{}]}}"#,
        options.index0,
        options.ip_over_ib,
        options.membership.as_str(),
        guid_list(guids)
    )
}

/// The add body with the options and, when given, `partition_name` (UFM 6.22 and later name a partition
/// the add creates; without it UFM names it `api_pkey_<pkey>`). Without a name the bytes are exactly
/// those of [`add_body_with`]. The name is JSON-escaped.
pub fn add_body_named(pkey: PKey, guids: &[Guid], options: &PartitionOptions, name: Option<&str>) -> String {
    let body = add_body_with(pkey, guids, options);
    match name {
        None => body,
        Some(name) => {
            let name = serde_json::Value::from(name).to_string();
            format!(r#"{}, "partition_name": {name}}}"#, &body[..body.len() - 1])
        }
    }
}

/// `PUT /resources/pkeys/qos_conf`: `{"pkey": "0x0005", "mtu_limit": 4, "service_level": 0, "rate_limit": 2.5}`.
pub fn qos_body(pkey: PKey, qos: &Qos) -> String {
    format!(
        r#"{{"pkey": "{pkey}", "mtu_limit": {}, "service_level": {}, "rate_limit": {}}}"#,
        qos.mtu_limit.ufm(),
        qos.service_level,
        qos.rate_limit
    )
}

/// Reads `GET /resources/pkeys/last_updated`: `{"last_updated": "<time>" | null}`. The time is kept as
/// UFM wrote it, cut to a sane length; it is only ever compared with an earlier answer.
pub fn parse_last_updated(body: &[u8]) -> Result<Option<String>, WireError> {
    let top: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| WireError::NotAnObject(e.to_string()))?;
    match top.get("last_updated") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(crate::manager::excerpt(text, VALUE_EXCERPT))),
        Some(other) => Err(WireError::LastUpdated(brief(other))),
    }
}

pub fn remove_body(pkey: PKey, guids: &[Guid]) -> String {
    format!(r#"{{"pkey": "{pkey}", "guids": [{}]}}"#, guid_list(guids))
}

/// `"g1","g2"`: Go's `%q` of each UFM-form GUID joined by a bare comma.
fn guid_list(guids: &[Guid]) -> String {
    let mut out = String::with_capacity(guids.len() * 19);
    for (i, guid) in guids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(&guid.to_ufm());
        out.push('"');
    }
    out
}

/// Reads `GET /resources/pkeys/?guids_data=true`: `{ "<pkey>": { "guids": [ {"guid": "…"}, … ], … } }`,
/// partition by partition. A partition without `guids`, or with `null` or `[]`, has no members; anything
/// else malformed fails the whole listing, since a partial listing would make the controller believe
/// GUIDs are free.
///
/// The body is read straight into GUIDs ([`typed`]); only a body that does not have UFM's shape is read
/// again as a JSON tree, to name the culprit in the error (or to take the rare valid body the direct
/// read refuses, such as a key given twice, as the tree reads it).
pub fn parse_partitions(body: &[u8]) -> Result<SmListing, WireError> {
    typed::listing(body).or_else(|_| value_listing(body))
}

/// [`parse_partitions`] as one (partition name, GUID) pair per membership, for the tests.
#[cfg(test)]
pub fn parse_listing(body: &[u8]) -> Result<Vec<(String, Guid)>, WireError> {
    parse_partitions(body).map(SmListing::into_pairs)
}

/// The listing read through a JSON tree: slow and large, kept for the errors it names.
fn value_listing(body: &[u8]) -> Result<SmListing, WireError> {
    let top: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| WireError::NotAnObject(e.to_string()))?;
    let mut out = SmListing::new();
    for (pkey, entry) in top {
        let guids = partition_guids(&pkey, entry)?;
        out.push(pkey, guids);
    }
    Ok(out)
}

/// The GUIDs of one partition's entry; `pkey` names it in errors.
fn partition_guids(pkey: &str, entry: Value) -> Result<Vec<Guid>, WireError> {
    let Value::Object(entry) = entry else {
        return Err(WireError::PartitionNotAnObject { pkey: pkey.to_owned(), got: brief(&entry) });
    };
    let guids = match entry.get("guids") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(guids)) => guids,
        Some(other) => return Err(WireError::GuidsNotAList { pkey: pkey.to_owned(), got: brief(other) }),
    };
    let mut out = Vec::with_capacity(guids.len());
    for (index, item) in guids.iter().enumerate() {
        let Some(text) = item.get("guid").and_then(Value::as_str) else {
            return Err(WireError::MissingGuid { pkey: pkey.to_owned(), index, got: brief(item) });
        };
        let guid =
            Guid::parse_ufm(text).map_err(|_| WireError::BadGuid { pkey: pkey.to_owned(), value: text.to_owned() })?;
        out.push(guid);
    }
    Ok(out)
}

/// Reads `GET /resources/pkeys/<pkey>?guids_data=true`: the partition's GUIDs, or `None` for the `{}`
/// UFM answers for a partition it does not have. A partition without `guids` has none. Read like
/// [`parse_partitions`]: straight into GUIDs, through a JSON tree only for an error.
pub fn parse_partition(body: &[u8]) -> Result<Option<Vec<Guid>>, WireError> {
    typed::partition(body).or_else(|_| value_partition(body))
}

fn value_partition(body: &[u8]) -> Result<Option<Vec<Guid>>, WireError> {
    let top: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| WireError::NotAnObject(e.to_string()))?;
    if top.is_empty() {
        return Ok(None);
    }
    let pkey = top.get("pkey").and_then(Value::as_str).unwrap_or("the partition").to_owned();
    partition_guids(&pkey, Value::Object(top)).map(Some)
}

/// Longest rendering of an unexpected value kept in an error: enough to recognise it.
const VALUE_EXCERPT: usize = 80;

fn brief(value: &Value) -> String {
    crate::manager::excerpt(&value.to_string(), VALUE_EXCERPT)
}

#[cfg(test)]
mod tests;

/// Fuzzing of the listing parser with arbitrary bytes and arbitrary JSON; the case count follows
/// `PROPTEST_CASES` (default 2,000), so `PROPTEST_CASES=1000000 cargo test --release -p ib-sm --lib
/// fuzz` is the long run.
#[cfg(test)]
mod fuzz;
