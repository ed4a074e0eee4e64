//! The Multus network-selection annotation, `k8s.v1.cni.cncf.io/networks`.
//!
//! Parsing follows Multus (network-attachment-definition-client): a value containing `[`, `{` or `"`
//! is a JSON list of selection elements, anything else is the short form
//! `[<namespace>/]<name>[@<interface>],…`. Elements without a namespace belong to the pod's namespace.
//!
//! Editing happens on the raw JSON objects, so every field and element the user wrote is kept as written
//! (serde_json's `preserve_order` keeps key order); only the keys ib-kubernetes owns are set. The result is
//! always a JSON list, which is what ib-sriov-cni and Multus read back.

use serde_json::{Map, Value};

use crate::guid::Guid;

/// The pod annotation Multus reads.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// Key in `cni-args` that ib-sriov-cni waits for (`ibKubernetesEnabled`).
pub const CONFIGURED_KEY: &str = "mellanox.infiniband.app";
/// The only value of [`CONFIGURED_KEY`] that lets ib-sriov-cni proceed.
pub const CONFIGURED_VALUE: &str = "configured";
/// Element field holding a runtime-config GUID request (NAD capability `infinibandGUID`).
pub const RUNTIME_GUID_KEY: &str = "infiniband-guid";
const CNI_ARGS_KEY: &str = "cni-args";
const CNI_ARGS_GUID: &str = "guid";
const CNI_ARGS_PKEY: &str = "pkey";
/// Kubernetes caps all annotations of an object at 256 KiB; a larger value cannot be legitimate.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// A NetworkAttachmentDefinition reference: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkRef {
    pub namespace: String,
    pub name: String,
}

impl NetworkRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        NetworkRef { namespace: namespace.into(), name: name.into() }
    }
}

impl std::fmt::Display for NetworkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where a GUID request was found; `infiniband-guid` wins over `cni-args.guid`, as in the Go daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuidSource {
    RuntimeConfig,
    CniArgs,
}

/// What ib-kubernetes needs to know about one element of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub network: NetworkRef,
    /// The `interface` the user asked for, or `idx_<k>` where k is the element's position among all
    /// elements with the same network name (the Go daemon's per-interface identity, kept so that a pod
    /// configured by either daemon is recognised by the other).
    pub interface: String,
    /// The GUID text as written, and where.
    pub guid: Option<(String, GuidSource)>,
    /// `cni-args["mellanox.infiniband.app"] == "configured"`.
    pub configured: bool,
    /// `cni-args.pkey` as written by whoever configured the element.
    pub pkey: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {NETWORKS_ANNOTATION} is {size} bytes, larger than the {MAX_ANNOTATION_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("annotation {NETWORKS_ANNOTATION} is not valid JSON: {reason}")]
    Json { reason: String },
    #[error("annotation {NETWORKS_ANNOTATION} must be a JSON list of network selection elements, found {found}")]
    NotAList { found: &'static str },
    #[error("annotation {NETWORKS_ANNOTATION}: element {index} must be a JSON object, found {found}")]
    ElementNotObject { index: usize, found: &'static str },
    #[error("annotation {NETWORKS_ANNOTATION}: element {index} field {field:?} must be {expected}, found {found}")]
    FieldType { index: usize, field: String, expected: &'static str, found: String },
    #[error("annotation {NETWORKS_ANNOTATION}: element {index} has no network name")]
    MissingName { index: usize },
    #[error(
        "annotation {NETWORKS_ANNOTATION}: element {index} {field} {value:?} is not a valid name (lowercase letters, digits and '-', starting and ending with a letter or digit)"
    )]
    InvalidName { index: usize, field: &'static str, value: String },
    #[error("annotation {NETWORKS_ANNOTATION}: item {item:?} has more than one '{separator}'")]
    ShortForm { item: String, separator: char },
    #[error(
        "annotation {NETWORKS_ANNOTATION}: elements {first} and {second} both ask for interface {interface:?} of network {network}"
    )]
    DuplicateInterface { first: usize, second: usize, network: NetworkRef, interface: String },
}

/// A parsed annotation that can be edited in place.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworksAnnotation {
    elements: Vec<Map<String, Value>>,
    selections: Vec<Selection>,
}

