//! Label and field selectors, parsed once per request and matched against stored JSON.
//!
//! Label selectors accept the apiserver grammar the controller and kubectl use: `k=v`, `k==v`,
//! `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` and `!k`, joined by commas. Field selectors accept
//! `=`, `==` and `!=` on the fields the apiserver indexes for the resource; any other field is a
//! 400, as on a real server.

use crate::resource::Resource;
use serde_json::Value;

/// Why a selector string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector does not parse.
    #[error("unable to parse requirement: {0}")]
    Label(String),
    /// The field selector does not parse.
    #[error("invalid field selector: {0}")]
    FieldSyntax(String),
    /// The field is not indexed for this resource.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses the `labelSelector` query value.
    pub fn parse(input: &str) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(input)? {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `object`'s `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        if self.requirements.is_empty() {
            return true;
        }
        let labels = object.pointer("/metadata/labels");
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|req| {
            let value = label(&req.key);
            match &req.op {
                LabelOp::Equals(v) => value == Some(v.as_str()),
                // Like the apiserver, `!=` and `notin` also match objects without the label.
                LabelOp::NotEquals(v) => value != Some(v.as_str()),
                LabelOp::In(vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
                LabelOp::NotIn(vs) => !value.is_some_and(|x| vs.iter().any(|v| v == x)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// Splits on commas that are not inside a `( … )` value set.
fn split_top_level(input: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth =
                    depth.checked_sub(1).ok_or_else(|| SelectorError::Label(format!("unbalanced ')' in {input:?}")))?;
            }
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError::Label(format!("unbalanced '(' in {input:?}")));
    }
    parts.push(&input[start..]);
    Ok(parts)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn checked_key(key: &str) -> Result<String, SelectorError> {
    let key = key.trim();
    if valid_key(key) { Ok(key.to_string()) } else { Err(SelectorError::Label(format!("invalid label key {key:?}"))) }
}

fn checked_value(value: &str) -> Result<String, SelectorError> {
    let value = value.trim();
    if valid_value(value) {
        Ok(value.to_string())
    } else {
        Err(SelectorError::Label(format!("invalid label value {value:?}")))
    }
}

fn parse_requirement(part: &str) -> Result<LabelRequirement, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelRequirement { key: checked_key(key)?, op: LabelOp::DoesNotExist });
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(LabelRequirement { key: checked_key(key)?, op: LabelOp::NotEquals(checked_value(value)?) });
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(LabelRequirement { key: checked_key(key)?, op: LabelOp::Equals(checked_value(value)?) });
    }
    if let Some(open) = part.find('(') {
        let head = part[..open].trim_end();
        let (key, negated) = if let Some(key) = head.strip_suffix(" notin") {
            (key, true)
        } else if let Some(key) = head.strip_suffix(" in") {
            (key, false)
        } else {
            return Err(SelectorError::Label(format!("expected 'in' or 'notin' before '(' in {part:?}")));
        };
        let inner = part[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| SelectorError::Label(format!("expected ')' at the end of {part:?}")))?;
        let values = inner.split(',').map(checked_value).collect::<Result<Vec<_>, _>>()?;
        let op = if negated { LabelOp::NotIn(values) } else { LabelOp::In(values) };
        return Ok(LabelRequirement { key: checked_key(key)?, op });
    }
    if part.contains(char::is_whitespace) {
        return Err(SelectorError::Label(format!("found unexpected token in {part:?}")));
    }
    Ok(LabelRequirement { key: checked_key(part)?, op: LabelOp::Exists })
}

/// A field the emulator can select on: the JSON pointer that holds it. The selectable fields
/// are the apiserver's for each type: every type has `metadata.name` and `metadata.namespace`;
/// pods, nodes and both Event views add their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field(&'static str);

impl Field {
    fn lookup(resource: Resource, label: &str) -> Option<Field> {
        const CORE_EVENT: [(&str, &str); 11] = [
            ("involvedObject.kind", "/involvedObject/kind"),
            ("involvedObject.namespace", "/involvedObject/namespace"),
            ("involvedObject.name", "/involvedObject/name"),
            ("involvedObject.uid", "/involvedObject/uid"),
            ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
            ("involvedObject.resourceVersion", "/involvedObject/resourceVersion"),
            ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
            ("reason", "/reason"),
            ("reportingComponent", "/reportingComponent"),
            ("source", "/source/component"),
            ("type", "/type"),
        ];
        const EVENT_V1: [(&str, &str); 10] = [
            ("regarding.kind", "/regarding/kind"),
            ("regarding.namespace", "/regarding/namespace"),
            ("regarding.name", "/regarding/name"),
            ("regarding.uid", "/regarding/uid"),
            ("regarding.apiVersion", "/regarding/apiVersion"),
            ("regarding.resourceVersion", "/regarding/resourceVersion"),
            ("regarding.fieldPath", "/regarding/fieldPath"),
            ("reason", "/reason"),
            ("reportingController", "/reportingController"),
            ("type", "/type"),
        ];
        const POD: [(&str, &str); 2] = [("spec.nodeName", "/spec/nodeName"), ("status.phase", "/status/phase")];
        const NODE: [(&str, &str); 1] = [("spec.unschedulable", "/spec/unschedulable")];
        let own: &[(&str, &str)] = match resource {
            Resource::Pods => &POD,
            Resource::Nodes => &NODE,
            Resource::CoreEvents => &CORE_EVENT,
            Resource::Events => &EVENT_V1,
            _ => &[],
        };
        [("metadata.name", "/metadata/name"), ("metadata.namespace", "/metadata/namespace")]
            .iter()
            .chain(own)
            .find(|(name, _)| *name == label)
            .map(|(_, pointer)| Field(pointer))
    }

