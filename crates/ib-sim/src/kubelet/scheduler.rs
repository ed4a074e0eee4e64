//! The simulated nodes and the part of a scheduler the emulated cluster needs: the kubelet
//! registers its nodes as Node objects, and a pod that names no node is bound to one, as the
//! default scheduler would (a ready, schedulable node whose labels match the pod's
//! `nodeSelector`, the one with the fewest pods bound here), with the Events a scheduler and a
//! kubelet write so that `kubectl describe pod` tells why a pod is where it is.

use kube_emulator::{ApiError, EmulatorHandle, Resource};
use serde_json::{Value, json};

use super::status::now_rfc3339;

/// The kubelet's nodes: the names the workloads and the demo bind pods to.
pub const NODE_COUNT: usize = 16;

/// The default scheduler's name; pods that name another scheduler are left to it.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// `node-01` … `node-16`.
pub fn node_names() -> Vec<String> {
    (1..=NODE_COUNT).map(|i| format!("node-{i:02}")).collect()
}

/// A Ready node offering the SR-IOV InfiniBand resource the example pods request.
pub fn node_object(name: &str, version: &str) -> Value {
    let at = now_rfc3339();
    let capacity = json!({ "cpu": "64", "memory": "256Gi", "pods": "110", "mellanox.com/mlnx_sriov_rdma_ib": "8" });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/worker": "",
            },
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status (simulated)",
                "lastHeartbeatTime": at, "lastTransitionTime": at,
            }],
            "nodeInfo": {
                "kubeletVersion": version, "kubeProxyVersion": version, "operatingSystem": "linux",
                "architecture": "amd64", "containerRuntimeVersion": "simulated://1.0",
                "osImage": "ib-kubernetes sim", "kernelVersion": "simulated",
                "machineID": "", "systemUUID": "", "bootID": "",
            },
        },
    })
}

/// Registers every node; a node already registered (by an earlier kubelet) is kept.
pub fn register_nodes(api: &EmulatorHandle) -> Result<(), ApiError> {
    for name in node_names() {
        match api.create(Resource::Nodes, node_object(&name, "v1.33.0")) {
            Ok(_) => {}
            Err(ApiError::AlreadyExists { .. }) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// Whether the default scheduler should place this pod now.
pub fn wants_scheduling(pod: &Value) -> bool {
    let unscheduled = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty);
    let terminating = pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    let pending = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending") == "Pending";
    let scheduler = pod.pointer("/spec/schedulerName").and_then(Value::as_str).unwrap_or(DEFAULT_SCHEDULER);
    unscheduled && !terminating && pending && scheduler == DEFAULT_SCHEDULER
}

/// Whether `node` can take `pod`: Ready, not cordoned, every `nodeSelector` label matching.
fn fits(pod: &Value, node: &Value) -> bool {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    let cordoned = node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
    let selector = pod.pointer("/spec/nodeSelector").and_then(Value::as_object);
    let labels = node.pointer("/metadata/labels");
    let selected = selector.is_none_or(|selector| {
        selector.iter().all(|(key, want)| labels.and_then(|l| l.get(key)).is_some_and(|have| have == want))
    });
    ready && !cordoned && selected
}

/// Picks the node for `pod`: among the nodes that fit, the one with the fewest pods bound to it,
/// ties to the first name. `Err` carries the scheduler's FailedScheduling message.
pub fn choose(pod: &Value, nodes: &[std::sync::Arc<Value>], pods: &[std::sync::Arc<Value>]) -> Result<String, String> {
    let load =
        |name: &str| pods.iter().filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(name)).count();
    let fitting: Vec<&str> = nodes
        .iter()
        .filter(|node| fits(pod, node))
        .filter_map(|node| node.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    fitting.iter().min_by_key(|name| (load(name), **name)).map(|name| (*name).to_owned()).ok_or_else(|| {
        format!(
            "0/{} nodes are available: {} node(s) didn't match Pod's node affinity/selector, were not ready or were \
             unschedulable. preemption: not eligible.",
            nodes.len(),
            nodes.len()
        )
    })
}

/// A core `v1` Event about `pod`, as the scheduler and the kubelet write them.
pub fn pod_event(pod: &Value, kind: &str, reason: &str, message: &str, component: &str, host: &str) -> Value {
    let at = now_rfc3339();
    let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut source = json!({ "component": component });
    if !host.is_empty() {
        source["host"] = json!(host);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "generateName": format!("{}.", text("/metadata/name")), "namespace": text("/metadata/namespace") },
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "name": text("/metadata/name"),
            "namespace": text("/metadata/namespace"), "uid": text("/metadata/uid"),
        },
        "type": kind,
        "reason": reason,
        "message": message,
        "source": source,
        "reportingComponent": component,
        "reportingInstance": host,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pod(spec: Value) -> Value {
        json!({ "metadata": { "name": "p", "namespace": "default", "uid": "u" }, "spec": spec, "status": { "phase": "Pending" } })
    }

    #[test]
    fn least_loaded_fitting_node_wins() {
        let nodes: Vec<Arc<Value>> = ["node-01", "node-02"].iter().map(|n| Arc::new(node_object(n, "v1"))).collect();
        let bound = vec![Arc::new(pod(json!({ "nodeName": "node-01" })))];
        assert_eq!(choose(&pod(json!({})), &nodes, &bound), Ok("node-02".to_owned()));
        assert_eq!(choose(&pod(json!({})), &nodes, &[]), Ok("node-01".to_owned()));
        let pinned = pod(json!({ "nodeSelector": { "kubernetes.io/hostname": "node-01" } }));
        assert_eq!(choose(&pinned, &nodes, &bound), Ok("node-01".to_owned()));
    }

    #[test]
    fn no_fitting_node_is_a_scheduling_failure() {
        let mut cordoned = node_object("node-01", "v1");
        cordoned["spec"]["unschedulable"] = json!(true);
        let nodes = vec![Arc::new(cordoned)];
        let err = choose(&pod(json!({})), &nodes, &[]).unwrap_err();
        assert!(err.starts_with("0/1 nodes are available"), "{err}");
        let elsewhere = pod(json!({ "nodeSelector": { "gpu": "yes" } }));
        assert!(choose(&elsewhere, &[Arc::new(node_object("node-02", "v1"))], &[]).is_err());
        assert!(choose(&pod(json!({})), &[], &[]).is_err());
    }

    #[test]
    fn only_unscheduled_pending_pods_of_the_default_scheduler_are_placed() {
        assert!(wants_scheduling(&pod(json!({}))));
        assert!(!wants_scheduling(&pod(json!({ "nodeName": "node-01" }))));
        assert!(!wants_scheduling(&pod(json!({ "schedulerName": "volcano" }))));
        let mut gone = pod(json!({}));
        gone["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert!(!wants_scheduling(&gone));
    }

    #[test]
    fn events_name_the_pod() {
        let e = pod_event(&pod(json!({})), "Normal", "Scheduled", "m", DEFAULT_SCHEDULER, "");
        assert_eq!(e["involvedObject"]["uid"], "u");
        assert_eq!(e["metadata"]["generateName"], "p.");
        assert!(e["source"].get("host").is_none());
    }
}
