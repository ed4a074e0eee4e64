//! Reading the annotation's text: the JSON list or the short form into elements, each element into a
//! [`Selection`], within the size, element and name limits.

use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};

use super::*;

/// The elements of a JSON list: the first [`MAX_ELEMENTS`], and how many there are in all. Elements
/// past the limit are skipped without being built.
struct Elements {
    kept: Vec<Value>,
    count: usize,
}

struct ElementsVisitor;

impl<'de> Visitor<'de> for ElementsVisitor {
    type Value = Elements;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of network selection elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Elements, A::Error> {
        let mut kept = Vec::new();
        while kept.len() < MAX_ELEMENTS {
            match seq.next_element::<Value>()? {
                Some(element) => kept.push(element),
                None => return Ok(Elements { count: kept.len(), kept }),
            }
        }
        let mut count = kept.len();
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count += 1;
        }
        Ok(Elements { kept, count })
    }
}

pub(super) fn parse_json(raw: &str) -> Result<Vec<Map<String, Value>>, AnnotationError> {
    let json_error = |e: serde_json::Error| AnnotationError::Json { reason: json_reason(&e) };
    if !raw.trim_start().starts_with('[') {
        // Not a list: read it only to say what it is (serde_json's nesting limit bounds the work).
        let value: Value = serde_json::from_str(raw).map_err(json_error)?;
        return Err(AnnotationError::NotAList { found: json_kind(&value) });
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    let Elements { kept, count } = (&mut de).deserialize_seq(ElementsVisitor).map_err(json_error)?;
    de.end().map_err(json_error)?;
    if count > MAX_ELEMENTS {
        return Err(AnnotationError::TooManyElements { count, limit: MAX_ELEMENTS });
    }
    kept.into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(map) => Ok(map),
            other => Err(AnnotationError::ElementNotObject { index, found: json_kind(&other) }),
        })
        .collect()
}