    fn pointer(self) -> &'static str {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    field: Field,
    value: String,
    negated: bool,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses the `fieldSelector` query value for `resource`.
    pub fn parse(resource: Resource, input: &str) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        for part in input.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (label, value, negated) = if let Some((l, v)) = part.split_once("!=") {
                (l, v, true)
            } else if let Some((l, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (l, v, false)
            } else {
                return Err(SelectorError::FieldSyntax(part.to_string()));
            };
            let label = label.trim();
            let field =
                Field::lookup(resource, label).ok_or_else(|| SelectorError::UnsupportedField(label.to_string()))?;
            requirements.push(FieldRequirement { field, value: value.trim().to_string(), negated });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `object` satisfies every requirement. A missing field compares as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|req| {
            // Booleans and numbers (`spec.unschedulable`, say) select by their printed form.
            let actual = match object.pointer(req.field.pointer()) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (actual == req.value) != req.negated
        })
    }
}

/// Namespace scope plus both selectors: what a LIST or WATCH request filters on.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Restrict to one namespace.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Whether `object` is in scope and passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            let actual = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
            if actual != ns {
                return false;
            }
        }
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// Whether any selector narrows the result beyond the namespace.
    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({ "metadata": { "name": "p", "namespace": "ns", "labels": labels } })
    }

    #[test]
    fn equality_forms() {
        let obj = labelled(json!({ "app": "web", "tier": "front" }));
        for sel in ["app=web", "app==web", "app=web,tier=front", "app!=db", "missing!=x"] {
            assert!(LabelSelector::parse(sel).unwrap().matches(&obj), "{sel}");
        }
        for sel in ["app=db", "app!=web", "app=web,tier=back"] {
            assert!(!LabelSelector::parse(sel).unwrap().matches(&obj), "{sel}");
        }
    }

    #[test]
    fn set_forms() {
        let obj = labelled(json!({ "app": "web" }));
        for sel in ["app in (web, db)", "app notin (db)", "other notin (x)", "app", "!other", "app in (web),!other"] {
            assert!(LabelSelector::parse(sel).unwrap().matches(&obj), "{sel}");
        }
        for sel in ["app in (db,cache)", "app notin (web)", "other", "!app"] {
            assert!(!LabelSelector::parse(sel).unwrap().matches(&obj), "{sel}");
        }
    }

    #[test]
    fn object_without_labels() {
        let obj = json!({ "metadata": { "name": "p" } });
        assert!(LabelSelector::parse("!app").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("app").unwrap().matches(&obj));
        assert!(LabelSelector::parse("").unwrap().matches(&obj));
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for sel in ["app in (web", "app)", "a b", "app in web)", "=x", "app=va lue"] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn pod_fields() {
        let pod = json!({
            "metadata": { "name": "p", "namespace": "ns" },
            "spec": { "nodeName": "n1" },
            "status": { "phase": "Running" }
        });
        let sel = FieldSelector::parse(Resource::Pods, "spec.nodeName=n1,status.phase!=Failed").unwrap();
        assert!(sel.matches(&pod));
        let sel = FieldSelector::parse(Resource::Pods, "metadata.name==q").unwrap();
        assert!(!sel.matches(&pod));
        let sel = FieldSelector::parse(Resource::Pods, "spec.nodeName=").unwrap();
        assert!(!sel.matches(&pod));
    }

    #[test]
    fn unsupported_fields_are_rejected() {
        assert_eq!(
            FieldSelector::parse(Resource::Leases, "spec.nodeName=x"),
            Err(SelectorError::UnsupportedField("spec.nodeName".into()))
        );
        assert!(FieldSelector::parse(Resource::Pods, "spec.hostNetwork=true").is_err());
        assert!(FieldSelector::parse(Resource::Pods, "metadata.name").is_err());
    }

    #[test]
    fn filter_scopes_namespace() {
        let filter = Filter { namespace: Some("other".into()), ..Filter::default() };
        assert!(!filter.matches(&labelled(json!({}))));
    }
}
