//! UFM's JSON wire format for partition keys: the value types clients send (PKey and GUID
//! strings, memberships), the request bodies, and the response shapes UFM's REST API answers with
//! (partition list, one partition, the version).
//!
//! Parsing is strict where UFM is strict (15-bit PKeys, 16–20 hex-digit GUIDs) and lenient where
//! UFM is lenient (either letter case, unknown fields ignored), so a client bug shows up as the
//! same 400 a real UFM would give.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The management partition every UFM fabric has; read-only through the API.
pub const MANAGEMENT_PKEY: u16 = 0x7fff;

/// Largest 15-bit value; the 16th bit of a PKey is the membership bit, which UFM does not take
/// in the `pkey` field.
const PKEY_MASK: u32 = 0x7fff;

/// UFM's documented GUID length bounds (REST guide: "16–20 hex characters").
const GUID_MIN_DIGITS: usize = 16;
const GUID_MAX_DIGITS: usize = 20;

/// Why a value on the wire was refused; rendered into the 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("invalid pkey {0:?}: expected a hex string 0x1-0x7ffe")]
    BadPkey(String),
    #[error("pkey {0:?} is out of range: the value must lie between 0x0 and 0x7fff exclusive")]
    PkeyOutOfRange(String),
    #[error("invalid guid {0:?}: expected 16-20 hex characters without separators")]
    BadGuid(String),
    #[error("invalid membership {0:?}: expected \"full\" or \"limited\"")]
    BadMembership(String),
    #[error("malformed JSON body: {0}")]
    BadJson(String),
    #[error("guids must be a non-empty list")]
    EmptyGuids,
    #[error("\"membership\" and \"memberships\" are mutually exclusive")]
    BothMemberships,
    #[error("\"memberships\" has {memberships} entries but \"guids\" has {guids}")]
    MembershipsLength { guids: usize, memberships: usize },
    #[error("invalid {field}: {reason}")]
    BadQos { field: &'static str, reason: String },
}

/// A port GUID. UFM takes up to 20 hex digits, so 64 bits are not enough to hold every value
/// it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(u128);

impl Guid {
    /// The numeric value.
    pub fn value(self) -> u128 {
        self.0
    }
}

impl From<u64> for Guid {
    fn from(value: u64) -> Self {
        Guid(u128::from(value))
    }
}

impl FromStr for Guid {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok_len = (GUID_MIN_DIGITS..=GUID_MAX_DIGITS).contains(&s.len());
        if !ok_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WireError::BadGuid(s.to_owned()));
        }
        u128::from_str_radix(s, 16).map(Guid).map_err(|_| WireError::BadGuid(s.to_owned()))
    }
}

/// UFM answers with 16 lower-case digits, longer only when the value needs it.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parses a `"0x…"` PKey string (either case, any zero padding) into its 15-bit value, without
/// a range check beyond 15 bits.
pub fn parse_pkey_any(s: &str) -> Result<u16, WireError> {
    let digits =
        s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).ok_or_else(|| WireError::BadPkey(s.to_owned()))?;
    // Eight digits fit a u32; anything longer is out of range whatever its value.
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WireError::BadPkey(s.to_owned()));
    }
    let value = u32::from_str_radix(digits, 16).map_err(|_| WireError::BadPkey(s.to_owned()))?;
    if value & !PKEY_MASK != 0 {
        return Err(WireError::PkeyOutOfRange(s.to_owned()));
    }
    u16::try_from(value).map_err(|_| WireError::PkeyOutOfRange(s.to_owned()))
}

/// Parses a PKey that a client may write to: `0x0` (the invalid PKey) and `0x7fff` (the
/// management partition) are excluded, as UFM's "0x0–0x7fff exclusive" says.
pub fn parse_pkey_writable(s: &str) -> Result<u16, WireError> {
    let value = parse_pkey_any(s)?;
    if value == 0 || value == MANAGEMENT_PKEY {
        return Err(WireError::PkeyOutOfRange(s.to_owned()));
    }
    Ok(value)
}

/// Parses a PKey that a client may read: anything 15-bit except the invalid PKey 0.
pub fn parse_pkey_readable(s: &str) -> Result<u16, WireError> {
    let value = parse_pkey_any(s)?;
    if value == 0 {
        return Err(WireError::PkeyOutOfRange(s.to_owned()));
    }
    Ok(value)
}

/// UFM's rendering of a PKey: lower case, no zero padding (`0x5`, `0x7fff`).
pub fn format_pkey(pkey: u16) -> String {
    format!("{pkey:#x}")
}

/// Full members talk to everyone in the partition; limited members only to full members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    #[default]
    Full,
    Limited,
}

impl FromStr for Membership {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Membership::Full),
            "limited" => Ok(Membership::Limited),
            other => Err(WireError::BadMembership(other.to_owned())),
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Membership::Full => "full",
            Membership::Limited => "limited",
        })
    }
}

