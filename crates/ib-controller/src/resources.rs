//! The two watched kinds, decoded into exactly what the controller needs.
//!
//! A pod is decoded into [`CompactPod`], which skips the spec and keeps one annotation, so a watch of a
//! large cluster costs little CPU and memory, and is turned into an `ib_model::PodView` at once. The
//! fields read are typed leniently (anything of the wrong type reads as absent) so that one odd object
//! can never fail a whole list page and wedge the watch.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{NamespaceResourceScope, Resource};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use ib_model::annotation::NETWORKS_ANNOTATION;
use ib_model::annotation::network_status::{NETWORK_STATUS_ANNOTATION, parse_ib_addresses};
use ib_model::{NetworkRef, PodPhase, PodUid, PodView};

/// A pod, reduced on decoding.
#[derive(Clone, Debug, Default)]
pub struct CompactPod {
    /// The pod's name, namespace, UID, resourceVersion and annotations.
    pub metadata: ObjectMeta,
    /// Whether the pod has a deletion timestamp.
    pub deleting: bool,
    /// `metadata.creationTimestamp` as Unix seconds; 0 when absent or unreadable.
    pub created: i64,
    /// The node the pod is scheduled on, if any.
    pub node_name: Option<String>,
    /// Whether the pod uses the host's network (such pods get no IB interfaces).
    pub host_network: bool,
    /// `status.phase` as Kubernetes wrote it.
    pub phase: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPod {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    spec: RawPodSpec,
    #[serde(default)]
    status: RawPodStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMeta {
    name: Option<Value>,
    namespace: Option<Value>,
    uid: Option<Value>,
    resource_version: Option<Value>,
    deletion_timestamp: Option<Value>,
    creation_timestamp: Option<Value>,
    annotations: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPodSpec {
    node_name: Option<Value>,
    host_network: Option<Value>,
}

#[derive(Deserialize, Default)]
struct RawPodStatus {
    phase: Option<Value>,
}

fn string(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

impl RawMeta {
    /// Keeps only the networks and network-status annotations: the others can be large and are none of
    /// our business.
    fn into_meta(self) -> (ObjectMeta, bool, i64) {
        let annotations: std::collections::BTreeMap<String, String> = match self.annotations {
            Some(Value::Object(mut map)) => [NETWORKS_ANNOTATION, NETWORK_STATUS_ANNOTATION]
                .into_iter()
                .filter_map(|key| Some((key.to_owned(), string(map.remove(key))?)))
                .collect(),
            _ => Default::default(),
        };
        let meta = ObjectMeta {
            name: string(self.name),
            namespace: string(self.namespace),
            uid: string(self.uid),
            resource_version: string(self.resource_version),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        };
        let created = string(self.creation_timestamp)
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second());
        (meta, matches!(self.deletion_timestamp, Some(Value::String(_))), created)
    }
}

impl<'de> Deserialize<'de> for CompactPod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawPod::deserialize(deserializer)?;
        let (metadata, deleting, created) = raw.metadata.into_meta();
        Ok(CompactPod {
            metadata,
            deleting,
            created,
            node_name: string(raw.spec.node_name).filter(|n| !n.is_empty()),
            host_network: raw.spec.host_network == Some(Value::Bool(true)),
            phase: string(raw.status.phase),
        })
    }
}

/// `kube::Resource` for a namespaced type of ours with a `metadata` field: its kind, group, version
/// and plural as the API server names them.
macro_rules! namespaced_resource {
    ($type:ty, $kind:literal, $group:literal, $version:literal, $plural:literal) => {
        impl Resource for $type {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

namespaced_resource!(CompactPod, "Pod", "", "v1", "pods");

impl CompactPod {
    /// The controller's view; `None` for an object without uid, name or resourceVersion, which no real
    /// API server sends.
    pub fn into_view(self) -> Option<PodView> {
        let m = self.metadata;
        let mut annotations = m.annotations.unwrap_or_default();
        let networks = annotations.remove(NETWORKS_ANNOTATION);
        // Only IPoIB entries are kept, parsed; a refused annotation reports nothing, and the import then
        // treats an element without a GUID as the request it is.
        let mut network_status = annotations
            .remove(NETWORK_STATUS_ANNOTATION)
            .and_then(|raw| parse_ib_addresses(&raw).ok())
            .unwrap_or_default();
        network_status.shrink_to_fit();
        Some(PodView {
            uid: PodUid::from(m.uid?),
            namespace: m.namespace.unwrap_or_default().into(),
            name: m.name?,
            resource_version: m.resource_version?,
            node_name: self.node_name.map(Into::into),
            host_network: self.host_network,
            phase: PodPhase::parse(self.phase.as_deref()),
            deleting: self.deleting,
            networks,
            created: self.created,
            network_status,
        })
    }
}

/// A NetworkAttachmentDefinition (`k8s.cni.cncf.io/v1`). Hand-written rather than derived: we do not own
/// this CRD, and a NAD without `spec` must decode (Multus treats it as a config kept on the nodes).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Nad {
    /// The NAD's namespace and name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    spec: RawNadSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct RawNadSpec {
    config: Option<Value>,
}

impl Nad {
    /// The `namespace/name` pods use to refer to this NAD; `None` when either is missing.
    pub fn network(&self) -> Option<NetworkRef> {
        Some(NetworkRef::new(self.metadata.namespace.clone()?, self.metadata.name.clone()?))
    }

    /// `spec.config` as text; a non-string config is passed on as its JSON text so that the model
    /// reports it as invalid instead of silently ignoring it.
    pub fn config(&self) -> Option<String> {
        match &self.spec.config {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        }
    }
}

namespaced_resource!(Nad, "NetworkAttachmentDefinition", "k8s.cni.cncf.io", "v1", "network-attachment-definitions");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_are_reduced_and_lenient() {
        let pod: CompactPod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                         "deletionTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "ib", "big": "x"},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"nodeName": "n1", "hostNetwork": true, "containers": [{"name": "c"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let view = pod.into_view().unwrap();
        assert_eq!(view.uid, PodUid("u1".into()));
        assert_eq!((&*view.namespace, view.name.as_str(), view.resource_version.as_str()), ("ns", "p", "7"));
        assert_eq!(view.node_name.as_deref(), Some("n1"));
        assert!(view.host_network && view.deleting);
        assert_eq!(view.phase, PodPhase::Running);
        assert_eq!(view.networks.as_deref(), Some("ib"));

        // Wrong types read as absent instead of failing the decode.
        let odd: CompactPod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u", "resourceVersion": "1", "annotations": ["x"]},
            "spec": {"nodeName": 5, "hostNetwork": "yes"},
            "status": {"phase": {"x": 1}}
        }))
        .unwrap();
        let view = odd.into_view().unwrap();
        assert_eq!(
            (view.node_name, view.host_network, view.networks, view.phase),
            (None, false, None, PodPhase::Unknown)
        );
        let no_uid: CompactPod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert!(no_uid.into_view().is_none());
    }

    #[test]
    fn network_status_keeps_only_ipoib_guids_and_reads_garbage_as_none() {
        let pod = |status: Value| {
            let pod: CompactPod = serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "1",
                             "annotations": {"k8s.v1.cni.cncf.io/network-status": status, "other": "x"}}
            }))
            .unwrap();
            pod.into_view().unwrap().network_status
        };
        let ipoib = "00:00:01:07:fe:80:00:00:00:00:00:00:02:00:00:00:00:00:00:07";
        let status = json!([
            {"name": "k8s-pod-network", "interface": "eth0", "mac": "0a:58:0a:00:00:05"},
            {"name": "ns/ib", "interface": "net1", "mac": ipoib},
            {"name": "ns/macvlan", "interface": "net2", "mac": "0a:58:0a:00:00:06"}
        ]);
        let read = pod(Value::String(status.to_string()));
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].network.to_string().as_str(), read[0].interface.as_str()), ("ns/ib", "net1"));
        assert_eq!(read[0].guid, ib_model::Guid::parse("02:00:00:00:00:00:00:07").unwrap());
        // Not a string, not JSON, wrong types, larger than any annotation can be: nothing, no error.
        for garbage in [
            json!(5),
            json!({"name": "ns/ib"}),
            Value::String("[".repeat(100_000)),
            Value::String(r#"[{"name":"ns/ib","mac":7}]"#.into()),
            Value::String(format!(r#"[{{"name":"ns/ib","mac":"{ipoib}","pad":"{}"}}]"#, "x".repeat(1 << 20))),
        ] {
            assert!(pod(garbage).is_empty());
        }
    }

    #[test]
    fn nads_without_spec_decode() {
        let nad: Nad = serde_json::from_value(json!({"metadata": {"name": "n", "namespace": "d"}})).unwrap();
        assert_eq!(nad.network(), Some(NetworkRef::new("d", "n")));
        assert_eq!(nad.config(), None);
        let nad: Nad = serde_json::from_value(
            json!({"metadata": {"name": "n", "namespace": "d"}, "spec": {"config": {"type": "ib-sriov"}}}),
        )
        .unwrap();
        assert_eq!(nad.config().as_deref(), Some(r#"{"type":"ib-sriov"}"#));
    }
}
