//! The soak's own reading of the networks annotation (`k8s.v1.cni.cncf.io/networks`): only what the
//! invariants need, linear in the annotation's size, and independent of the controller's parser, so that
//! a parser bug cannot hide itself and a hostile annotation cannot slow the judge down.
//!
//! A value holding `[`, `{` or `"` is a JSON list of elements, anything else the short form
//! `[<namespace>/]<name>[@<interface>],…` (as Multus reads it). An element without a namespace is in the
//! pod's namespace. Elements keep their position: the controller edits the list in place, so element `i`
//! of a patch is element `i` of the pod as its author wrote it.

use ib_model::Guid;
use serde_json::Value;

/// Kubernetes caps all annotations of an object at 256 KiB.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;
/// The key ib-sriov-cni waits for in `cni-args`, and its one accepted value.
pub const CONFIGURED_KEY: &str = "mellanox.infiniband.app";
pub const CONFIGURED_VALUE: &str = "configured";

/// One element, as far as the invariants care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// Position in the list.
    pub index: usize,
    pub namespace: String,
    pub name: String,
    /// The GUID the element names, if any parses: `infiniband-guid`, else `cni-args.guid`.
    pub guid: Option<Guid>,
    /// `cni-args["mellanox.infiniband.app"] == "configured"`.
    pub configured: bool,
    /// `cni-args.pkey` as written.
    pub pkey: Option<String>,
}

/// The elements of an annotation value of a pod in `pod_namespace`; `None` when the value is too large or
/// not a list of objects (the controller must refuse it, so such a pod holds nothing).
pub fn elements(raw: &str, pod_namespace: &str) -> Option<Vec<Element>> {
    if raw.len() > MAX_ANNOTATION_BYTES {
        return None;
    }
    if raw.trim().is_empty() {
        return Some(Vec::new());
    }
    if !raw.contains(['[', '{', '"']) {
        return Some(short_form(raw, pod_namespace));
    }
    // serde_json refuses nesting deeper than 128 levels, so deep input fails here instead of recursing.
    let Value::Array(items) = serde_json::from_str::<Value>(raw).ok()? else {
        return None;
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let object = item.as_object()?;
            let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
            let args = object.get("cni-args").and_then(Value::as_object);
            let arg = |key: &str| text(args.and_then(|a| a.get(key)));
            let guid = text(object.get("infiniband-guid")).or_else(|| arg("guid"));
            Some(Element {
                index,
                namespace: text(object.get("namespace")).unwrap_or_else(|| pod_namespace.to_owned()),
                name: text(object.get("name")).unwrap_or_default(),
                guid: guid.and_then(|g| Guid::parse(&g).ok()),
                configured: arg(CONFIGURED_KEY).as_deref() == Some(CONFIGURED_VALUE),
                pkey: arg("pkey"),
            })
        })
        .collect()
}

fn short_form(raw: &str, pod_namespace: &str) -> Vec<Element> {
    raw.split(',')
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim();
            let (namespace, rest) = match item.split_once('/') {
                Some((ns, rest)) => (ns.trim(), rest),
                None => (pod_namespace, item),
            };
            let name = rest.split('@').next().unwrap_or_default().trim();
            Element {
                index,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                guid: None,
                configured: false,
                pkey: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_elements_in_place() {
        let raw = r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:00:00:01","mellanox.infiniband.app":"configured","pkey":"0x10"}},
                      {"name":"o","namespace":"other","infiniband-guid":"02:00:00:00:00:00:00:02","cni-args":{"guid":"02:00:00:00:00:00:00:03"}},
                      {"name":"plain","cni-args":{"x":[[[1]]]}}]"#;
        let e = elements(raw, "t").unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].namespace.as_str(), e[0].name.as_str(), e[0].configured), ("t", "ib", true));
        assert_eq!(e[0].guid, Some(Guid::from_u64(0x0200_0000_0000_0001)));
        assert_eq!(e[0].pkey.as_deref(), Some("0x10"));
        assert_eq!((e[1].namespace.as_str(), e[1].guid), ("other", Some(Guid::from_u64(0x0200_0000_0000_0002))));
        assert!(!e[2].configured && e[2].guid.is_none() && e[2].index == 2);
    }

    #[test]
    fn short_form_and_refusals() {
        let e = elements("a, other/b@ib1", "t").unwrap();
        assert_eq!((e[1].namespace.as_str(), e[1].name.as_str()), ("other", "b"));
        assert_eq!(elements(&"a,".repeat(100_000), "t").unwrap().len(), 100_001);
        assert!(elements(&"a,".repeat(140_000), "t").is_none(), "over 256 KiB");
        let deep = format!("[{{\"name\":\"x\",\"cni-args\":{{\"d\":{}{}}}}}]", "[".repeat(5000), "]".repeat(5000));
        assert!(elements(&deep, "t").is_none(), "nesting beyond serde_json's limit");
        assert!(elements(r#"{"name":"x"}"#, "t").is_none());
        assert!(elements(r#"[{"name":"x"}, 7]"#, "t").is_none());
    }
}