/// Partition QoS; UFM's defaults are MTU 2K, SL 0, 2.5 Gb/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Qos {
    pub mtu_limit: u8,
    pub service_level: u8,
    pub rate_limit: f64,
}

impl Default for Qos {
    fn default() -> Self {
        Qos { mtu_limit: 2, service_level: 0, rate_limit: 2.5 }
    }
}

/// Rates UFM accepts for `rate_limit`, in Gb/s (REST guide).
const RATE_LIMITS: [f64; 17] =
    [2.5, 5.0, 10.0, 14.0, 20.0, 25.0, 30.0, 40.0, 56.0, 60.0, 80.0, 100.0, 112.0, 120.0, 168.0, 200.0, 300.0];

/// The QoS fields a body may carry; absent ones keep the partition's current value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QosUpdate {
    pub mtu_limit: Option<u8>,
    pub service_level: Option<u8>,
    pub rate_limit: Option<f64>,
}

impl QosUpdate {
    pub fn apply(&self, qos: &mut Qos) {
        if let Some(v) = self.mtu_limit {
            qos.mtu_limit = v;
        }
        if let Some(v) = self.service_level {
            qos.service_level = v;
        }
        if let Some(v) = self.rate_limit {
            qos.rate_limit = v;
        }
    }

    fn from_raw(
        mtu_limit: Option<u64>,
        service_level: Option<u64>,
        rate_limit: Option<f64>,
    ) -> Result<Self, WireError> {
        let mtu_limit = match mtu_limit {
            None => None,
            Some(2) => Some(2),
            Some(4) => Some(4),
            Some(other) => {
                return Err(WireError::BadQos { field: "mtu_limit", reason: format!("{other} is not 2 or 4") });
            }
        };
        let service_level = match service_level {
            None => None,
            Some(v) => Some(u8::try_from(v).ok().filter(|sl| *sl <= 15).ok_or_else(|| WireError::BadQos {
                field: "service_level",
                reason: format!("{v} is not within 0-15"),
            })?),
        };
        if let Some(rate) = rate_limit
            && !RATE_LIMITS.contains(&rate)
        {
            return Err(WireError::BadQos { field: "rate_limit", reason: format!("{rate} is not a supported rate") });
        }
        Ok(QosUpdate { mtu_limit, service_level, rate_limit })
    }
}

/// The body of E2 (add), E6 (set): GUIDs with their attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct GuidsRequest {
    pub pkey: u16,
    /// Each GUID with the membership it asked for.
    pub members: Vec<(Guid, Membership)>,
    /// UFM's documented default is `false`.
    pub index0: bool,
    /// UFM's documented default is `true`.
    pub ip_over_ib: bool,
    pub partition_name: Option<String>,
    pub qos: QosUpdate,
}

#[derive(Deserialize)]
struct RawGuidsRequest {
    pkey: String,
    #[serde(default)]
    guids: Vec<String>,
    index0: Option<bool>,
    ip_over_ib: Option<bool>,
    membership: Option<String>,
    memberships: Option<Vec<String>>,
    partition_name: Option<String>,
    mtu_limit: Option<u64>,
    service_level: Option<u64>,
    rate_limit: Option<f64>,
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|e| WireError::BadJson(e.to_string()))
}

fn parse_guids(raw: &[String]) -> Result<Vec<Guid>, WireError> {
    raw.iter().map(|g| g.parse()).collect()
}

impl GuidsRequest {
    /// Parses an add/set body; `allow_empty` is true only for the set (PUT) form, where an
    /// empty list means "no members".
    pub fn parse(body: &[u8], allow_empty: bool) -> Result<Self, WireError> {
        let raw: RawGuidsRequest = parse_json(body)?;
        let pkey = parse_pkey_writable(&raw.pkey)?;
        let guids = parse_guids(&raw.guids)?;
        if guids.is_empty() && !allow_empty {
            return Err(WireError::EmptyGuids);
        }
        let memberships: Vec<Membership> = match (raw.membership, raw.memberships) {
            (Some(_), Some(_)) => return Err(WireError::BothMemberships),
            (Some(one), None) => vec![one.parse()?; guids.len()],
            (None, Some(list)) => {
                if list.len() != guids.len() {
                    return Err(WireError::MembershipsLength { guids: guids.len(), memberships: list.len() });
                }
                list.iter().map(|m| m.parse()).collect::<Result<_, _>>()?
            }
            (None, None) => vec![Membership::Full; guids.len()],
        };
        Ok(GuidsRequest {
            pkey,
            members: guids.into_iter().zip(memberships).collect(),
            index0: raw.index0.unwrap_or(false),
            ip_over_ib: raw.ip_over_ib.unwrap_or(true),
            partition_name: raw.partition_name,
            qos: QosUpdate::from_raw(raw.mtu_limit, raw.service_level, raw.rate_limit)?,
        })
    }
}

