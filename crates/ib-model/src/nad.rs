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
mod tests {
    use super::*;
    use crate::partition::{Membership, MtuLimit, PartitionOptions, Qos, RateLimit};
    use proptest::prelude::*;

    fn ib(config: &str) -> IbSriovSpec {
        match classify(Some(config)) {
            Ok(NadKind::InfiniBand(spec)) => spec,
            other => panic!("{config}: {other:?}"),
        }
    }

    #[test]
    fn single_plugin_config() {
        let spec = ib(
            r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"sriov-network","pkey":"0x5","link_state":"enable","ipam":{}}"#,
        );
        assert_eq!(spec.pkey, Some(PKey::parse("0x5").unwrap()));
        assert_eq!(spec.pkey_text, "0x5");
        assert!(!spec.runtime_config_guid);
    }

    #[test]
    fn conflist_uses_the_first_ib_sriov_plugin() {
        let spec = ib(
            r#"{"cniVersion":"0.3.1","name":"ib-net","plugins":[{"type":"tuning"},{"type":"ib-sriov","pkey":"0x00FF","capabilities":{"infinibandGUID":true}},{"type":"ib-sriov","pkey":"0x6"}]}"#,
        );
        assert_eq!((spec.pkey_text.as_str(), spec.runtime_config_guid), ("0x00FF", true));
    }

    #[test]
    fn guid_only_networks() {
        assert_eq!(ib(r#"{"type":"ib-sriov"}"#).pkey, None);
        assert_eq!(
            ib(r#"{"type":"ib-sriov","pkey":""}"#),
            IbSriovSpec {
                pkey: None,
                pkey_text: String::new(),
                runtime_config_guid: false,
                options: NadOptions::default()
            }
        );
    }

    #[test]
    fn other_networks() {
        for config in [
            r#"{"type":"macvlan","master":"eth0"}"#,
            r#"{"type":"ib-sriov-cni"}"#,
            r#"{"plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
            r#"{"name":"x"}"#,
        ] {
            assert_eq!(classify(Some(config)), Ok(NadKind::Other), "{config}");
        }
        assert_eq!(classify(None), Ok(NadKind::Other));
        assert_eq!(classify(Some("  ")), Ok(NadKind::Other));
    }

    #[test]
    fn errors_name_the_field_and_value() {
        assert!(matches!(classify(Some("{not json")), Err(NadError::Json { .. })));
        assert_eq!(classify(Some("[1]")), Err(NadError::NotAnObject { found: "a list" }));
        let e = classify(Some(r#"{"type":"ib-sriov","pkey":5}"#)).unwrap_err();
        assert_eq!(e.to_string(), "spec.config field \"pkey\" must be a string such as \"0x5\"");
        let e = classify(Some(r#"{"plugins":[{"type":"ib-sriov","pkey":"1234"}]}"#)).unwrap_err();
        assert!(e.to_string().contains("\"1234\""), "{e}");
        for (pkey, word) in [("0x0", "0x0000"), ("0x7fff", "management"), ("0x8000", "15 bits")] {
            let e = classify(Some(&format!(r#"{{"type":"ib-sriov","pkey":"{pkey}"}}"#))).unwrap_err();
            assert!(e.to_string().contains(word) && e.to_string().contains(pkey), "{e}");
        }
        assert_eq!(
            classify(Some(r#"{"plugins":{"type":"ib-sriov"}}"#)),
            Err(NadError::FieldType { field: "plugins".into(), expected: "a list" })
        );
        assert_eq!(
            classify(Some(r#"{"plugins":[{"type":"x"},"ib-sriov"]}"#)),
            Err(NadError::FieldType { field: "plugins[1]".into(), expected: "an object" })
        );
        assert_eq!(
            classify(Some(r#"{"type":"ib-sriov","capabilities":{"infinibandGUID":"yes"}}"#)),
            Err(NadError::FieldType { field: "capabilities.infinibandGUID".into(), expected: "a boolean" })
        );
        assert!(classify(Some(r#"{"type":7}"#)).is_err());
    }

    #[test]
    fn pkey_text_has_a_length_limit() {
        let at_limit = format!("0x{}5", "0".repeat(MAX_PKEY_BYTES - 3));
        assert_eq!(at_limit.len(), MAX_PKEY_BYTES);
        assert_eq!(
            ib(&format!(r#"{{"type":"ib-sriov","pkey":"{at_limit}"}}"#)).pkey,
            Some(PKey::parse("0x5").unwrap())
        );
        for (text, field) in [(format!("0{at_limit}"), "pkey"), (format!("0x{}", "0".repeat(200 * 1024)), "pkey")] {
            let config = format!(r#"{{"type":"ib-sriov","pkey":"{text}"}}"#);
            assert_eq!(
                classify(Some(&config)),
                Err(NadError::PKeyTooLong { field: field.into(), bytes: text.len(), limit: MAX_PKEY_BYTES })
            );
            let config = format!(r#"{{"plugins":[{{"type":"ib-sriov","pkey":"{text}"}}]}}"#);
            let e = classify(Some(&config)).unwrap_err();
            assert!(matches!(&e, NadError::PKeyTooLong { field, .. } if field == "plugins[0].pkey"), "{e}");
            assert!(e.to_string().contains(&format!("{} bytes", text.len())) && e.to_string().len() < 200, "{e}");
        }
    }

    /// Field names come from the config; a 200 KB one is shortened, in the error value and its message.
    #[test]
    fn hostile_field_names_are_shortened() {
        let key = "k".repeat(200 * 1024);
        let config = format!(r#"{{"type":"ib-sriov","capabilities":{{"{key}":1}}}}"#);
        let e = classify(Some(&config)).unwrap_err();
        assert!(matches!(&e, NadError::FieldType { field, .. } if field.ends_with("…(204800 bytes)")), "{e}");
        assert!(e.to_string().len() < 300, "{}", e.to_string().len());
    }

    #[test]
    fn deep_nesting_is_a_clean_error() {
        let depth = 100_000;
        for config in [
            "[".repeat(depth),
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            format!(r#"{{"type":"ib-sriov","ipam":{}{}}}"#, "[".repeat(depth), "]".repeat(depth)),
            format!(r#"{{"plugins":[{}1{}]}}"#, r#"{"k":"#.repeat(depth / 5), "}".repeat(depth / 5)),
        ] {
            let e = classify(Some(&config)).unwrap_err();
            assert!(matches!(&e, NadError::Json { reason } if reason.contains("recursion limit")), "{e}");
        }
    }

    /// NAD configs have no size limit of their own (the API server's object limit applies); a megabyte
    /// one is read in one linear pass and means what it says.
    #[test]
    fn megabyte_config_is_read() {
        let filler = "f".repeat(1 << 20);
        let config =
            format!(r#"{{"type":"ib-sriov","note":"{filler}","pkey":"0x7","capabilities":{{"infinibandGUID":true}}}}"#);
        let spec = ib(&config);
        assert_eq!((spec.pkey_text.as_str(), spec.runtime_config_guid), ("0x7", true));
        let plugins = vec![r#"{"type":"tuning"}"#; 100_000].join(",");
        let config = format!(r#"{{"plugins":[{plugins},{{"type":"ib-sriov","pkey":"0x8"}}]}}"#);
        assert_eq!(ib(&config).pkey_text, "0x8");
    }

    #[test]
    fn nul_bytes_and_bad_escapes() {
        for config in [
            "{\"type\":\"ib-sriov\0\"}",
            r#"{"type":"\ud800"}"#,
            r#"{"type":"ib-sriov","pkey":"\uZZZZ"}"#,
            "{\"type\":\"ib-sriov\"}\0",
        ] {
            assert!(matches!(classify(Some(config)), Err(NadError::Json { .. })), "{config:?}");
        }
        // An escaped NUL is a character: the type is not ib-sriov, the pkey not a pkey.
        assert_eq!(classify(Some(r#"{"type":"ib-sriov\u0000"}"#)), Ok(NadKind::Other));
        let e = classify(Some(r#"{"type":"ib-sriov","pkey":"0x5\u0000"}"#)).unwrap_err();
        assert!(e.to_string().contains(r#""0x5\0""#), "{e}");
    }

    fn options(extra: &str) -> Result<NadOptions, NadError> {
        classify(Some(&format!(r#"{{"type":"ib-sriov","pkey":"0x5"{extra}}}"#))).map(|kind| match kind {
            NadKind::InfiniBand(spec) => spec.options,
            NadKind::Other => panic!("{extra}: not InfiniBand"),
        })
    }

    #[test]
    fn a_nad_without_options_keeps_todays_behaviour() {
        let spec = ib(r#"{"type":"ib-sriov","pkey":"0x5"}"#);
        assert_eq!(spec.options, NadOptions::default());
        let resolved = spec.partition_options(&PartitionOptions::default());
        assert_eq!(
            resolved,
            PartitionOptions { membership: Membership::Full, index0: true, ip_over_ib: true, qos: None }
        );
    }

    #[test]
    fn every_option_is_read_in_single_configs_and_conflists() {
        let extra = r#","membership":"limited","ip_over_ib":false,"index0":false,"mtu_limit":4,"service_level":15,"rate_limit":2.5"#;
        let want = NadOptions {
            membership: Some(Membership::Limited),
            ip_over_ib: Some(false),
            index0: Some(false),
            qos: Some(Qos {
                mtu_limit: MtuLimit::Mtu4K,
                service_level: 15,
                rate_limit: RateLimit::from_gbps(2.5).unwrap(),
            }),
            allocate_pkey: false,
        };
        assert_eq!(options(extra), Ok(want));
        let conflist =
            format!(r#"{{"plugins":[{{"type":"tuning","membership":"bogus"}},{{"type":"ib-sriov"{extra}}}]}}"#);
        assert_eq!(ib(&conflist).options, want);
        // Nulls are absent values, as for pkey.
        assert_eq!(options(r#","membership":null,"index0":null,"rate_limit":null"#), Ok(NadOptions::default()));
    }

    #[test]
    fn stated_options_override_the_cluster_defaults_and_the_rest_come_from_them() {
        let defaults = PartitionOptions { membership: Membership::Full, index0: false, ip_over_ib: false, qos: None };
        let spec = ib(r#"{"type":"ib-sriov","pkey":"0x5","ip_over_ib":true,"service_level":3}"#);
        let got = spec.partition_options(&defaults);
        assert_eq!((got.membership, got.index0, got.ip_over_ib), (Membership::Full, false, true));
        // One QoS key given: the others are UFM's defaults for a new partition.
        assert_eq!(got.qos, Some(Qos { service_level: 3, ..Qos::default() }));
    }

    #[test]
    fn allocated_pkey_is_asked_without_a_pkey() {
        let spec = ib(r#"{"type":"ib-sriov","allocate_pkey":true}"#);
        assert!(spec.options.allocate_pkey && spec.pkey.is_none());
        assert!(!ib(r#"{"type":"ib-sriov","allocate_pkey":false}"#).options.allocate_pkey);
        let e = classify(Some(r#"{"plugins":[{"type":"ib-sriov","pkey":"0x5","allocate_pkey":true}]}"#)).unwrap_err();
        assert_eq!(e, NadError::AllocateWithPKey { field: "plugins[0].allocate_pkey".into(), pkey: "0x5".into() });
        assert!(e.to_string().contains("\"0x5\""), "{e}");
    }

    #[test]
    fn bad_option_values_name_the_field_and_the_value() {
        for (extra, field, value) in [
            (r#","membership":"admin""#, "membership", "\"admin\""),
            (r#","membership":"Full""#, "membership", "\"Full\""),
            (r#","membership":"full ""#, "membership", "\"full \""),
            (r#","membership":"both""#, "membership", "\"both\""),
            (r#","membership":"""#, "membership", "\"\""),
            (r#","mtu_limit":3"#, "mtu_limit", "3"),
            (r#","mtu_limit":2048"#, "mtu_limit", "2048"),
            (r#","mtu_limit":-2"#, "mtu_limit", "-2"),
            (r#","mtu_limit":2.5"#, "mtu_limit", "2.5"),
            (r#","service_level":16"#, "service_level", "16"),
            (r#","service_level":-1"#, "service_level", "-1"),
            (r#","service_level":1.5"#, "service_level", "1.5"),
            (r#","service_level":18446744073709551616"#, "service_level", "1.8446744073709552e+19"),
            (r#","rate_limit":7"#, "rate_limit", "7"),
            (r#","rate_limit":0"#, "rate_limit", "0"),
            (r#","rate_limit":-2.5"#, "rate_limit", "-2.5"),
            (r#","rate_limit":1e300"#, "rate_limit", "1e+300"),
        ] {
            let e = options(extra).unwrap_err();
            assert!(
                matches!(&e, NadError::OptionValue { field: f, value: v, .. } if f == field && v == value),
                "{extra}: {e:?}"
            );
            let text = e.to_string();
            assert!(text.contains(&format!("{field:?}")) && text.contains(value), "{text}");
        }
        let e = options(r#","rate_limit":7"#).unwrap_err().to_string();
        assert!(e.contains("2.5, 5, 10") && e.contains("300"), "{e}");
        let e = options(r#","membership":"admin""#).unwrap_err().to_string();
        assert_eq!(e, "spec.config field \"membership\" is \"admin\": must be \"full\" or \"limited\"");
    }

    #[test]
    fn wrong_types_are_refused_naming_the_field() {
        for (extra, field) in [
            (r#","membership":1"#, "membership"),
            (r#","membership":["full"]"#, "membership"),
            (r#","membership":true"#, "membership"),
            (r#","ip_over_ib":"true""#, "ip_over_ib"),
            (r#","ip_over_ib":1"#, "ip_over_ib"),
            (r#","index0":{}"#, "index0"),
            (r#","allocate_pkey":"yes""#, "allocate_pkey"),
            (r#","mtu_limit":"4""#, "mtu_limit"),
            (r#","service_level":[1]"#, "service_level"),
            (r#","rate_limit":"200""#, "rate_limit"),
            (r#","rate_limit":false"#, "rate_limit"),
        ] {
            let e = options(extra).unwrap_err();
            assert!(matches!(&e, NadError::FieldType { field: f, .. } if f == field), "{extra}: {e:?}");
        }
        let e = classify(Some(r#"{"plugins":[{"type":"ib-sriov","index0":"no"}]}"#)).unwrap_err();
        assert_eq!(e, NadError::FieldType { field: "plugins[0].index0".into(), expected: "true or false" });
    }

    /// A megabyte value is refused with a short message that still shows its start and its size.
    #[test]
    fn megabyte_option_values_give_short_errors() {
        let big = "l".repeat(1 << 20);
        let e = options(&format!(r#","membership":"{big}""#)).unwrap_err();
        let text = e.to_string();
        assert!(text.len() < 300 && text.contains(&format!("({} bytes)", 1 << 20)), "{}", &text[..text.len().min(400)]);
        // A megabyte of digits: a number JSON can hold only as a float, refused as out of range.
        let digits = "9".repeat(1 << 20);
        match options(&format!(r#","service_level":{digits}"#)) {
            Err(NadError::OptionValue { value, .. }) => assert!(value.len() < 200, "{}", value.len()),
            Err(NadError::Json { reason }) => assert!(reason.len() < 300, "{reason}"),
            other => panic!("{other:?}"),
        }
        let e = options(&format!(r#","rate_limit":0.{digits}"#)).unwrap_err().to_string();
        assert!(e.len() < 400, "{}", e.len());
    }

    /// A key written twice counts with its last value, as Go's encoding/json (and so ib-sriov-cni)
    /// reads it: ib-kubernetes and the CNI never disagree on what a config says.
    #[test]
    fn duplicate_keys_take_the_last_value_like_go() {
        let o = options(r#","membership":"full","membership":"limited","index0":true,"index0":false"#).unwrap();
        assert_eq!((o.membership, o.index0), (Some(Membership::Limited), Some(false)));
        // A bad value hidden behind a good one, or the other way round, is judged on the last one.
        assert!(options(r#","membership":"evil","membership":"full""#).is_ok());
        assert!(options(r#","membership":"full","membership":"evil""#).is_err());
        let spec = ib(r#"{"type":"ib-sriov","pkey":"0x5","pkey":"0x6"}"#);
        assert_eq!(spec.pkey_text, "0x6");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,64}") {
            let _ = classify(Some(&s));
            let _ = classify(Some(&format!(r#"{{"type":"ib-sriov","pkey":{s:?}}}"#)));
            let _ = classify(Some(&format!(r#"{{"type":"ib-sriov","membership":{s:?},"rate_limit":{s}}}"#)));
        }
    }
}
