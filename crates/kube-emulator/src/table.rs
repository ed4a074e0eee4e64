//! `meta.k8s.io/v1` `Table` responses, which kubectl asks for to print `get` output.
//!
//! kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,…,application/json`.
//! A server may answer with plain JSON, but kubectl then prints only NAME and AGE, so we serve
//! the columns the apiserver's printers serve for pods (NAME READY STATUS RESTARTS AGE), the
//! printer columns of the GuidBlock CRD (NAME START AGE) and the default NAME AGE for everything
//! else.

use crate::meta;
use crate::resource::Resource;
use serde_json::{Value, json};

/// What each row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub(crate) fn parse(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// The response representation a client negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Table(IncludeObject),
}

impl Format {
    /// Picks Table when the Accept header offers it for `meta.k8s.io/v1`.
    pub(crate) fn negotiate(accept: &str, include: Option<&str>) -> Format {
        let wants_table = accept.split(',').any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") && params.contains(&"v=v1")
        });
        if wants_table { Format::Table(IncludeObject::parse(include)) } else { Format::Json }
    }
}

fn columns(resource: Resource) -> Value {
    let name = json!({ "name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0 });
    let age = json!({ "name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0 });
    match resource {
        Resource::Pods => json!([
            name,
            { "name": "Ready", "type": "string", "format": "", "description": "The aggregate readiness state of this pod for accepting traffic.", "priority": 0 },
            { "name": "Status", "type": "string", "format": "", "description": "The aggregate status of the containers in this pod.", "priority": 0 },
            { "name": "Restarts", "type": "string", "format": "", "description": "The number of times the containers in this pod have been restarted.", "priority": 0 },
            age,
            { "name": "IP", "type": "string", "format": "", "description": "The IP address assigned to this pod.", "priority": 1 },
            { "name": "Node", "type": "string", "format": "", "description": "The node the pod is scheduled on.", "priority": 1 },
        ]),
        Resource::GuidBlocks => json!([
            name,
            { "name": "Start", "type": "string", "format": "", "description": "The block's first GUID.", "priority": 0 },
            age,
        ]),
        Resource::Events | Resource::CoreEvents => {
            let column = |name: &str, kind: &str, priority: u8, description: &str| json!({ "name": name, "type": kind, "format": "", "description": description, "priority": priority });
            json!([
                column("Last Seen", "string", 0, "When the event was last observed."),
                column("Type", "string", 0, "Type of this event (Normal, Warning)."),
                column("Reason", "string", 0, "Why the action was taken."),
                column("Object", "string", 0, "The object this event is about."),
                column("Subobject", "string", 1, "The part of the object this event is about."),
                column("Source", "string", 1, "The component reporting this event."),
                column("Message", "string", 0, "A human-readable description of the event."),
                column("First Seen", "string", 1, "When the event was first observed."),
                column("Count", "integer", 1, "How often the event occurred."),
                column("Name", "string", 1, "The event's name."),
            ])
        }
        Resource::Nodes => json!([
            name,
            { "name": "Status", "type": "string", "format": "", "description": "The status of the node.", "priority": 0 },
            { "name": "Roles", "type": "string", "format": "", "description": "The roles of the node.", "priority": 0 },
            age,
            { "name": "Version", "type": "string", "format": "", "description": "Kubelet Version reported by the node.", "priority": 0 },
        ]),
        _ => json!([name, age]),
    }
}

/// The apiserver's Event printer, which serves both Event views from the core fields.
fn event_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let core;
    let obj = if obj.get("apiVersion").and_then(Value::as_str) == Some(Resource::Events.api_version()) {
        core = crate::event_views::convert(Resource::Events, Resource::CoreEvents, obj);
        &core
    } else {
        obj
    };
    let since = |pointer: &str| {
        obj.pointer(pointer)
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| human_duration(now.as_second() - t.as_second()))
    };
    let first = since("/firstTimestamp").or_else(|| since("/eventTime")).unwrap_or_else(|| "<unknown>".into());
    let (last, count) = match obj.get("series").filter(|s| s.is_object()) {
        Some(series) => (
            since("/series/lastObservedTime").unwrap_or_else(|| "<unknown>".into()),
            series.get("count").and_then(Value::as_i64).unwrap_or(1),
        ),
        None => (
            since("/lastTimestamp").unwrap_or_else(|| first.clone()),
            obj.get("count").and_then(Value::as_i64).filter(|c| *c > 0).unwrap_or(1),
        ),
    };
    let text = |pointer: &str| obj.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let object = format!("{}/{}", text("/involvedObject/kind").to_lowercase(), text("/involvedObject/name"));
    let component =
        [text("/source/component"), text("/reportingComponent")].into_iter().find(|c| !c.is_empty()).unwrap_or("");
    let host = [text("/source/host"), text("/reportingInstance")].into_iter().find(|c| !c.is_empty()).unwrap_or("");
    let source = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    json!([
        last,
        text("/type"),
        text("/reason"),
        object,
        text("/involvedObject/fieldPath"),
        source,
        text("/message").trim(),
        first,
        count,
        meta::str_field(obj, "name").unwrap_or(""),
    ])
}

fn node_status(obj: &Value) -> String {
    let ready = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| conditions.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .and_then(|c| c.get("status").and_then(Value::as_str));
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn cells(resource: Resource, obj: &Value, now: jiff::Timestamp) -> Value {
    let name = meta::str_field(obj, "name").unwrap_or("");
    let age = meta::str_field(obj, "creationTimestamp")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| human_duration(now.as_second() - t.as_second()))
        .unwrap_or_else(|| "<unknown>".to_string());
    match resource {
        Resource::Pods => {
            let containers = obj.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
            let statuses =
                obj.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
            let ready = statuses.iter().filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true)).count();
            let restarts: i64 = statuses.iter().filter_map(|s| s.get("restartCount").and_then(Value::as_i64)).sum();
            let status = if meta::is_terminating(obj) {
                "Terminating".to_string()
            } else {
                obj.pointer("/status/reason")
                    .or_else(|| obj.pointer("/status/phase"))
                    .and_then(Value::as_str)
                    .unwrap_or("Unknown")
                    .to_string()
            };
            let ip = obj.pointer("/status/podIP").and_then(Value::as_str).unwrap_or("<none>");
            let node = obj.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("<none>");
            json!([name, format!("{ready}/{containers}"), status, restarts, age, ip, node])
        }
        Resource::GuidBlocks => {
            // A missing value is a null cell, as the apiserver sends it; kubectl prints `<none>`.
            let start = obj.pointer("/spec/start").cloned().unwrap_or(Value::Null);
            json!([name, start, age])
        }
        Resource::Events | Resource::CoreEvents => event_cells(obj, now),
        Resource::Nodes => {
            let mut roles: Vec<&str> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|labels| labels.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).collect())
                .unwrap_or_default();
            roles.sort_unstable();
            let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
            let version = obj.pointer("/status/nodeInfo/kubeletVersion").and_then(Value::as_str).unwrap_or("");
            json!([name, node_status(obj), roles, age, version])
        }
        _ => json!([name, age]),
    }
}