impl NetworksAnnotation {
    /// Parses the annotation value of a pod in `pod_namespace`. An empty value has no elements.
    pub fn parse(raw: &str, pod_namespace: &str) -> Result<Self, AnnotationError> {
        if raw.len() > MAX_ANNOTATION_BYTES {
            return Err(AnnotationError::TooLarge { size: raw.len() });
        }
        let elements = if raw.trim().is_empty() {
            Vec::new()
        } else if raw.contains(['[', '{', '"']) {
            parse_json(raw)?
        } else {
            parse_short(raw)?
        };
        let mut selections = Vec::with_capacity(elements.len());
        for (index, element) in elements.iter().enumerate() {
            selections.push(read_element(index, element, pod_namespace)?);
        }
        assign_interfaces(&elements, &mut selections)?;
        Ok(NetworksAnnotation { elements, selections })
    }

    pub fn selections(&self) -> &[Selection] {
        &self.selections
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Writes a GUID ib-kubernetes chose: as `infiniband-guid` when the NAD declares the
    /// `infinibandGUID` capability, else as `cni-args.guid`; canonical lowercase colon form.
    pub fn set_guid(&mut self, index: usize, guid: Guid, runtime_config: bool) {
        let text = guid.to_string();
        let (element, selection) = (&mut self.elements[index], &mut self.selections[index]);
        if runtime_config {
            element.insert(RUNTIME_GUID_KEY.into(), Value::String(text.clone()));
            selection.guid = Some((text, GuidSource::RuntimeConfig));
        } else {
            cni_args_mut(element).insert(CNI_ARGS_GUID.into(), Value::String(text.clone()));
            selection.guid = Some((text, GuidSource::CniArgs));
        }
    }

    /// Marks an element configured for ib-sriov-cni and records its pkey (`""` for GUID-only networks).
    pub fn mark_configured(&mut self, index: usize, pkey: &str) {
        let args = cni_args_mut(&mut self.elements[index]);
        args.insert(CONFIGURED_KEY.into(), Value::String(CONFIGURED_VALUE.into()));
        args.insert(CNI_ARGS_PKEY.into(), Value::String(pkey.into()));
        let selection = &mut self.selections[index];
        selection.configured = true;
        selection.pkey = Some(pkey.into());
    }

    /// The annotation value: a compact JSON list.
    pub fn to_json(&self) -> String {
        Value::Array(self.elements.iter().cloned().map(Value::Object).collect()).to_string()
    }
}

fn parse_json(raw: &str) -> Result<Vec<Map<String, Value>>, AnnotationError> {
    let value: Value = serde_json::from_str(raw).map_err(|e| AnnotationError::Json { reason: e.to_string() })?;
    let Value::Array(items) = value else {
        return Err(AnnotationError::NotAList { found: json_kind(&value) });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(map) => Ok(map),
            other => Err(AnnotationError::ElementNotObject { index, found: json_kind(&other) }),
        })
        .collect()
}

/// Multus' `parsePodNetworkObjectName`, one item at a time; each item becomes the JSON element Multus
/// would have built from it, with the namespace explicit.
fn parse_short(raw: &str) -> Result<Vec<Map<String, Value>>, AnnotationError> {
    raw.split(',')
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim();
            let slash: Vec<&str> = item.split('/').collect();
            let (namespace, rest) = match slash.as_slice() {
                [rest] => ("", *rest),
                [ns, rest] => (ns.trim(), *rest),
                _ => {
                    return Err(AnnotationError::ShortForm { item: item.into(), separator: '/' });
                }
            };
            let at: Vec<&str> = rest.split('@').collect();
            let (name, interface) = match at.as_slice() {
                [name] => (name.trim(), ""),
                [name, interface] => (name.trim(), interface.trim()),
                _ => {
                    return Err(AnnotationError::ShortForm { item: item.into(), separator: '@' });
                }
            };
            for (field, value) in [("namespace", namespace), ("name", name), ("interface", interface)] {
                if !value.is_empty() && !is_dns1123_label(value) {
                    return Err(AnnotationError::InvalidName { index, field, value: value.into() });
                }
            }
            let mut element = Map::new();
            element.insert("name".into(), Value::String(name.into()));
            if !namespace.is_empty() {
                element.insert("namespace".into(), Value::String(namespace.into()));
            }
            if !interface.is_empty() {
                element.insert("interface".into(), Value::String(interface.into()));
            }
            Ok(element)
        })
        .collect()
}

