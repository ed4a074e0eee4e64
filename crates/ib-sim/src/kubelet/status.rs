//! The pod `status` a kubelet writes when containers start and when they end, complete enough for
//! `kubectl get pods` (READY, STATUS, RESTARTS columns) and for clients that read conditions.

use serde_json::{Value, json};

/// How a pod's containers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOutcome {
    Succeeded,
    Failed,
}

impl PodOutcome {
    pub fn phase(self) -> &'static str {
        match self {
            PodOutcome::Succeeded => "Succeeded",
            PodOutcome::Failed => "Failed",
        }
    }

    fn exit(self) -> (i64, &'static str) {
        match self {
            PodOutcome::Succeeded => (0, "Completed"),
            PodOutcome::Failed => (1, "Error"),
        }
    }
}

/// RFC 3339 at whole seconds, as the API server stores `metav1.Time`.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

fn containers(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                    (field("name"), field("image"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn conditions(ready: bool, at: &str) -> Value {
    let status = |on: bool| if on { "True" } else { "False" };
    json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
        {"type": "Initialized", "status": "True", "lastTransitionTime": at},
        {"type": "ContainersReady", "status": status(ready), "lastTransitionTime": at},
        {"type": "Ready", "status": status(ready), "lastTransitionTime": at},
    ])
}

/// Sets `status` to Running with every container started and ready.
pub fn set_running(pod: &mut Value, at: &str) {
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_owned();
    let statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name, "image": image, "imageID": "", "containerID": format!("sim://{uid}/{name}"),
                "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": at}}
            })
        })
        .collect();
    pod["status"] = json!({
        "phase": "Running",
        "startTime": at,
        "conditions": conditions(true, at),
        "containerStatuses": statuses,
    });
}

/// Sets `status` to Succeeded or Failed with every container terminated.
pub fn set_finished(pod: &mut Value, outcome: PodOutcome, at: &str) {
    let started = pod.pointer("/status/startTime").and_then(Value::as_str).unwrap_or(at).to_owned();
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_owned();
    let (code, reason) = outcome.exit();
    let statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name, "image": image, "imageID": "", "containerID": format!("sim://{uid}/{name}"),
                "ready": false, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": at}}
            })
        })
        .collect();
    pod["status"] = json!({
        "phase": outcome.phase(),
        "startTime": started,
        "conditions": conditions(false, at),
        "containerStatuses": statuses,
    });
}
