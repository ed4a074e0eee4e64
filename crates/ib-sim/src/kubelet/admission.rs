//! Whether a pod's sandbox could start on a real node: what Multus and ib-sriov-cni (with
//! `ibKubernetesEnabled`) would decide from the pod's networks annotation and the NADs it names
//! (with that flag the CNI refuses to add an interface until ib-kubernetes has marked the network
//! configured, and requires a GUID). Pure: the NAD lookup is passed in.

use std::fmt;
use std::sync::Arc;

use ib_model::annotation::{CONFIGURED_KEY, CONFIGURED_VALUE, NETWORKS_ANNOTATION, RUNTIME_GUID_KEY};
use ib_model::nad::{NadKind, classify};
use ib_model::{Guid, NetworksAnnotation};
use serde_json::Value;

/// What the kubelet does with a pod right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Not the kubelet's business: unscheduled, terminating, or already past Pending.
    Ignore,
    /// Every CNI ADD would succeed: the pod runs.
    Start,
    /// Some CNI ADD would fail; the kubelet would retry the sandbox, so the pod stays Pending.
    Wait(WaitReason),
}

/// Why a CNI ADD would fail, in the words of the component that fails it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Multus cannot parse the networks annotation.
    AnnotationInvalid(String),
    /// Multus cannot find the NAD.
    NadMissing { network: String },
    /// The NAD's CNI config is unusable (Multus or ib-sriov-cni would reject it, or ib-kubernetes
    /// will never configure it).
    NadInvalid { network: String, error: String },
    /// ib-sriov-cni: `"mellanox.infiniband.app" is not "configured"`.
    NotConfigured { network: String, interface: String },
    /// ib-sriov-cni: `GUID must be provided by ib-kubernetes` (absent, unreadable or all-zero).
    NoGuid { network: String, interface: String },
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::AnnotationInvalid(e) => write!(f, "Multus: {e}"),
            WaitReason::NadMissing { network } => write!(f, "Multus: NetworkAttachmentDefinition {network} not found"),
            WaitReason::NadInvalid { network, error } => write!(f, "NetworkAttachmentDefinition {network}: {error}"),
            WaitReason::NotConfigured { network, interface } => write!(
                f,
                "ib-sriov-cni ({network}, {interface}): InfiniBand status {CONFIGURED_KEY:?} is not {CONFIGURED_VALUE:?}"
            ),
            WaitReason::NoGuid { network, interface } => {
                write!(f, "ib-sriov-cni ({network}, {interface}): GUID must be provided by ib-kubernetes")
            }
        }
    }
}

/// Decides for one pod; `nad(namespace, name)` returns the stored NAD object.
pub fn admit(pod: &Value, nad: impl Fn(&str, &str) -> Option<Arc<Value>>) -> Admission {
    let scheduled = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let terminating = pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
    if !scheduled || terminating || phase != "Pending" {
        return Admission::Ignore;
    }
    // Multus does not run for host-network pods.
    if pod.pointer("/spec/hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Admission::Start;
    }
    let Some(raw) =
        pod.pointer("/metadata/annotations").and_then(|a| a.get(NETWORKS_ANNOTATION)).and_then(Value::as_str)
    else {
        return Admission::Start;
    };
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    match networks_ready(raw, namespace, &nad) {
        Ok(()) => Admission::Start,
        Err(reason) => Admission::Wait(reason),
    }
}

fn networks_ready(
    raw: &str,
    namespace: &str,
    nad: &impl Fn(&str, &str) -> Option<Arc<Value>>,
) -> Result<(), WaitReason> {
    let annotation =
        NetworksAnnotation::parse(raw, namespace).map_err(|e| WaitReason::AnnotationInvalid(e.to_string()))?;
    // The raw elements, to read GUIDs exactly where libcni would pass them from.
    let elements: Vec<Value> = serde_json::from_str::<Value>(raw)
        .ok()
        .and_then(|v| match v {
            Value::Array(items) => Some(items),
            _ => None,
        })
        .unwrap_or_default();
    for (index, selection) in annotation.selections().iter().enumerate() {
        let network = selection.network.to_string();
        let Some(object) = nad(&selection.network.namespace, &selection.network.name) else {
            return Err(WaitReason::NadMissing { network });
        };
        let config = object.pointer("/spec/config").and_then(Value::as_str);
        let spec = match classify(config) {
            Ok(NadKind::Other) => continue,
            Ok(NadKind::InfiniBand(spec)) => spec,
            Err(e) => return Err(WaitReason::NadInvalid { network, error: e.to_string() }),
        };
        let interface = selection.interface.clone();
        if !selection.configured {
            return Err(WaitReason::NotConfigured { network, interface });
        }
        let element = elements.get(index);
        let runtime = element.and_then(|e| e.get(RUNTIME_GUID_KEY)).and_then(Value::as_str).filter(|g| !g.is_empty());
        let args = element.and_then(|e| e.pointer("/cni-args/guid")).and_then(Value::as_str).filter(|g| !g.is_empty());
        // libcni hands `infiniband-guid` to the plugin only when the NAD declares the capability.
        let guid = if spec.runtime_config_guid { runtime.or(args) } else { args };
        if guid.and_then(|g| Guid::parse(g).ok()).is_none_or(|g| g.as_u64() == 0) {
            return Err(WaitReason::NoGuid { network, interface });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ib_nad() -> Option<Arc<Value>> {
        Some(Arc::new(json!({"spec": {"config": r#"{"type":"ib-sriov","pkey":"0x5"}"#}})))
    }

    fn pod(extra: Value) -> Value {
        let mut pod = json!({
            "metadata": {"name": "p", "namespace": "ns", "annotations": {NETWORKS_ANNOTATION: "ib"}},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Pending"}
        });
        if let (Value::Object(pod), Value::Object(extra)) = (&mut pod, extra) {
            for (k, v) in extra {
                pod[&k] = v;
            }
        }
        pod
    }

    #[test]
    fn only_scheduled_pending_live_pods_are_considered() {
        assert!(matches!(admit(&pod(json!({})), |_, _| ib_nad()), Admission::Wait(_)));
        assert_eq!(admit(&pod(json!({"spec": {}})), |_, _| ib_nad()), Admission::Ignore);
        assert_eq!(admit(&pod(json!({"status": {"phase": "Running"}})), |_, _| ib_nad()), Admission::Ignore);
        let mut terminating = pod(json!({}));
        terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert_eq!(admit(&terminating, |_, _| ib_nad()), Admission::Ignore);
    }

    #[test]
    fn host_network_pods_skip_multus() {
        let pod = pod(json!({"spec": {"nodeName": "n1", "hostNetwork": true}}));
        assert_eq!(admit(&pod, |_, _| None), Admission::Start);
    }

    #[test]
    fn an_all_zero_guid_is_refused() {
        let mut pod = pod(json!({}));
        pod["metadata"]["annotations"][NETWORKS_ANNOTATION] = json!(
            r#"[{"name":"ib","cni-args":{"guid":"00:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured"}}]"#
        );
        assert!(matches!(admit(&pod, |_, _| ib_nad()), Admission::Wait(WaitReason::NoGuid { .. })));
    }
}
