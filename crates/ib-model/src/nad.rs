//! What a NetworkAttachmentDefinition means to ib-kubernetes.
//!
//! The CNI config in `spec.config` is either a single plugin config or a conflist. It is an InfiniBand
//! network when its top-level `type` is exactly `ib-sriov`, or when it has a `plugins` list, in which case
//! the first plugin of type `ib-sriov` is the one read (the Go daemon's rule). From that config
//! `pkey` and `capabilities.infinibandGUID` matter, and the partition options below.
//!
//! Partition options are keys of the same plugin object, named as UFM's REST API names them:
//! `membership` (`"full"` or `"limited"`), `ip_over_ib` and `index0` (booleans), the partition's QoS
//! `mtu_limit` (2 or 4), `service_level` (0-15) and `rate_limit` (a rate UFM allows, in Gb/s), and
//! `allocate_pkey` (`true`: ib-kubernetes chooses the partition, the config names none). ib-sriov-cni
//! reads its config with Go's `encoding/json`, which ignores keys it does not know, so the CNI is not
//! affected by them. A key written twice counts once, with its last value, as Go reads it too.

use serde_json::{Map, Value};

use crate::partition::{MAX_SERVICE_LEVEL, Membership, MtuLimit, PartitionOptions, Qos, RateLimit};
use crate::pkey::{PKey, PKeyError};
use crate::text::echo;

/// The CNI type ib-sriov-cni registers.
pub const IB_SRIOV_TYPE: &str = "ib-sriov";

/// The longest `pkey` text a NAD may declare. `0x` and four hex digits is all a partition needs; the
/// parser also takes leading zeros, so the cap is generous, but it is a cap: the text is copied into
/// every pod annotation the NAD configures, and a pod's [`Selection`](crate::annotation::Selection)
/// keeps a pkey text only up to the same length.
pub const MAX_PKEY_BYTES: usize = crate::annotation::MAX_KEPT_VALUE_CHARS;

/// How a NAD is classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NadKind {
    /// An ib-sriov network: what ib-kubernetes configures for it.
    InfiniBand(IbSriovSpec),
    /// Some other CNI: the elements that select it are not ib-kubernetes' business.
    Other,
}

/// The parts of an ib-sriov config that ib-kubernetes uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IbSriovSpec {
    /// `None` for a GUID-only network (no `pkey`, or `""`): no subnet-manager call, still configured.
    pub pkey: Option<PKey>,
    /// The pkey exactly as the NAD writes it; it is copied into `cni-args.pkey`.
    pub pkey_text: String,
    /// `capabilities.infinibandGUID`: the GUID goes into `infiniband-guid` instead of `cni-args.guid`.
    pub runtime_config_guid: bool,
    /// The partition options the NAD states; what it leaves out comes from the cluster's defaults.
    pub options: NadOptions,
}

impl IbSriovSpec {
    /// How this network's GUIDs join its partition: what the NAD says, the rest from `defaults`.
    pub fn partition_options(&self, defaults: &PartitionOptions) -> PartitionOptions {
        self.options.resolve(defaults)
    }
}

/// The partition options a NAD states. `None` (or no QoS key at all) means the NAD leaves it to the
/// cluster's defaults; the all-`None` default is a NAD that says nothing, today's behaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NadOptions {
    /// `membership`: `full` or `limited`.
    pub membership: Option<Membership>,
    /// `ip_over_ib`.
    pub ip_over_ib: Option<bool>,
    /// `index0`.
    pub index0: Option<bool>,
    /// Set when any of `mtu_limit`, `service_level`, `rate_limit` is given; the others then take
    /// UFM's defaults (2, 0, 2.5), which is what UFM gives a partition created without them.
    pub qos: Option<Qos>,
    /// `allocate_pkey: true`: the NAD asks ib-kubernetes to choose its partition.
    pub allocate_pkey: bool,
}

impl NadOptions {
    /// The options for this NAD's members: each stated value, else the one of `defaults`.
    pub fn resolve(&self, defaults: &PartitionOptions) -> PartitionOptions {
        PartitionOptions {
            membership: self.membership.unwrap_or(defaults.membership),
            ip_over_ib: self.ip_over_ib.unwrap_or(defaults.ip_over_ib),
            index0: self.index0.unwrap_or(defaults.index0),
            qos: self.qos.or(defaults.qos),
        }
    }
}

