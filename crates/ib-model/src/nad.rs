//! What a NetworkAttachmentDefinition means to ib-kubernetes.
//!
//! The CNI config in `spec.config` is either a single plugin config or a conflist. It is an InfiniBand
//! network when its top-level `type` is exactly `ib-sriov`, or when it has a `plugins` list, in which case
//! the first plugin of type `ib-sriov` is the one read (the Go daemon's rule). From that config only
//! `pkey` and `capabilities.infinibandGUID` matter.

use serde_json::{Map, Value};

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
    Ok(IbSriovSpec { pkey, pkey_text, runtime_config_guid })
}

#[cfg(test)]
mod tests {
    use super::*;
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
            IbSriovSpec { pkey: None, pkey_text: String::new(), runtime_config_guid: false }
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

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,64}") {
            let _ = classify(Some(&s));
            let _ = classify(Some(&format!(r#"{{"type":"ib-sriov","pkey":{s:?}}}"#)));
        }
    }
}
