//! The exec plugin protocol, version 1.0.0: the JSON both sides exchange. The daemon's host
//! ([`super::ExecPlugin`]) and the plugin driver ([`super::plugin`]) both use these types, so the two can
//! never disagree about a field name. `docs/plugins.md` is the specification written for vendors.
//!
//! One process per call. The command is `argv[1]`; the request is one JSON object on stdin; the result
//! is one JSON object on stdout with exit status 0, or an [`ErrorResult`] on stdout with a non-zero exit
//! status. Every object carries `protocolVersion`.

use ib_model::partition::{MAX_SERVICE_LEVEL, MtuLimit, PartitionOptions, Qos, RateLimit};
use ib_model::{Guid, PKey};
use serde::{Deserialize, Serialize};

/// The version VERSION is asked in, and replies to a request in an unknown version are written in:
/// the first version, which every plugin speaks.
pub const PROTOCOL_VERSION: &str = "1.0.0";

/// The version that adds partition options to ADD (`membership`, `index0`, `ipOverIb`, `qos`). A
/// 1.0.0 plugin never receives them: the daemon refuses an add with options it cannot carry.
pub const OPTIONS_VERSION: &str = "1.1.0";

/// Every protocol version this build can speak, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[PROTOCOL_VERSION, OPTIONS_VERSION];

/// Largest stdout the daemon accepts from one call; a plugin that prints more is killed. Sized for the
/// LIST of the largest fabric `docs/plugins.md` documents: 100,000 GUIDs, each a member of two
/// partitions, is 200,000 memberships; at about 50 bytes each as the protocol's types print them
/// (`{"pkey":"0x7fff","guid":"02:00:00:00:00:00:00:01"},`) and up to about 100 pretty-printed, at most
/// 20 MB.
pub const MAX_OUTPUT_BYTES: usize = 32 * 1024 * 1024;

/// Error codes of [`ErrorResult::code`]. 1–99 are reserved for this protocol; plugins may use 100 and
/// above for their own conditions.
pub mod codes {
    /// The request's `protocolVersion` is not one the plugin supports.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// `argv[1]` is not a command of the protocol.
    pub const UNKNOWN_COMMAND: u32 = 2;
    /// stdin is not a valid request for the command.
    pub const INVALID_REQUEST: u32 = 3;
    /// The plugin cannot be configured from its environment (missing or bad variables).
    pub const INVALID_CONFIG: u32 = 4;
    /// The subnet manager could not be reached, or did not answer in time, or TLS failed.
    pub const UNREACHABLE: u32 = 5;
    /// The subnet manager answered with a failure (bad credentials, refused change, server error).
    pub const REFUSED: u32 = 6;
    /// The subnet manager answered something the plugin could not understand.
    pub const BAD_RESPONSE: u32 = 7;
    /// First code a plugin may define for itself.
    pub const PLUGIN_SPECIFIC: u32 = 100;
}

/// The commands, as they appear in `argv[1]` and in [`Request::command`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    /// Which protocol versions the plugin speaks. Must work without any configuration.
    Version,
    /// Check that the subnet manager is reachable and accepts the plugin's credentials.
    Validate,
    /// Make every GUID a full member of the partition.
    Add,
    /// End the membership of every GUID in the partition; non-members are not an error.
    Remove,
    /// Every (partition, GUID) membership of the fabric.
    List,
}

impl Command {
    /// Every command, in the order the protocol lists them.
    pub const ALL: [Command; 5] = [Command::Version, Command::Validate, Command::Add, Command::Remove, Command::List];

