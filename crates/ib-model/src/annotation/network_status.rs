//! The network-status annotation, `k8s.v1.cni.cncf.io/network-status`: what Multus reports of every
//! interface it set up, written after the CNI plugins ran.
//!
//! ib-sriov-cni reports an interface's `mac` as its 20-byte IPoIB hardware address, whose last 8 bytes
//! are the port GUID. That is where a GUID can still be read when the networks annotation lost it
//! (KubeVirt's virt-handler removes `cni-args` from the virt-launcher pod's elements while the VM runs).
//!
//! Anyone who can edit a pod can write this annotation too, so it is read like the networks annotation:
//! its size is capped before anything is parsed, every field is checked for its type, errors name the
//! field and a shortened value, and what is kept per pod is small (only IPoIB entries of
//! NetworkAttachmentDefinitions, at most [`MAX_STATUS_ENTRIES`]). What it says is never proof of
//! ownership: it only names the GUID the one-time import looks for in the subnet manager.

use serde_json::{Map, Value};

use crate::annotation::{
    MAX_ANNOTATION_BYTES, MAX_ELEMENTS, NetworkRef, Selection, is_dns1123_label, is_dns1123_subdomain,
    is_interface_name, json_kind, json_reason,
};
use crate::guid::Guid;
use crate::text::{ECHO_CHARS, echo, shorten};

/// The pod annotation Multus writes after setting up a pod's interfaces.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";

/// The most entries a network-status annotation may have: one per network selection element
/// ([`MAX_ELEMENTS`]) and one for the cluster's default network.
pub const MAX_STATUS_ENTRIES: usize = MAX_ELEMENTS + 1;

/// Bytes of an IPoIB hardware address: 4 bytes of queue pair number and flags, then the 16-byte port
/// GID, whose last 8 bytes are the port GUID.
pub const IPOIB_ADDRESS_BYTES: usize = 20;

/// The longest `mac` text read at all: 20 bytes as two hex digits each with separators. No hardware
/// address is longer than IPoIB's (Go's `net.ParseMAC`, which Multus' writers use, knows 6, 8 and 20
/// bytes), so a longer text is refused before it is split.
const MAX_MAC_CHARS: usize = 3 * IPOIB_ADDRESS_BYTES - 1;