fn read_element(index: usize, element: &Map<String, Value>, pod_namespace: &str) -> Result<Selection, AnnotationError> {
    let name = optional_str(index, element, "name")?.unwrap_or_default();
    if name.is_empty() {
        return Err(AnnotationError::MissingName { index });
    }
    if !is_dns1123_subdomain(name) {
        return Err(AnnotationError::InvalidName { index, field: "name", value: name.into() });
    }
    let namespace = match optional_str(index, element, "namespace")? {
        Some(ns) if !ns.is_empty() => {
            if !is_dns1123_label(ns) {
                return Err(AnnotationError::InvalidName { index, field: "namespace", value: ns.into() });
            }
            ns
        }
        _ => pod_namespace,
    };
    let interface = optional_str(index, element, "interface")?.unwrap_or_default().to_owned();
    let runtime_guid = optional_str(index, element, RUNTIME_GUID_KEY)?.filter(|s| !s.is_empty());

    let (mut args_guid, mut configured, mut pkey) = (None, false, None);
    match element.get(CNI_ARGS_KEY) {
        None | Some(Value::Null) => {}
        Some(Value::Object(args)) => {
            let arg = |key: &str| match args.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(AnnotationError::FieldType {
                    index,
                    field: format!("{CNI_ARGS_KEY}.{key}"),
                    expected: "a string (ib-sriov-cni reads cni-args as strings)",
                    found: describe(other),
                }),
            };
            args_guid = arg(CNI_ARGS_GUID)?.filter(|s| !s.is_empty());
            configured = arg(CONFIGURED_KEY)? == Some(CONFIGURED_VALUE);
            pkey = arg(CNI_ARGS_PKEY)?.map(str::to_owned);
        }
        Some(other) => {
            return Err(AnnotationError::FieldType {
                index,
                field: CNI_ARGS_KEY.into(),
                expected: "an object",
                found: describe(other),
            });
        }
    }
    let guid = match (runtime_guid, args_guid) {
        (Some(g), _) => Some((g.to_owned(), GuidSource::RuntimeConfig)),
        (None, Some(g)) => Some((g.to_owned(), GuidSource::CniArgs)),
        (None, None) => None,
    };
    Ok(Selection { network: NetworkRef::new(namespace, name), interface, guid, configured, pkey })
}

/// Fills `idx_<k>` for elements without an interface and refuses two elements with one identity.
fn assign_interfaces(elements: &[Map<String, Value>], selections: &mut [Selection]) -> Result<(), AnnotationError> {
    let mut seen: std::collections::HashMap<(NetworkRef, String), usize> = Default::default();
    for index in 0..selections.len() {
        if selections[index].interface.is_empty() {
            // Position among all elements with the same name, named ones included, namespace ignored:
            // the Go daemon's rule (§3.6 of its behaviour), so both daemons derive the same identity.
            let name = &selections[index].network.name;
            let k = selections[..index].iter().filter(|s| &s.network.name == name).count();
            selections[index].interface = format!("idx_{k}");
        }
        let key = (selections[index].network.clone(), selections[index].interface.clone());
        if let Some(first) = seen.insert(key.clone(), index) {
            return Err(AnnotationError::DuplicateInterface { first, second: index, network: key.0, interface: key.1 });
        }
    }
    debug_assert_eq!(elements.len(), selections.len());
    Ok(())
}

fn optional_str<'a>(
    index: usize,
    element: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, AnnotationError> {
    match element.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => {
            Err(AnnotationError::FieldType { index, field: field.into(), expected: "a string", found: describe(other) })
        }
    }
}

fn cni_args_mut(element: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let slot = element.entry(CNI_ARGS_KEY).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        // Only reachable for `null`: parsing refused every other non-object value.
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("cni-args was just made an object"),
    }
}

/// RFC 1123 label, the rule Multus applies to short-form names: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: what a NAD's object name may be (labels joined by dots, ≤ 253).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// How a JSON value is named in error messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message, shortened so a hostile annotation cannot flood logs and Events.
fn describe(v: &Value) -> String {
    let text = v.to_string();
    let mut short: String = text.chars().take(64).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{} {short}", json_kind(v))
}

#[cfg(test)]
mod tests;