    /// The command's name as the plugin receives it in its first argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Version => "VERSION",
            Command::Validate => "VALIDATE",
            Command::Add => "ADD",
            Command::Remove => "REMOVE",
            Command::List => "LIST",
        }
    }

    /// The command named exactly (upper case) as in `argv[1]`.
    pub fn parse(text: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the daemon writes to the plugin's stdin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The protocol version this message follows.
    pub protocol_version: String,
    /// The same command as `argv[1]`, for plugins that prefer to read everything from stdin.
    pub command: Command,
    /// ADD and REMOVE only: the partition as `0x` and four upper-case hex digits (`0x0005`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkey: Option<String>,
    /// ADD and REMOVE only: GUIDs as lower-case colon-separated bytes (`02:00:00:00:00:00:00:01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guids: Option<Vec<String>>,
    /// ADD, from 1.1.0: `"full"` or `"limited"`; absent means full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
    /// ADD, from 1.1.0: put the partition at index 0 of each port's P_Key table; absent means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index0: Option<bool>,
    /// ADD, from 1.1.0: the partition has an IPoIB broadcast group; absent means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_over_ib: Option<bool>,
    /// ADD, from 1.1.0: the partition's QoS, to set along with the add; absent leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<WireQos>,
}

/// A partition's QoS on the wire, with UFM's values: `mtuLimit` 2 or 4, `serviceLevel` 0-15,
/// `rateLimit` one of UFM's rates in Gb/s (2.5, 5, 10, … 300).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireQos {
    /// `mtuLimit`: 2 or 4.
    pub mtu_limit: u8,
    /// `serviceLevel`: 0–15.
    pub service_level: u8,
    /// `rateLimit`: one of UFM's rates in Gb/s.
    pub rate_limit: serde_json::Number,
}

impl Request {
    /// A request without partition or GUIDs (VERSION, VALIDATE, LIST).
    pub fn plain(version: &str, command: Command) -> Self {
        Request {
            protocol_version: version.to_owned(),
            command,
            pkey: None,
            guids: None,
            membership: None,
            index0: None,
            ip_over_ib: None,
            qos: None,
        }
    }

    /// An ADD or REMOVE request.
    pub fn membership(version: &str, command: Command, pkey: PKey, guids: &[Guid]) -> Self {
        Request {
            pkey: Some(pkey.to_string()),
            guids: Some(guids.iter().map(Guid::to_string).collect()),
            ..Request::plain(version, command)
        }
    }

    /// An ADD request carrying partition options (protocol 1.1.0 and later).
    pub fn add_with(version: &str, pkey: PKey, guids: &[Guid], options: &PartitionOptions) -> Self {
        Request {
            membership: Some(options.membership.as_str().to_owned()),
            index0: Some(options.index0),
            ip_over_ib: Some(options.ip_over_ib),
            qos: options.qos.map(|q| WireQos {
                mtu_limit: q.mtu_limit.ufm(),
                service_level: q.service_level,
                rate_limit: serde_json::Number::from_f64(f64::from(q.rate_limit.tenths_gbps()) / 10.0)
                    .unwrap_or_else(|| serde_json::Number::from(0)),
            }),
            ..Request::membership(version, Command::Add, pkey, guids)
        }
    }

    /// The partition options of an ADD request, checked; `None` when it carries none (a 1.0.0 add).
    pub fn options(&self) -> Result<Option<PartitionOptions>, ProtocolError> {
        if self.membership.is_none() && self.index0.is_none() && self.ip_over_ib.is_none() && self.qos.is_none() {
            return Ok(None);
        }
        let defaults = PartitionOptions::default();
        let membership = match self.membership.as_deref() {
            None => defaults.membership,
            Some(text) => ib_model::partition::Membership::parse(text).ok_or_else(|| ProtocolError::Invalid {
                field: "membership",
                reason: format!("{:?} is neither \"full\" nor \"limited\"", crate::manager::excerpt(text, 64)),
            })?,
        };
        let qos = match &self.qos {
            None => None,
            Some(q) => {
                let mtu_limit = MtuLimit::from_ufm(u64::from(q.mtu_limit)).ok_or_else(|| ProtocolError::Invalid {
                    field: "qos.mtuLimit",
                    reason: format!("{} is not 2 or 4", q.mtu_limit),
                })?;
                if q.service_level > MAX_SERVICE_LEVEL {
                    return Err(ProtocolError::Invalid {
                        field: "qos.serviceLevel",
                        reason: format!("{} is not 0-{MAX_SERVICE_LEVEL}", q.service_level),
                    });
                }
                let rate_limit =
                    q.rate_limit.as_f64().and_then(RateLimit::from_gbps).ok_or_else(|| ProtocolError::Invalid {
                        field: "qos.rateLimit",
                        reason: format!("{} is not one of {}", q.rate_limit, RateLimit::allowed()),
                    })?;
                Some(Qos { mtu_limit, service_level: q.service_level, rate_limit })
            }
        };
        Ok(Some(PartitionOptions {
            membership,
            index0: self.index0.unwrap_or(defaults.index0),
            ip_over_ib: self.ip_over_ib.unwrap_or(defaults.ip_over_ib),
            qos,
        }))
    }