/// Why a network-status annotation was refused. User values in it are shortened (see
/// [`text::shorten`](crate::text::shorten)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "each variant's #[error] message is its documentation; its fields are the values the message names"
)]
pub enum NetworkStatusError {
    #[error("annotation {NETWORK_STATUS_ANNOTATION} is {bytes} bytes, larger than the limit of {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    #[error("annotation {NETWORK_STATUS_ANNOTATION} is not valid JSON: {reason}")]
    Json { reason: String },
    #[error("annotation {NETWORK_STATUS_ANNOTATION} must be a JSON list of interface statuses, found {found}")]
    NotAList { found: &'static str },
    #[error("annotation {NETWORK_STATUS_ANNOTATION} has {count} entries, more than the limit of {limit}")]
    TooManyEntries { count: usize, limit: usize },
    #[error("annotation {NETWORK_STATUS_ANNOTATION}: entry {index} must be a JSON object, found {found}")]
    EntryNotObject { index: usize, found: &'static str },
    #[error("annotation {NETWORK_STATUS_ANNOTATION}: entry {index} field {field:?} must be a string, found {found}")]
    FieldType { index: usize, field: &'static str, found: String },
    #[error("annotation {NETWORK_STATUS_ANNOTATION}: entry {index} {field} {value:?} is not valid: {problem}")]
    Invalid { index: usize, field: &'static str, value: String, problem: &'static str },
}

/// One IPoIB interface of a NetworkAttachmentDefinition as the network-status annotation reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IbAddress {
    /// The entry's `name`, `namespace/name` of the NAD.
    pub network: NetworkRef,
    /// The entry's `interface` (empty when it has none).
    pub interface: String,
    /// How many earlier entries have the same NAD name, namespace ignored: the `k` of the `idx_<k>`
    /// identity an element without `interface` has (see [`Selection::interface`]), since Multus
    /// reports the elements in the order of the networks annotation.
    pub position: usize,
    /// The last 8 bytes of the 20-byte hardware address.
    pub guid: Guid,
}

impl IbAddress {
    /// Whether this entry reports the interface `selection` names: same network, and the same
    /// interface name, or the same position for an element without one.
    pub fn reports(&self, selection: &Selection) -> bool {
        self.network == selection.network
            && (self.interface == selection.interface
                || selection.interface.strip_prefix("idx_").and_then(|k| k.parse::<usize>().ok())
                    == Some(self.position))
    }
}

/// The GUID the network-status annotation reports for `selection`'s interface, if exactly one entry
/// reports it.
pub fn reported_guid(addresses: &[IbAddress], selection: &Selection) -> Option<Guid> {
    let mut found = addresses.iter().filter(|a| a.reports(selection));
    let first = found.next()?;
    found.next().is_none().then_some(first.guid)
}

/// Reads the IPoIB interfaces of NetworkAttachmentDefinitions from a network-status annotation.
/// Entries of the default network (a `name` without `/`) and entries with a shorter `mac` (an
/// Ethernet interface) or none are skipped; a wrong type, a malformed value or an address longer than
/// 20 bytes is an error.
pub fn parse_ib_addresses(raw: &str) -> Result<Vec<IbAddress>, NetworkStatusError> {
    if raw.len() > MAX_ANNOTATION_BYTES {
        return Err(NetworkStatusError::TooLarge { bytes: raw.len(), limit: MAX_ANNOTATION_BYTES });
    }
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    // Bounded by the size cap above and serde_json's nesting limit.
    let value: Value = serde_json::from_str(raw).map_err(|e| NetworkStatusError::Json { reason: json_reason(&e) })?;
    let entries = match value {
        Value::Array(entries) => entries,
        other => return Err(NetworkStatusError::NotAList { found: json_kind(&other) }),
    };
    if entries.len() > MAX_STATUS_ENTRIES {
        return Err(NetworkStatusError::TooManyEntries { count: entries.len(), limit: MAX_STATUS_ENTRIES });
    }
    let mut seen: Vec<(std::sync::Arc<str>, usize)> = Vec::new();
    let mut addresses = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let entry = match entry {
            Value::Object(map) => map,
            other => return Err(NetworkStatusError::EntryNotObject { index, found: json_kind(other) }),
        };
        let Some(network) = entry_network(index, entry)? else { continue };
        let position = match seen.iter_mut().find(|(name, _)| **name == *network.name) {
            Some((_, count)) => {
                *count += 1;
                *count - 1
            }
            None => {
                seen.push((network.name.clone(), 1));
                0
            }
        };
        let interface = string_field(index, entry, "interface")?.unwrap_or_default();
        if !interface.is_empty() && !is_interface_name(interface) {
            return Err(invalid(index, "interface", interface, INTERFACE_PROBLEM));
        }
        let Some(mac) = string_field(index, entry, "mac")?.filter(|m| !m.is_empty()) else { continue };
        let Some(guid) = ipoib_guid(mac).map_err(|problem| invalid(index, "mac", mac, problem))? else { continue };
        addresses.push(IbAddress { network, interface: interface.to_owned(), position, guid });
    }
    Ok(addresses)
}

const NAME_PROBLEM: &str = "a NetworkAttachmentDefinition is named namespace/name, a DNS-1123 label and subdomain";
const INTERFACE_PROBLEM: &str =
    "an interface name is 1 to 15 bytes, not \".\" or \"..\", without '/', ':', whitespace or control characters";
const MAC_PROBLEM: &str = "a hardware address is bytes as two hex digits each, separated by ':'";

fn invalid(index: usize, field: &'static str, value: &str, problem: &'static str) -> NetworkStatusError {
    NetworkStatusError::Invalid { index, field, value: echo(value), problem }
}

/// The entry's NAD, `None` for an entry that names none (the default network is named without `/`).
fn entry_network(index: usize, entry: &Map<String, Value>) -> Result<Option<NetworkRef>, NetworkStatusError> {
    let Some(name) = string_field(index, entry, "name")? else { return Ok(None) };
    let Some((namespace, nad)) = name.split_once('/') else { return Ok(None) };
    if !is_dns1123_label(namespace) || !is_dns1123_subdomain(nad) {
        return Err(invalid(index, "name", name, NAME_PROBLEM));
    }
    Ok(Some(NetworkRef::new(namespace, nad)))
}

fn string_field<'a>(
    index: usize,
    entry: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, NetworkStatusError> {
    match entry.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(NetworkStatusError::FieldType {
            index,
            field,
            found: format!("{} {}", json_kind(other), shorten(&other.to_string(), ECHO_CHARS)),
        }),
    }
}