/// The body of E3 (`/actions/remove_guids_from_pkey`).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveRequest {
    pub pkey: u16,
    pub guids: Vec<Guid>,
}

#[derive(Deserialize)]
struct RawRemoveRequest {
    pkey: String,
    #[serde(default)]
    guids: Vec<String>,
}

impl RemoveRequest {
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let raw: RawRemoveRequest = parse_json(body)?;
        let pkey = parse_pkey_writable(&raw.pkey)?;
        let guids = parse_guids(&raw.guids)?;
        if guids.is_empty() {
            return Err(WireError::EmptyGuids);
        }
        Ok(RemoveRequest { pkey, guids })
    }

    /// The E3' form: the PKey and comma-joined GUIDs come from the path.
    pub fn from_path(pkey: &str, guids: &str) -> Result<Self, WireError> {
        let pkey = parse_pkey_writable(pkey)?;
        let guids: Vec<Guid> = guids.split(',').filter(|g| !g.is_empty()).map(str::parse).collect::<Result<_, _>>()?;
        if guids.is_empty() {
            return Err(WireError::EmptyGuids);
        }
        Ok(RemoveRequest { pkey, guids })
    }
}

/// The body of E7 (`POST /resources/pkeys/add`) and E9 (`PUT /resources/pkeys/qos_conf`).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRequest {
    pub pkey: u16,
    pub partition_name: Option<String>,
    pub index0: Option<bool>,
    pub ip_over_ib: Option<bool>,
    pub qos: QosUpdate,
}

#[derive(Deserialize)]
struct RawPartitionRequest {
    pkey: String,
    partition_name: Option<String>,
    index0: Option<bool>,
    ip_over_ib: Option<bool>,
    mtu_limit: Option<u64>,
    service_level: Option<u64>,
    rate_limit: Option<f64>,
}

impl PartitionRequest {
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let raw: RawPartitionRequest = parse_json(body)?;
        Ok(PartitionRequest {
            pkey: parse_pkey_writable(&raw.pkey)?,
            partition_name: raw.partition_name,
            index0: raw.index0,
            ip_over_ib: raw.ip_over_ib,
            qos: QosUpdate::from_raw(raw.mtu_limit, raw.service_level, raw.rate_limit)?,
        })
    }
}

/// The response flags of E4/E5.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFlags {
    pub guids_data: bool,
    pub qos_conf: bool,
    /// Any other recognised flag (`port_info`, `sharp_state`, `max_ports`): UFM then answers
    /// with the map shape even without members.
    pub other: bool,
}

impl ListFlags {
    /// Reads flags from a raw query string; UFM's Python backend takes `true` in any case.
    pub fn from_query(query: Option<&str>) -> Self {
        let mut flags = ListFlags::default();
        for pair in query.unwrap_or("").split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let on = value.eq_ignore_ascii_case("true");
            match name {
                "guids_data" => flags.guids_data |= on,
                "qos_conf" => flags.qos_conf |= on,
                "port_info" | "sharp_state" => flags.other |= on,
                "max_ports" => flags.other |= !value.is_empty(),
                _ => {}
            }
        }
        flags
    }

    /// A list request without any of these flags gets UFM's other shape: a list of names.
    pub fn any(&self) -> bool {
        self.guids_data || self.qos_conf || self.other
    }
}

/// What one partition looks like on the wire, independent of the store's layout.
pub struct PartitionView<'a> {
    pub name: &'a str,
    pub ip_over_ib: bool,
    /// Only the management partition has a top-level membership (UFM ≥ 6.19).
    pub default_membership: Option<Membership>,
    pub qos: Qos,
    pub members: Vec<(Guid, Membership, bool)>,
}

/// Renders one partition entry as UFM's list answers it: members, and the QoS fields when asked for.
pub fn partition_json(view: &PartitionView<'_>, flags: ListFlags) -> Value {
    let mut obj = Map::new();
    obj.insert("partition".into(), Value::from(view.name));
    obj.insert("ip_over_ib".into(), Value::from(view.ip_over_ib));
    if let Some(m) = view.default_membership {
        obj.insert("membership".into(), Value::from(m.to_string()));
    }
    if flags.guids_data {
        let guids: Vec<Value> = view
            .members
            .iter()
            .map(|(guid, membership, index0)| {
                json!({"guid": guid.to_string(), "membership": membership.to_string(), "index0": index0})
            })
            .collect();
        obj.insert("guids".into(), Value::Array(guids));
    }
    if flags.qos_conf {
        obj.insert(
            "qos_conf".into(),
            json!({
                "mtu_limit": view.qos.mtu_limit,
                "rate_limit": view.qos.rate_limit,
                "service_level": view.qos.service_level,
            }),
        );
    }
    Value::Object(obj)
}