    /// The partition and GUIDs of an ADD or REMOVE request, checked.
    pub fn partition(&self) -> Result<(PKey, Vec<Guid>), ProtocolError> {
        let text = self.pkey.as_deref().ok_or(ProtocolError::Missing("pkey"))?;
        let pkey = PKey::parse(text).map_err(|e| ProtocolError::Invalid { field: "pkey", reason: e.to_string() })?;
        let guids = self.guids.as_deref().ok_or(ProtocolError::Missing("guids"))?;
        let guids = guids
            .iter()
            .map(|g| parse_guid(g))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ProtocolError::Invalid { field: "guids", reason })?;
        Ok((pkey, guids))
    }
}

/// VERSION's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionResult {
    /// The protocol version this message follows.
    pub protocol_version: String,
    /// Every protocol version the plugin speaks.
    pub supported_versions: Vec<String>,
}

/// The result of VALIDATE, ADD and REMOVE: success carries nothing but the version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyResult {
    /// The protocol version this message follows.
    pub protocol_version: String,
}

/// One membership in a LIST result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The partition exactly as the subnet manager names it (UFM: `0x5`, `0x7fff`).
    pub pkey: String,
    /// A GUID in any form of [`parse_guid`].
    pub guid: String,
}

/// LIST's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResult {
    /// The protocol version this message follows.
    pub protocol_version: String,
    /// Every (partition, GUID) membership the fabric holds.
    pub memberships: Vec<Membership>,
}

/// What a failing plugin prints on stdout before exiting non-zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResult {
    /// Optional on input: an error is reported even from a plugin too broken to say its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The error class (see the `codes` module).
    pub code: u32,
    /// What went wrong, for people.
    pub msg: String,
    /// More detail, if the plugin has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// ADD and REMOVE: whether the subnet manager may have applied the change although the call failed
    /// (`true`: a timeout or a broken connection after the request was sent, a server error), or certainly
    /// did not (`false`). Optional; see [`ErrorResult::outcome_unknown`] for what its absence means.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "outcomeUnknown")]
    pub outcome_unknown: Option<bool>,
}

impl ErrorResult {
    /// An error of class `code` saying `msg`, with the current protocol version.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        ErrorResult {
            protocol_version: Some(PROTOCOL_VERSION.to_owned()),
            code,
            msg: msg.into(),
            details: None,
            outcome_unknown: None,
        }
    }

    /// Whether the change may have been applied: `outcomeUnknown` when the plugin says, otherwise `false`
    /// only for codes 1–4, which mean the request never reached the subnet manager (version, command,
    /// request, configuration), and `true` for every other code, which may come after it did.
    pub fn outcome_unknown(&self) -> bool {
        self.outcome_unknown.unwrap_or(!matches!(self.code, codes::INCOMPATIBLE_VERSION..=codes::INVALID_CONFIG))
    }

    /// The same, with `details`.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// `msg`, then `details` when given: what the daemon logs.
    pub fn message(&self) -> String {
        match self.details.as_deref() {
            Some(d) if !d.is_empty() => format!("{}: {d}", self.msg),
            _ => self.msg.clone(),
        }
    }
}