/// The port GUID of a 20-byte IPoIB hardware address; `None` for a well-formed shorter address (an
/// Ethernet MAC has 6 bytes, an EUI-64 8).
fn ipoib_guid(mac: &str) -> Result<Option<Guid>, &'static str> {
    if mac.len() > MAX_MAC_CHARS {
        return Err(MAC_PROBLEM);
    }
    let mut bytes = Vec::with_capacity(IPOIB_ADDRESS_BYTES);
    for part in mac.split(':') {
        // `from_str_radix` alone would take a sign ("+f").
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MAC_PROBLEM);
        }
        bytes.push(u8::from_str_radix(part, 16).map_err(|_| MAC_PROBLEM)?);
    }
    if bytes.len() != IPOIB_ADDRESS_BYTES {
        return Ok(None);
    }
    let guid = bytes[IPOIB_ADDRESS_BYTES - 8..].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Ok(Some(Guid::from_u64(guid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::GuidSource;

    const IPOIB: &str = "00:00:01:07:fe:80:00:00:00:00:00:00:02:00:00:00:00:00:00:07";

    fn status(entries: &str) -> String {
        format!(
            r#"[{{"name":"k8s-pod-network","interface":"eth0","ips":["10.0.0.5"],"mac":"0a:58:0a:00:00:05","default":true,"dns":{{}}}},{entries}]"#
        )
    }

    fn selection(network: &str, interface: &str) -> Selection {
        let (ns, name) = network.split_once('/').unwrap();
        Selection {
            network: NetworkRef::new(ns, name),
            interface: interface.into(),
            guid: None,
            configured: false,
            pkey: None,
        }
    }

    #[test]
    fn the_guid_is_the_last_eight_bytes_of_an_ipoib_address() {
        let raw = status(&format!(
            r#"{{"name":"tenant/ib","interface":"net1","mac":"{IPOIB}","dns":{{}},"device-info":{{"type":"pci","pci":{{"pci-address":"0000:3b:00.2"}}}}}}"#
        ));
        let addresses = parse_ib_addresses(&raw).unwrap();
        let guid = Guid::parse("02:00:00:00:00:00:00:07").unwrap();
        assert_eq!(
            addresses,
            vec![IbAddress { network: NetworkRef::new("tenant", "ib"), interface: "net1".into(), position: 0, guid }]
        );
        assert_eq!(reported_guid(&addresses, &selection("tenant/ib", "net1")), Some(guid));
        // Another namespace's NAD of the same name, or another interface, is another interface.
        assert_eq!(reported_guid(&addresses, &selection("other/ib", "net1")), None);
        assert_eq!(reported_guid(&addresses, &selection("tenant/ib", "net2")), None);
    }

    #[test]
    fn elements_without_an_interface_are_matched_by_position() {
        let a = "00:00:01:07:fe:80:00:00:00:00:00:00:02:00:00:00:00:00:00:0a";
        let b = "00:00:01:07:fe:80:00:00:00:00:00:00:02:00:00:00:00:00:00:0b";
        let raw = status(&format!(
            r#"{{"name":"tenant/ib","interface":"net1","mac":"{a}"}},{{"name":"tenant/ib","interface":"net2","mac":"{b}"}}"#
        ));
        let addresses = parse_ib_addresses(&raw).unwrap();
        let idx1 = selection("tenant/ib", "idx_1");
        assert_eq!(reported_guid(&addresses, &idx1), Some(Guid::parse(&b[36..]).unwrap()));
        assert_eq!(reported_guid(&addresses, &selection("tenant/ib", "idx_0")), Some(Guid::parse(&a[36..]).unwrap()));
        assert_eq!(reported_guid(&addresses, &selection("tenant/ib", "idx_2")), None);
        assert_eq!(reported_guid(&addresses, &selection("tenant/ib", "idx_x")), None);
    }

    #[test]
    fn two_entries_for_one_interface_give_no_guid() {
        let b = "00:00:01:07:fe:80:00:00:00:00:00:00:02:00:00:00:00:00:00:0b";
        let raw = status(&format!(
            r#"{{"name":"tenant/ib","interface":"net1","mac":"{IPOIB}"}},{{"name":"tenant/ib","interface":"net1","mac":"{b}"}}"#
        ));
        let addresses = parse_ib_addresses(&raw).unwrap();
        assert_eq!(addresses.len(), 2);
        assert_eq!(reported_guid(&addresses, &selection("tenant/ib", "net1")), None);
    }

    #[test]
    fn ethernet_and_default_network_entries_give_no_guid() {
        let raw = status(
            r#"{"name":"tenant/macvlan","interface":"net1","mac":"0a:58:0a:00:00:06"},{"name":"tenant/eui","interface":"net2","mac":"02:00:00:00:00:00:00:07"},{"name":"tenant/nomac","interface":"net3"},{"name":"tenant/empty","interface":"net4","mac":""}"#,
        );
        assert_eq!(parse_ib_addresses(&raw).unwrap(), Vec::new());
        assert_eq!(parse_ib_addresses("").unwrap(), Vec::new());
        assert_eq!(parse_ib_addresses("[]").unwrap(), Vec::new());
        // A default network that happens to be IPoIB names no NAD.
        let raw = format!(r#"[{{"name":"ib-default","interface":"ib0","mac":"{IPOIB}"}}]"#);
        assert_eq!(parse_ib_addresses(&raw).unwrap(), Vec::new());
    }

    #[test]
    fn megabyte_values_are_refused_before_parsing() {
        let big = format!(r#"[{{"name":"tenant/ib","interface":"net1","mac":"{}"}}]"#, "0".repeat(2 << 20));
        let err = parse_ib_addresses(&big).unwrap_err();
        assert_eq!(err, NetworkStatusError::TooLarge { bytes: big.len(), limit: MAX_ANNOTATION_BYTES });
        assert!(err.to_string().contains("k8s.v1.cni.cncf.io/network-status"), "{err}");
        // Under the cap, a huge mac is named shortened.
        let long = format!(r#"[{{"name":"tenant/ib","interface":"net1","mac":"{}"}}]"#, "a".repeat(100_000));
        let err = parse_ib_addresses(&long).unwrap_err().to_string();
        assert!(err.contains("entry 0 mac") && err.contains("(100000 bytes)") && err.len() < 400, "{err}");
    }

    #[test]
    fn too_many_entries_are_refused() {
        let one = format!(r#"{{"name":"tenant/ib","mac":"{IPOIB}"}}"#);
        let raw = format!("[{}]", vec![one.as_str(); MAX_STATUS_ENTRIES + 1].join(","));
        assert_eq!(
            parse_ib_addresses(&raw).unwrap_err(),
            NetworkStatusError::TooManyEntries { count: MAX_STATUS_ENTRIES + 1, limit: MAX_STATUS_ENTRIES }
        );
    }

    #[test]
    fn wrong_types_name_the_field_and_value() {
        let cases: &[(&str, &str)] = &[
            (r#"{"name":"tenant/ib"}"#, "must be a JSON list of interface statuses, found an object"),
            (r#""tenant/ib""#, "found a string"),
            ("[", "is not valid JSON"),
            (r#"[5]"#, "entry 0 must be a JSON object, found a number"),
            (r#"[{"name":5}]"#, r#"entry 0 field "name" must be a string, found a number 5"#),
            (
                r#"[{"name":"t/ib","interface":["net1"]}]"#,
                r#"field "interface" must be a string, found a list ["net1"]"#,
            ),
            (r#"[{"name":"t/ib","mac":{"a":1}}]"#, r#"field "mac" must be a string, found an object {"a":1}"#),
            (r#"[{"name":"T/ib","mac":"00"}]"#, r#"entry 0 name "T/ib" is not valid"#),
            (r#"[{"name":"t/ib/x","mac":"00"}]"#, r#"entry 0 name "t/ib/x" is not valid"#),
            (r#"[{"name":"t/ib","interface":"a/b"}]"#, r#"entry 0 interface "a/b" is not valid"#),
            (r#"[{"name":"t/ib","mac":"zz:00:00:00:00:00"}]"#, r#"entry 0 mac "zz:00:00:00:00:00" is not valid"#),
            (r#"[{"name":"t/ib","mac":"0:1:2:3:4:5"}]"#, r#"entry 0 mac "0:1:2:3:4:5" is not valid"#),
            (r#"[{"name":"t/ib","mac":"+0:00:00:00:00:00"}]"#, r#"mac "+0:00:00:00:00:00" is not valid"#),
            (r#"[{"name":"t/ib","mac":"é0:00:00:00:00:00"}]"#, r#"mac "é0:00:00:00:00:00" is not valid"#),
        ];
        for (raw, expected) in cases {
            let err = parse_ib_addresses(raw).unwrap_err().to_string();
            assert!(err.contains(expected), "{raw}: {err}");
        }
    }

    #[test]
    fn a_selection_with_a_guid_is_matched_the_same() {
        // Matching looks only at the interface's identity; the import decides what a GUID text means.
        let raw = status(&format!(r#"{{"name":"tenant/ib","interface":"net1","mac":"{IPOIB}"}}"#));
        let addresses = parse_ib_addresses(&raw).unwrap();
        let mut s = selection("tenant/ib", "net1");
        s.guid = Some(("02:00:00:00:00:00:00:01".into(), GuidSource::RuntimeConfig));
        assert_eq!(reported_guid(&addresses, &s), Guid::parse("02:00:00:00:00:00:00:07").ok());
    }
}
