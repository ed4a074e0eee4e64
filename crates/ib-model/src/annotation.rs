//! The Multus network-selection annotation, `k8s.v1.cni.cncf.io/networks`.
//!
//! Parsing follows Multus (network-attachment-definition-client): a value containing `[`, `{` or `"`
//! is a JSON list of selection elements, anything else is the short form
//! `[<namespace>/]<name>[@<interface>],…`. Elements without a namespace belong to the pod's namespace.
//!
//! Editing happens on the raw JSON objects, so every field and element the user wrote is kept as written
//! (serde_json's `preserve_order` keeps key order); only the keys ib-kubernetes owns are set. The result is
//! always a JSON list, which is what ib-sriov-cni and Multus read back.
//!
//! Every annotation is written by a pod author, so every step is linear in its size and bounded:
//! [`MAX_ANNOTATION_BYTES`] and [`MAX_ELEMENTS`] are checked before elements are built, names follow
//! what Kubernetes and Linux accept, and errors and [`Selection`]s hold user values only shortened.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::guid::Guid;
use crate::text::{ECHO_CHARS, echo, shorten};

use read::{assign_interfaces, kept, parse_json, parse_short, read_element};

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

/// The largest annotation value that is parsed at all. Kubernetes caps all annotations of an object at
/// 256 KiB together, so no value the API server can store is refused; a larger one comes from a source
/// that does not enforce that cap and is refused before any work is done.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// The most network selection elements one annotation may have. The largest real pods have 8 compute
/// rails, 2 storage rails and a few other networks (about 12 elements); 64 leaves room for 32 InfiniBand
/// interfaces ([`MAX_IB_INTERFACES_PER_POD`]) beside as many other networks, and bounds what is kept per
/// pod: 64 [`Selection`]s of 120 bytes plus at most about 900 bytes of strings each (typically 50).
pub const MAX_ELEMENTS: usize = 64;

/// The most InfiniBand interfaces (elements whose NAD is an ib-sriov network) one pod may ask for. Each
/// takes a VF on its node and a GUID from the shared pool; 32 is four times the 8 rails of the largest
/// real nodes. The codec cannot count these (it does not know which NADs are InfiniBand): the planner
/// checks it once NADs are known and refuses the pod with a clear reason.
pub const MAX_IB_INTERFACES_PER_POD: usize = 32;

/// A NetworkAttachmentDefinition's name is a DNS-1123 subdomain: at most 253 characters.
pub const MAX_NAME_BYTES: usize = 253;
/// A namespace's name is a DNS-1123 label: at most 63 characters.
pub const MAX_NAMESPACE_BYTES: usize = 63;
/// Linux interface names are at most 15 bytes (`IFNAMSIZ` minus the terminating NUL); a longer
/// `interface` fails at CNI ADD, so it is refused here with a clear reason instead.
pub const MAX_INTERFACE_BYTES: usize = 15;
/// A GUID or pkey text longer than this is kept in a [`Selection`] shortened (see [`text::shorten`]):
/// no valid GUID (23) or pkey a NAD may declare ([`crate::nad::MAX_PKEY_BYTES`]) is that long, and the
/// shortened text, ending in `…(N bytes)`, stays invalid.
///
/// [`text::shorten`]: crate::text::shorten
pub const MAX_KEPT_VALUE_CHARS: usize = ECHO_CHARS;

/// A NetworkAttachmentDefinition reference: namespace and name. Shared text, because every interface
/// of every pod names one of a few networks: the state keeps one copy of each name (see
/// [`crate::names`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkRef {
    /// The NAD's namespace.
    pub namespace: Arc<str>,
    /// The NAD's name.
    pub name: Arc<str>,
}

impl NetworkRef {
    /// The NAD `name` of `namespace`.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        NetworkRef { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for NetworkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where a GUID request was found; `infiniband-guid` wins over `cni-args.guid`, as in the Go daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuidSource {
    /// The element's `infiniband-guid` field.
    RuntimeConfig,
    /// The element's `cni-args.guid` field.
    CniArgs,
}

/// What ib-kubernetes needs to know about one element of the list: everything the planner reads, and
/// small enough to keep for every pod instead of the annotation (every string in it is bounded; see
/// [`Selection::heap_bytes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// At most [`MAX_NAMESPACE_BYTES`] / [`MAX_NAME_BYTES`].
    pub network: NetworkRef,
    /// The `interface` the user asked for (at most [`MAX_INTERFACE_BYTES`]), or `idx_<k>` where k is the
    /// element's position among all elements with the same network name (the Go daemon's per-interface
    /// identity, kept so that a pod configured by either daemon is recognised by the other).
    pub interface: String,
    /// The GUID text as written, and where; shortened beyond [`MAX_KEPT_VALUE_CHARS`] (it is then
    /// invalid either way, and stays so).
    pub guid: Option<(String, GuidSource)>,
    /// `cni-args["mellanox.infiniband.app"] == "configured"`.
    pub configured: bool,
    /// `cni-args.pkey` as written by whoever configured the element; shortened like `guid`.
    pub pkey: Option<String>,
}

impl Selection {
    /// The heap memory this selection holds, in bytes (string capacities; allocator overhead aside).
    pub fn heap_bytes(&self) -> usize {
        self.network.namespace.len()
            + self.network.name.len()
            + self.interface.capacity()
            + self.guid.as_ref().map_or(0, |(g, _)| g.capacity())
            + self.pkey.as_ref().map_or(0, String::capacity)
    }
}