/// Why a NAD's config was refused. Every user value it holds (a field name taken from the config, a
/// pkey text) is already shortened (see [`text::shorten`](crate::text::shorten)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "each variant's #[error] message is its documentation; its fields are the values the message names"
)]
pub enum NadError {
    #[error("spec.config is not valid JSON: {reason}")]
    Json { reason: String },
    #[error("spec.config must be a JSON object, found {found}")]
    NotAnObject { found: &'static str },
    #[error("spec.config field {field:?} must be {expected}")]
    FieldType { field: String, expected: &'static str },
    #[error("spec.config field {field:?} is {bytes} bytes, longer than the limit of {limit} for a pkey")]
    PKeyTooLong { field: String, bytes: usize, limit: usize },
    #[error("spec.config of the ib-sriov plugin: {0}")]
    PKey(#[from] PKeyError),
    /// A partition option with a value of the right JSON type that the subnet manager would refuse.
    #[error("spec.config field {field:?} is {value}: must be {expected}")]
    OptionValue { field: String, value: String, expected: String },
    #[error(
        "spec.config field {field:?} is true while the config also names pkey {pkey:?}: name a pkey or ask for one, not both"
    )]
    AllocateWithPKey { field: String, pkey: String },
}

/// Classifies a NAD from its `spec.config` (absent or empty means a config kept on the nodes, which
/// ib-kubernetes cannot read: not treated as InfiniBand).
pub fn classify(config: Option<&str>) -> Result<NadKind, NadError> {
    let Some(config) = config.filter(|c| !c.trim().is_empty()) else {
        return Ok(NadKind::Other);
    };
    let value: Value =
        serde_json::from_str(config).map_err(|e| NadError::Json { reason: crate::annotation::json_reason(&e) })?;
    let Value::Object(top) = value else {
        return Err(NadError::NotAnObject { found: crate::annotation::json_kind(&value) });
    };
    if cni_type(&top, "type")? == Some(IB_SRIOV_TYPE) {
        return read_spec(&top, "").map(NadKind::InfiniBand);
    }
    let plugins = match top.get("plugins") {
        None | Some(Value::Null) => return Ok(NadKind::Other),
        Some(Value::Array(plugins)) => plugins,
        Some(_) => {
            return Err(NadError::FieldType { field: "plugins".into(), expected: "a list" });
        }
    };
    for (i, plugin) in plugins.iter().enumerate() {
        let Value::Object(plugin) = plugin else {
            return Err(NadError::FieldType { field: format!("plugins[{i}]"), expected: "an object" });
        };
        if cni_type(plugin, &format!("plugins[{i}].type"))? == Some(IB_SRIOV_TYPE) {
            return read_spec(plugin, &format!("plugins[{i}].")).map(NadKind::InfiniBand);
        }
    }
    Ok(NadKind::Other)
}

fn cni_type<'a>(object: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, NadError> {
    match object.get("type") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(t)),
        Some(_) => Err(NadError::FieldType { field: field.into(), expected: "a string" }),
    }
}

fn read_spec(plugin: &Map<String, Value>, prefix: &str) -> Result<IbSriovSpec, NadError> {
    let pkey_text = match plugin.get("pkey") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(p)) => p.clone(),
        Some(_) => {
            return Err(NadError::FieldType { field: format!("{prefix}pkey"), expected: "a string such as \"0x5\"" });
        }
    };
    if pkey_text.len() > MAX_PKEY_BYTES {
        return Err(NadError::PKeyTooLong {
            field: format!("{prefix}pkey"),
            bytes: pkey_text.len(),
            limit: MAX_PKEY_BYTES,
        });
    }
    let pkey = if pkey_text.is_empty() { None } else { Some(PKey::parse(&pkey_text)?) };
    let runtime_config_guid = match plugin.get("capabilities") {
        None | Some(Value::Null) => false,
        Some(Value::Object(caps)) => {
            // libcni reads capabilities as map[string]bool; anything else breaks the whole config.
            for (name, value) in caps {
                if !value.is_boolean() {
                    return Err(NadError::FieldType {
                        field: format!("{prefix}capabilities.{}", echo(name)),
                        expected: "a boolean",
                    });
                }
            }
            caps.get("infinibandGUID") == Some(&Value::Bool(true))
        }
        Some(_) => {
            return Err(NadError::FieldType { field: format!("{prefix}capabilities"), expected: "an object" });
        }
    };
    let options = read_options(plugin, prefix)?;
    if options.allocate_pkey && pkey.is_some() {
        return Err(NadError::AllocateWithPKey { field: format!("{prefix}allocate_pkey"), pkey: pkey_text });
    }
    Ok(IbSriovSpec { pkey, pkey_text, runtime_config_guid, options })
}