/// Why a request or result does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The text is not the JSON this command expects.
    #[error("not valid JSON for this command: {0}")]
    Json(String),
    /// The message names a protocol version this side does not speak.
    #[error("protocolVersion {got:?} is not supported (supported: {})", supported.join(", "))]
    Version {
        /// The version the request named.
        got: String,
        /// The versions this side speaks.
        supported: Vec<String>,
    },
    /// A required field is absent.
    #[error("field {0:?} is missing")]
    Missing(&'static str),
    /// A field has a value the protocol does not allow.
    #[error("field {field:?}: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// Why, in words.
        reason: String,
    },
}

/// Parses a GUID as plugins may write it: any form ib-kubernetes accepts elsewhere (`xx:xx:…`, `xx-xx-…`,
/// `xxxx.xxxx.xxxx.xxxx`) or UFM's 16 hex digits without separators.
pub fn parse_guid(text: &str) -> Result<Guid, String> {
    if text.len() == 16 {
        return Guid::parse_ufm(text).map_err(|e| e.to_string());
    }
    Guid::parse(text).map_err(|e| e.to_string())
}

/// Whether this build speaks `version`.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The newest version both this build and a plugin supporting `theirs` speak.
pub fn negotiate(theirs: &[String]) -> Option<&'static str> {
    SUPPORTED_VERSIONS.iter().rev().copied().find(|ours| theirs.iter().any(|t| t == ours))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_use_the_documented_field_names_and_forms() {
        let pkey = PKey::new(5).unwrap();
        let guids = [Guid::from_u64(0x0200_0000_0000_0001), Guid::from_u64(0x02ff_0000_0000_00ab)];
        let req = Request::membership(PROTOCOL_VERSION, Command::Add, pkey, &guids);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"protocolVersion": "1.0.0", "command": "ADD", "pkey": "0x0005",
                   "guids": ["02:00:00:00:00:00:00:01", "02:ff:00:00:00:00:00:ab"]})
        );
        assert_eq!(req.partition().unwrap(), (pkey, guids.to_vec()));
        assert_eq!(
            serde_json::to_value(Request::plain("1.0.0", Command::List)).unwrap(),
            json!({"protocolVersion": "1.0.0", "command": "LIST"})
        );
    }

    #[test]
    fn partition_fields_are_checked() {
        let mut req = Request::plain("1.0.0", Command::Add);
        assert_eq!(req.partition(), Err(ProtocolError::Missing("pkey")));
        req.pkey = Some("0x7FFF".into());
        assert!(matches!(req.partition(), Err(ProtocolError::Invalid { field: "pkey", .. })));
        req.pkey = Some("0x5".into());
        assert_eq!(req.partition(), Err(ProtocolError::Missing("guids")));
        req.guids = Some(vec!["nope".into()]);
        assert!(matches!(req.partition(), Err(ProtocolError::Invalid { field: "guids", .. })));
    }

    #[test]
    fn guids_in_every_accepted_form() {
        let g = Guid::from_u64(0x0200_0ff0_00ff_0009);
        for text in ["02:00:0f:f0:00:ff:00:09", "02-00-0F-F0-00-FF-00-09", "0200.0ff0.00ff.0009", "02000FF000FF0009"] {
            assert_eq!(parse_guid(text), Ok(g), "{text}");
        }
        assert!(parse_guid("02:00").is_err());
    }

    #[test]
    fn commands_round_trip_and_are_case_sensitive() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
        }
        assert_eq!(Command::parse("add"), None);
    }

    #[test]
    fn options_travel_in_add_from_1_1_0_and_are_checked() {
        use ib_model::partition::Membership;
        let pkey = PKey::new(5).unwrap();
        let guids = [Guid::from_u64(1)];
        let qos = Qos { mtu_limit: MtuLimit::Mtu4K, service_level: 3, rate_limit: RateLimit::from_gbps(2.5).unwrap() };
        let options =
            PartitionOptions { membership: Membership::Limited, index0: false, ip_over_ib: true, qos: Some(qos) };
        let req = Request::add_with(OPTIONS_VERSION, pkey, &guids, &options);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"protocolVersion": "1.1.0", "command": "ADD", "pkey": "0x0005", "guids": ["00:00:00:00:00:00:00:01"],
                   "membership": "limited", "index0": false, "ipOverIb": true,
                   "qos": {"mtuLimit": 4, "serviceLevel": 3, "rateLimit": 2.5}})
        );
        assert_eq!(req.options(), Ok(Some(options)));
        // A 1.0.0 add carries none, and its JSON is what it always was.
        let plain = Request::membership(PROTOCOL_VERSION, Command::Add, pkey, &guids);
        assert_eq!(plain.options(), Ok(None));
        assert!(!serde_json::to_string(&plain).unwrap().contains("membership"));
        // Absent fields take the defaults.
        let only: Request = serde_json::from_value(json!({"protocolVersion": "1.1.0", "command": "ADD",
            "pkey": "0x5", "guids": [], "membership": "limited"}))
        .unwrap();
        assert_eq!(
            only.options(),
            Ok(Some(PartitionOptions { membership: Membership::Limited, ..PartitionOptions::default() }))
        );
        for (extra, field) in [
            (json!({"membership": "both"}), "membership"),
            (json!({"qos": {"mtuLimit": 3, "serviceLevel": 0, "rateLimit": 2.5}}), "qos.mtuLimit"),
            (json!({"qos": {"mtuLimit": 2, "serviceLevel": 16, "rateLimit": 2.5}}), "qos.serviceLevel"),
            (json!({"qos": {"mtuLimit": 2, "serviceLevel": 0, "rateLimit": 7}}), "qos.rateLimit"),
        ] {
            let mut v = json!({"protocolVersion": "1.1.0", "command": "ADD", "pkey": "0x5", "guids": []});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let req: Request = serde_json::from_value(v).unwrap();
            let e = req.options().unwrap_err();
            assert!(matches!(&e, ProtocolError::Invalid { field: f, .. } if *f == field), "{e:?}");
        }
        let huge: Request = serde_json::from_value(json!({"protocolVersion": "1.1.0", "command": "ADD",
            "pkey": "0x5", "guids": [], "membership": "x".repeat(1 << 20)}))
        .unwrap();
        assert!(huge.options().unwrap_err().to_string().len() < 300);
    }

    #[test]
    fn negotiation_picks_a_common_version() {
        assert_eq!(negotiate(&["0.9.0".into(), "1.0.0".into()]), Some("1.0.0"));
        assert_eq!(negotiate(&["1.0.0".into(), "1.1.0".into()]), Some("1.1.0"));
        assert_eq!(negotiate(&["2.0.0".into()]), None);
        assert!(is_supported("1.0.0") && is_supported("1.1.0") && !is_supported("1.2.0"));
    }

    #[test]
    fn errors_say_whether_the_outcome_is_unknown_or_leave_it_to_the_code() {
        let read = |text: &str| serde_json::from_str::<ErrorResult>(text).unwrap().outcome_unknown();
        for code in 1..=4 {
            assert!(!read(&format!(r#"{{"code":{code},"msg":"m"}}"#)), "code {code}");
        }
        for code in [5, 6, 7, 100] {
            assert!(read(&format!(r#"{{"code":{code},"msg":"m"}}"#)), "code {code}");
        }
        assert!(!read(r#"{"code":5,"msg":"m","outcomeUnknown":false}"#));
        assert!(read(r#"{"code":3,"msg":"m","outcomeUnknown":true}"#));
        let mut e = ErrorResult::new(6, "refused");
        assert_eq!(serde_json::to_value(&e).unwrap(), json!({"protocolVersion": "1.0.0", "code": 6, "msg": "refused"}));
        e.outcome_unknown = Some(false);
        assert_eq!(serde_json::to_value(&e).unwrap()["outcomeUnknown"], json!(false));
    }

    #[test]
    fn errors_read_without_version_and_join_details() {
        let e: ErrorResult = serde_json::from_str(r#"{"code":6,"msg":"refused","details":"status 401"}"#).unwrap();
        assert_eq!((e.code, e.message()), (6, "refused: status 401".to_owned()));
        assert_eq!(ErrorResult::new(3, "bad").message(), "bad");
    }
}