/// Multus' `parsePodNetworkObjectName`, one item at a time; each item becomes the JSON element Multus
/// would have built from it, with the namespace explicit.
pub(super) fn parse_short(raw: &str) -> Result<Vec<Map<String, Value>>, AnnotationError> {
    // Counting separators builds nothing, so an oversized list is refused before any element exists.
    let count = raw.bytes().filter(|b| *b == b',').count() + 1;
    if count > MAX_ELEMENTS {
        return Err(AnnotationError::TooManyElements { count, limit: MAX_ELEMENTS });
    }
    raw.split(',')
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim();
            let (namespace, rest) = split_once_only(item, '/')?;
            let (namespace, rest) = match rest {
                None => ("", namespace),
                Some(rest) => (namespace.trim(), rest),
            };
            let (name, interface) = split_once_only(rest, '@')?;
            let (name, interface) = (name.trim(), interface.map_or("", str::trim));
            for (field, value) in [("namespace", namespace), ("name", name), ("interface", interface)] {
                if !value.is_empty() {
                    check_short_form(field, value).map_err(|problem| AnnotationError::InvalidName {
                        index,
                        field,
                        value: echo(value),
                        problem,
                    })?;
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

/// Splits a short-form item at its only `separator`; more than one is Multus' parse error.
fn split_once_only(item: &str, separator: char) -> Result<(&str, Option<&str>), AnnotationError> {
    match item.split_once(separator) {
        None => Ok((item, None)),
        Some((_, rest)) if rest.contains(separator) => Err(AnnotationError::ShortForm { item: echo(item), separator }),
        Some((before, after)) => Ok((before, Some(after))),
    }
}

/// Multus' rule for every part of a short-form item, `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` (no length cap
/// of its own), plus the length each part can have in Kubernetes and Linux.
fn check_short_form(field: &'static str, value: &str) -> Result<(), &'static str> {
    let (limit, too_long) = match field {
        "namespace" => (MAX_NAMESPACE_BYTES, NAMESPACE_TOO_LONG),
        "name" => (MAX_NAME_BYTES, NAME_TOO_LONG),
        _ => (MAX_INTERFACE_BYTES, INTERFACE_TOO_LONG),
    };
    if value.len() > limit {
        return Err(too_long);
    }
    if !is_label_chars(value) {
        return Err(SHORT_FORM_CHARS);
    }
    Ok(())
}

const SHORT_FORM_CHARS: &str = "a short-form item is [namespace/]name[@interface], each part lowercase letters, digits and '-', starting and ending with a letter or digit";
const NAME_CHARS: &str = "a NetworkAttachmentDefinition name is lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit";
const NAMESPACE_CHARS: &str =
    "a namespace name is lowercase letters, digits and '-', starting and ending with a letter or digit";
const INTERFACE_CHARS: &str =
    "an interface name may not be \".\" or \"..\" nor contain '/', ':', whitespace or control characters";
const NAME_TOO_LONG: &str = "longer than 253 characters, the limit of a NetworkAttachmentDefinition name";
const NAMESPACE_TOO_LONG: &str = "longer than 63 characters, the limit of a namespace name";
const INTERFACE_TOO_LONG: &str = "longer than 15 bytes, the Linux limit of an interface name";

/// The length first, so that the message of an overlong text names the limit it broke.
fn check_text(
    text: &str,
    max_bytes: usize,
    too_long: &'static str,
    valid: fn(&str) -> bool,
    invalid: &'static str,
) -> Result<(), &'static str> {
    if text.len() > max_bytes {
        return Err(too_long);
    }
    if !valid(text) {
        return Err(invalid);
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), &'static str> {
    check_text(name, MAX_NAME_BYTES, NAME_TOO_LONG, is_dns1123_subdomain, NAME_CHARS)
}

fn check_namespace(namespace: &str) -> Result<(), &'static str> {
    check_text(namespace, MAX_NAMESPACE_BYTES, NAMESPACE_TOO_LONG, is_dns1123_label, NAMESPACE_CHARS)
}

/// Multus does not check the JSON form's `interface`; Linux does when the CNI plugin renames the
/// interface (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`, no `/`, `:`, whitespace or control
/// character. Refusing here gives the pod a clear reason instead of a failed sandbox.
fn check_interface(interface: &str) -> Result<(), &'static str> {
    check_text(interface, MAX_INTERFACE_BYTES, INTERFACE_TOO_LONG, is_interface_name, INTERFACE_CHARS)
}

pub(super) fn read_element(
    index: usize,
    element: &Map<String, Value>,
    pod_namespace: &str,
) -> Result<Selection, AnnotationError> {
    let invalid =
        |field, value: &str, problem| AnnotationError::InvalidName { index, field, value: echo(value), problem };
    let name = optional_str(index, element, "name")?.unwrap_or_default();
    if name.is_empty() {
        return Err(AnnotationError::MissingName { index });
    }
    check_name(name).map_err(|problem| invalid("name", name, problem))?;
    let namespace = match optional_str(index, element, "namespace")? {
        Some(ns) if !ns.is_empty() => {
            check_namespace(ns).map_err(|problem| invalid("namespace", ns, problem))?;
            ns
        }
        _ => pod_namespace,
    };
    let interface = optional_str(index, element, "interface")?.unwrap_or_default();
    if !interface.is_empty() {
        check_interface(interface).map_err(|problem| invalid("interface", interface, problem))?;
    }
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
            pkey = arg(CNI_ARGS_PKEY)?.map(kept);
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
        (Some(g), _) => Some((kept(g), GuidSource::RuntimeConfig)),
        (None, Some(g)) => Some((kept(g), GuidSource::CniArgs)),
        (None, None) => None,
    };
    Ok(Selection { network: NetworkRef::new(namespace, name), interface: interface.to_owned(), guid, configured, pkey })
}

/// A GUID or pkey text as a [`Selection`] keeps it.
pub(super) fn kept(text: &str) -> String {
    let mut kept = shorten(text, MAX_KEPT_VALUE_CHARS).into_owned();
    kept.shrink_to_fit();
    kept
}

/// Fills `idx_<k>` for elements without an interface and refuses two elements with one identity, in
/// one pass each: k is the number of earlier elements with the same name, counted as they go by.
pub(super) fn assign_interfaces(selections: &mut [Selection]) -> Result<(), AnnotationError> {
    // Position among all elements with the same name, named ones included, namespace ignored: the Go
    // daemon's rule, so both daemons derive the same identity.
    let positions: Vec<usize> = {
        let mut per_name: HashMap<&str, usize> = HashMap::with_capacity(selections.len());
        selections
            .iter()
            .map(|s| {
                let seen = per_name.entry(&s.network.name).or_insert(0);
                *seen += 1;
                *seen - 1
            })
            .collect()
    };
    for (selection, k) in selections.iter_mut().zip(positions) {
        if selection.interface.is_empty() {
            selection.interface = format!("idx_{k}");
            selection.interface.shrink_to_fit();
        }
    }
    let mut seen: HashMap<(&NetworkRef, &str), usize> = HashMap::with_capacity(selections.len());
    for (index, s) in selections.iter().enumerate() {
        if let Some(first) = seen.insert((&s.network, s.interface.as_str()), index) {
            return Err(AnnotationError::DuplicateInterface {
                first,
                second: index,
                network: s.network.clone(),
                interface: s.interface.clone(),
            });
        }
    }
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