/// Longest rendering of a refused option value kept in an error.
const VALUE_ECHO_BYTES: usize = crate::text::ECHO_CHARS;

/// A refused value as it appears in the config, shortened: a megabyte string stays a short message.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", echo(s)),
        Value::Number(n) => {
            let text = n.to_string();
            crate::text::shorten(&text, VALUE_ECHO_BYTES).into_owned()
        }
        other => crate::annotation::json_kind(other).to_owned(),
    }
}

fn read_options(plugin: &Map<String, Value>, prefix: &str) -> Result<NadOptions, NadError> {
    let field = |name: &str| format!("{prefix}{name}");
    let bool_option = |name: &str| -> Result<Option<bool>, NadError> {
        match plugin.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(NadError::FieldType { field: field(name), expected: "true or false" }),
        }
    };
    let membership = match plugin.get("membership") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(Membership::parse(text).ok_or_else(|| NadError::OptionValue {
            field: field("membership"),
            value: shown(&Value::String(text.clone())),
            expected: "\"full\" or \"limited\"".into(),
        })?),
        Some(_) => return Err(NadError::FieldType { field: field("membership"), expected: "\"full\" or \"limited\"" }),
    };
    let ip_over_ib = bool_option("ip_over_ib")?;
    let index0 = bool_option("index0")?;
    let allocate_pkey = bool_option("allocate_pkey")?.unwrap_or(false);

    let number = |name: &str| -> Result<Option<(&Value, f64)>, NadError> {
        match plugin.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(n)) => Ok(n.as_f64().map(|f| (v, f))),
            Some(_) => Err(NadError::FieldType { field: field(name), expected: "a number" }),
        }
    };
    let refuse = |name: &str, value: &Value, expected: String| NadError::OptionValue {
        field: field(name),
        value: shown(value),
        expected,
    };
    let mtu_limit = match number("mtu_limit")? {
        None => None,
        Some((v, f)) => {
            let mtu = (f.fract() == 0.0 && f >= 0.0).then(|| MtuLimit::from_ufm(f as u64)).flatten();
            Some(mtu.ok_or_else(|| refuse("mtu_limit", v, "2 (2048-byte MTU) or 4 (4096-byte MTU)".into()))?)
        }
    };
    let service_level = match number("service_level")? {
        None => None,
        Some((v, f)) => {
            if f.fract() != 0.0 || !(0.0..=f64::from(MAX_SERVICE_LEVEL)).contains(&f) {
                return Err(refuse("service_level", v, format!("a whole number from 0 to {MAX_SERVICE_LEVEL}")));
            }
            Some(f as u8)
        }
    };
    let rate_limit = match number("rate_limit")? {
        None => None,
        Some((v, f)) => Some(RateLimit::from_gbps(f).ok_or_else(|| {
            refuse("rate_limit", v, format!("one of the rates UFM allows, in Gb/s: {}", RateLimit::allowed()))
        })?),
    };
    let qos = (mtu_limit.is_some() || service_level.is_some() || rate_limit.is_some()).then(|| Qos {
        mtu_limit: mtu_limit.unwrap_or_default(),
        service_level: service_level.unwrap_or(0),
        rate_limit: rate_limit.unwrap_or_default(),
    });
    Ok(NadOptions { membership, ip_over_ib, index0, qos, allocate_pkey })
}

#[cfg(test)]
mod tests;