/// Why an annotation was refused. Every user value it holds is already shortened (see
/// [`text::shorten`](crate::text::shorten)), so an error stays small in memory, logs and Events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "each variant's #[error] message is its documentation; its fields are the values the message names"
)]
pub enum AnnotationError {
    #[error("annotation {NETWORKS_ANNOTATION} is {bytes} bytes, larger than the limit of {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    #[error("annotation {NETWORKS_ANNOTATION} has {count} network selection elements, more than the limit of {limit}")]
    TooManyElements { count: usize, limit: usize },
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
    #[error("annotation {NETWORKS_ANNOTATION}: element {index} {field} {value:?} is not valid: {problem}")]
    InvalidName { index: usize, field: &'static str, value: String, problem: &'static str },
    #[error("annotation {NETWORKS_ANNOTATION}: item {item:?} has more than one '{separator}'")]
    ShortForm { item: String, separator: char },
    #[error(
        "annotation {NETWORKS_ANNOTATION}: elements {first} and {second} both ask for interface {interface:?} of network {network}"
    )]
    DuplicateInterface { first: usize, second: usize, network: NetworkRef, interface: String },
}

/// A parsed annotation that can be edited in place.
///
/// Parsing, editing and serialising take time linear in the annotation's size. To remember a pod
/// without its annotation, keep [`NetworksAnnotation::into_selections`]: the raw JSON elements are only
/// needed to write a patch.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworksAnnotation {
    elements: Vec<Map<String, Value>>,
    selections: Vec<Selection>,
}

impl NetworksAnnotation {
    /// Parses the annotation value of a pod in `pod_namespace`. An empty value has no elements.
    ///
    /// The size and element limits are checked first, without building the elements past the limit.
    pub fn parse(raw: &str, pod_namespace: &str) -> Result<Self, AnnotationError> {
        if raw.len() > MAX_ANNOTATION_BYTES {
            return Err(AnnotationError::TooLarge { bytes: raw.len(), limit: MAX_ANNOTATION_BYTES });
        }
        let elements = if raw.trim().is_empty() {
            Vec::new()
        } else if raw.bytes().any(|b| matches!(b, b'[' | b'{' | b'"')) {
            parse_json(raw)?
        } else {
            parse_short(raw)?
        };
        let mut selections = Vec::with_capacity(elements.len());
        for (index, element) in elements.iter().enumerate() {
            selections.push(read_element(index, element, pod_namespace)?);
        }
        assign_interfaces(&mut selections)?;
        Ok(NetworksAnnotation { elements, selections })
    }

    /// One per element, in the annotation's order: `selections()[i]` describes element `i`.
    pub fn selections(&self) -> &[Selection] {
        &self.selections
    }

    /// The selections alone, without the JSON elements: what the controller can keep for a pod that
    /// needs no patch (at most [`MAX_ELEMENTS`] selections with bounded strings, instead of up to
    /// [`MAX_ANNOTATION_BYTES`] of text).
    pub fn into_selections(self) -> Vec<Selection> {
        self.selections
    }

    /// Writes a GUID ib-kubernetes chose: as `infiniband-guid` when the NAD declares the
    /// `infinibandGUID` capability, else as `cni-args.guid`; canonical lowercase colon form.
    ///
    /// `index` is a position in [`selections`](Self::selections); a larger one is a bug of the caller
    /// and panics.
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
    ///
    /// `index` is a position in [`selections`](Self::selections); a larger one is a bug of the caller
    /// and panics.
    pub fn mark_configured(&mut self, index: usize, pkey: &str) {
        let args = cni_args_mut(&mut self.elements[index]);
        args.insert(CONFIGURED_KEY.into(), Value::String(CONFIGURED_VALUE.into()));
        args.insert(CNI_ARGS_PKEY.into(), Value::String(pkey.into()));
        let selection = &mut self.selections[index];
        selection.configured = true;
        selection.pkey = Some(kept(pkey));
    }

    /// The annotation value: a compact JSON list.
    pub fn to_json(&self) -> String {
        // Serialised in place, without copying the elements into a new `Value` first.
        serde_json::to_string(&self.elements).unwrap_or_else(|_| unreachable!("string-keyed maps always serialise"))
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

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` with no length cap: one dot-free part of a Kubernetes name.
fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 label, what a namespace's name may be: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= MAX_NAMESPACE_BYTES && is_label_chars(s)
}

/// DNS-1123 subdomain as Kubernetes checks it, what a NAD's object name may be: at most 253 characters
/// in all, parts joined by dots, each part `[a-z0-9]([-a-z0-9]*[a-z0-9])?` with no length cap of its own.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= MAX_NAME_BYTES && s.split('.').all(is_label_chars)
}

/// What Linux accepts as an interface name: 1 to [`MAX_INTERFACE_BYTES`] bytes, not `.` or `..`, no
/// `/`, `:`, whitespace or control character.
pub fn is_interface_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_INTERFACE_BYTES
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// serde_json's message for a syntax error. It names a position, not the input, but is shortened all
/// the same (to a length no message of serde_json's reaches), as every text in an error is.
pub(crate) fn json_reason(e: &serde_json::Error) -> String {
    shorten(&e.to_string(), 4 * ECHO_CHARS).into_owned()
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
    format!("{} {}", json_kind(v), shorten(&v.to_string(), ECHO_CHARS))
}

pub mod network_status;
mod read;
#[cfg(test)]
mod tests;