/// The `{"error": "..."}` body every refusal carries.
pub fn error_json(message: &str) -> Value {
    json!({ "error": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkeys_parse_in_either_case_and_padding() {
        assert_eq!(parse_pkey_writable("0x0005"), Ok(5));
        assert_eq!(parse_pkey_writable("0x0A30"), Ok(0xa30));
        assert_eq!(parse_pkey_writable("0X0a30"), Ok(0xa30));
        assert_eq!(parse_pkey_writable("0x7ffe"), Ok(0x7ffe));
    }

    #[test]
    fn pkeys_outside_the_exclusive_range_are_refused() {
        for bad in ["0x0", "0x7fff", "0x8000", "0xffff", "0x123456789"] {
            assert!(parse_pkey_writable(bad).is_err(), "{bad}");
        }
        for bad in ["5", "0x", "0xg1", "", "0x-1", " 0x5"] {
            assert!(matches!(parse_pkey_any(bad), Err(WireError::BadPkey(_))), "{bad}");
        }
        assert_eq!(parse_pkey_readable("0x7fff"), Ok(0x7fff));
        assert!(parse_pkey_readable("0x0").is_err());
    }

    #[test]
    fn pkeys_format_lower_case_unpadded() {
        assert_eq!(format_pkey(5), "0x5");
        assert_eq!(format_pkey(0x7fff), "0x7fff");
        assert_eq!(format_pkey(0xa30), "0xa30");
    }

    #[test]
    fn guids_accept_16_to_20_hex_digits_in_either_case() {
        let g: Guid = "02000FF000FF0009".parse().unwrap();
        assert_eq!(g.to_string(), "02000ff000ff0009");
        let long: Guid = "00000002000ff000ff00".parse().unwrap();
        assert_eq!(long.to_string(), "0002000ff000ff00");
        for bad in [
            "0200000000000",
            "02:00:00:00:00:00:00:00",
            "0x02000000000000000",
            "020000000000000000000",
            "02000000000000zz",
        ] {
            assert!(bad.parse::<Guid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn add_body_defaults_follow_the_rest_guide() {
        let r = GuidsRequest::parse(br#"{"pkey":"0x12","guids":["0200000000000001"]}"#, false).unwrap();
        assert!(!r.index0);
        assert!(r.ip_over_ib);
        assert_eq!(r.members, vec![(Guid::from(0x0200000000000001), Membership::Full)]);
    }

    #[test]
    fn add_body_memberships_must_match_guids() {
        let both = br#"{"pkey":"0x12","guids":["0200000000000001"],"membership":"full","memberships":["full"]}"#;
        assert_eq!(GuidsRequest::parse(both, false), Err(WireError::BothMemberships));
        let short = br#"{"pkey":"0x12","guids":["0200000000000001","0200000000000002"],"memberships":["full"]}"#;
        assert!(matches!(GuidsRequest::parse(short, false), Err(WireError::MembershipsLength { .. })));
        let per =
            br#"{"pkey":"0x12","guids":["0200000000000001","0200000000000002"],"memberships":["full","limited"]}"#;
        let r = GuidsRequest::parse(per, false).unwrap();
        assert_eq!(r.members[1].1, Membership::Limited);
    }

    #[test]
    fn empty_or_malformed_bodies_are_refused() {
        assert_eq!(GuidsRequest::parse(br#"{"pkey":"0x12","guids":[]}"#, false), Err(WireError::EmptyGuids));
        assert!(GuidsRequest::parse(br#"{"pkey":"0x12","guids":[]}"#, true).is_ok());
        assert!(matches!(GuidsRequest::parse(b"{", false), Err(WireError::BadJson(_))));
        assert!(matches!(
            GuidsRequest::parse(br#"{"pkey":5,"guids":["0200000000000001"]}"#, false),
            Err(WireError::BadJson(_))
        ));
        assert!(matches!(
            GuidsRequest::parse(br#"{"pkey":"0x5","guids":["0200000000000001"],"mtu_limit":3}"#, false),
            Err(WireError::BadQos { .. })
        ));
    }

    #[test]
    fn path_removal_splits_commas() {
        let r = RemoveRequest::from_path("0x5", "0200000000000001,0200000000000002").unwrap();
        assert_eq!(r.guids.len(), 2);
        assert!(RemoveRequest::from_path("0x5", ",").is_err());
    }

    #[test]
    fn list_flags_read_the_query() {
        assert!(ListFlags::from_query(Some("guids_data=true")).guids_data);
        assert!(ListFlags::from_query(Some("guids_data=True&qos_conf=true")).qos_conf);
        assert!(!ListFlags::from_query(Some("guids_data=false")).any());
        assert!(!ListFlags::from_query(None).any());
        assert!(ListFlags::from_query(Some("max_ports=10")).any());
    }
}