/// kubectl's `HumanDuration`, to the same breakpoints.
fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 { format!("{m}m") } else { format!("{m}m{}s", s % 60) }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 { format!("{h}h") } else { format!("{h}h{}m", m % 60) }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 { format!("{d}d") } else { format!("{d}d{}h", h % 24) }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn row(resource: Resource, obj: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let mut row = json!({ "cells": cells(resource, obj, now) });
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    row
}

/// A Table of `items` with list metadata.
pub(crate) fn table(resource: Resource, items: &[&Value], include: IncludeObject, list_meta: Value) -> Value {
    let now = jiff::Timestamp::now();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(resource),
        "rows": items.iter().map(|o| row(resource, o, include, now)).collect::<Vec<_>>(),
    })
}

/// The one-row Table a watch event carries in Table mode.
pub(crate) fn watch_row(resource: Resource, obj: &Value, include: IncludeObject) -> Value {
    let rv = meta::str_field(obj, "resourceVersion").unwrap_or("");
    table(resource, &[obj], include, json!({ "resourceVersion": rv }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_kubectl_accept_header() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(Format::negotiate(accept, Some("Object")), Format::Table(IncludeObject::Object));
        assert_eq!(Format::negotiate("application/json", None), Format::Json);
        assert_eq!(Format::negotiate("*/*", None), Format::Json);
    }

    #[test]
    fn pod_row() {
        let pod = json!({
            "metadata": { "name": "p", "creationTimestamp": "2020-01-01T00:00:00Z" },
            "spec": { "containers": [{ "name": "a" }, { "name": "b" }], "nodeName": "n1" },
            "status": { "phase": "Running", "containerStatuses": [
                { "ready": true, "restartCount": 2 }, { "ready": false, "restartCount": 1 }
            ] }
        });
        let t = table(Resource::Pods, &[&pod], IncludeObject::Metadata, json!({}));
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "p");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], 3);
        assert_eq!(cells[6], "n1");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(7));
    }

    #[test]
    fn guidblock_row_has_the_crd_printer_columns() {
        let block = json!({
            "metadata": { "name": "0200000000000100", "creationTimestamp": "2020-01-01T00:00:00Z" },
            "spec": { "start": "02:00:00:00:00:00:01:00" }
        });
        let t = table(Resource::GuidBlocks, &[&block], IncludeObject::None, json!({}));
        let names: Vec<&str> =
            t["columnDefinitions"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["Name", "Start", "Age"]);
        assert_eq!(t["rows"][0]["cells"][0], "0200000000000100");
        assert_eq!(t["rows"][0]["cells"][1], "02:00:00:00:00:00:01:00");
        let bare = json!({ "metadata": { "name": "x" } });
        let t = table(Resource::GuidBlocks, &[&bare], IncludeObject::None, json!({}));
        assert_eq!(t["rows"][0]["cells"][1], Value::Null);
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5 + 120), "5h2m");
        assert_eq!(human_duration(86400 * 3), "3d");
        assert_eq!(human_duration(-5), "<invalid>");
    }
}
