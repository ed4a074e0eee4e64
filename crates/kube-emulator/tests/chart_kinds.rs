//! The kinds only the Helm chart brings (a Service and a NetworkPolicy for the admin port, the
//! Prometheus Operator's ServiceMonitor and PrometheusRule): discovered, created, read, listed,
//! applied server-side and deleted like every other served kind, and a malformed or oversized
//! one refused with a 4xx that names what is wrong.

mod common;

use common::{start, test_config};
use kube_emulator::{EmulatorConfig, Resource};
use serde_json::{Value, json};

async fn raw(client: &kube::Client, method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let request =
        http::Request::builder().method(method).uri(uri).header("Content-Type", content_type).body(body).unwrap();
    match client.request::<Value>(request).await {
        Ok(v) => (200, v),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&*s).unwrap()),
        Err(other) => panic!("transport error {other:?}"),
    }
}

async fn json_request(client: &kube::Client, method: &str, uri: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    raw(client, method, uri, "application/json", body).await
}

/// One object of each kind, as the chart renders them (trimmed).
fn objects() -> Vec<(Resource, &'static str, Value)> {
    vec![
        (
            Resource::Services,
            "/api/v1/namespaces/kube-system/services",
            json!({ "apiVersion": "v1", "kind": "Service",
                    "metadata": { "name": "ib-kubernetes-admin", "namespace": "kube-system", "labels": { "app": "ib-kubernetes" } },
                    "spec": { "type": "ClusterIP", "selector": { "name": "ib-kubernetes" },
                              "ports": [{ "name": "admin", "port": 9090, "targetPort": "admin", "protocol": "TCP" }] } }),
        ),
        (
            Resource::NetworkPolicies,
            "/apis/networking.k8s.io/v1/namespaces/kube-system/networkpolicies",
            json!({ "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": { "name": "ib-kubernetes-admin", "namespace": "kube-system" },
                    "spec": { "podSelector": { "matchLabels": { "name": "ib-kubernetes" } }, "policyTypes": ["Ingress"],
                              "ingress": [{ "ports": [{ "port": 9090, "protocol": "TCP" }] }] } }),
        ),
        (
            Resource::ServiceMonitors,
            "/apis/monitoring.coreos.com/v1/namespaces/kube-system/servicemonitors",
            json!({ "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                    "metadata": { "name": "ib-kubernetes", "namespace": "kube-system" },
                    "spec": { "selector": { "matchLabels": { "app": "ib-kubernetes" } },
                              "endpoints": [{ "port": "admin", "path": "/metrics", "interval": "30s" }] } }),
        ),
        (
            Resource::PrometheusRules,
            "/apis/monitoring.coreos.com/v1/namespaces/kube-system/prometheusrules",
            json!({ "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                    "metadata": { "name": "ib-kubernetes", "namespace": "kube-system" },
                    "spec": { "groups": [{ "name": "ib-kubernetes", "rules": [
                        { "alert": "IbKubernetesNoLeader", "expr": "sum(ib_kubernetes_leader) == 0", "for": "5m" }] }] } }),
        ),
    ]
}

#[tokio::test]
async fn chart_kinds_are_discovered_created_read_listed_applied_and_deleted() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();

    let (_, core) = json_request(&client, "GET", "/api/v1", None).await;
    let names: Vec<&str> = core["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(names.contains(&"services") && names.contains(&"services/status"), "{names:?}");
    for (path, plural) in [
        ("/apis/networking.k8s.io/v1", "networkpolicies"),
        ("/apis/monitoring.coreos.com/v1", "servicemonitors"),
        ("/apis/monitoring.coreos.com/v1", "prometheusrules"),
    ] {
        let (code, list) = json_request(&client, "GET", path, None).await;
        assert_eq!(code, 200, "{path}: {list}");
        assert!(list["resources"].as_array().unwrap().iter().any(|r| r["name"] == plural), "{path}: {list}");
    }
    let (_, groups) = json_request(&client, "GET", "/apis", None).await;
    for group in ["networking.k8s.io", "monitoring.coreos.com"] {
        assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == group), "{groups}");
    }

    for (resource, collection, body) in objects() {
        let name = body["metadata"]["name"].as_str().unwrap();
        let item = format!("{collection}/{name}");
        let (code, created) = json_request(&client, "POST", collection, Some(&body)).await;
        assert_eq!(code, 200, "{collection}: {created}");
        assert_eq!(created["spec"], body["spec"], "{collection}");
        assert_eq!(created["kind"], body["kind"], "{collection}");
        let (code, again) = json_request(&client, "POST", collection, Some(&body)).await;
        assert_eq!((code, again["reason"].as_str()), (409, Some("AlreadyExists")), "{collection}: {again}");

        let (code, got) = json_request(&client, "GET", &item, None).await;
        assert_eq!(code, 200, "{item}: {got}");
        assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"], "{item}");
        let (_, list) = json_request(&client, "GET", collection, None).await;
        assert_eq!(list["kind"], format!("{}List", resource.kind()), "{collection}");
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "{collection}: {list}");
        let root = if resource.group().is_empty() { "api" } else { "apis" };
        let everywhere = format!("/{root}/{}", resource.api_version());
        let (_, all) = json_request(&client, "GET", &format!("{everywhere}/{}", resource.plural()), None).await;
        assert_eq!(all["items"].as_array().unwrap().len(), 1, "{everywhere}: {all}");

        // Server-side apply of a changed label, as `kubectl apply --server-side` sends it.
        let mut applied = body.clone();
        applied["metadata"]["labels"] = json!({ "changed": "yes" });
        let (code, after) = raw(
            &client,
            "PATCH",
            &format!("{item}?fieldManager=kubectl"),
            "application/apply-patch+yaml",
            serde_json::to_vec(&applied).unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{item}: {after}");
        assert_eq!(after["metadata"]["labels"]["changed"], "yes", "{item}: {after}");
        let stored = handle.get(resource, "kube-system", name).expect("stored");
        assert_eq!(stored["metadata"]["labels"]["changed"], "yes", "{item}");
        assert_eq!(stored["spec"], body["spec"], "{item}");

        let (code, deleted) = json_request(&client, "DELETE", &item, None).await;
        assert_eq!(code, 200, "{item}: {deleted}");
        assert!(handle.get(resource, "kube-system", name).is_none(), "{item}: still stored");
        let (code, _) = json_request(&client, "GET", &item, None).await;
        assert_eq!(code, 404, "{item}");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn malformed_chart_objects_are_refused_naming_the_field() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let by_resource = |resource: Resource| objects().into_iter().find(|(r, _, _)| *r == resource).unwrap();

    let mut cases: Vec<(Resource, &str, Value, u16, &str)> = Vec::new();
    let (_, services, service) = by_resource(Resource::Services);
    let mut bad = service.clone();
    bad["spec"]["ports"] = json!("9090");
    cases.push((Resource::Services, services, bad, 400, "spec.ports: expected array, got string"));
    let mut bad = service.clone();
    bad["spec"]["ports"][0]["port"] = json!({ "number": 9090 });
    cases.push((Resource::Services, services, bad, 400, "spec.ports[0].port: expected integer, got object"));
    let (_, policies, policy) = by_resource(Resource::NetworkPolicies);
    let mut bad = policy.clone();
    bad["spec"]["policyTypes"] = json!("Ingress");
    cases.push((Resource::NetworkPolicies, policies, bad, 400, "spec.policyTypes: expected array, got string"));
    let (_, monitors, monitor) = by_resource(Resource::ServiceMonitors);
    let mut bad = monitor.clone();
    bad["spec"] = json!("scrape everything");
    cases.push((Resource::ServiceMonitors, monitors, bad, 422, "spec: Invalid value: \"string\""));
    let mut bad = monitor.clone();
    bad["spec"]["endpoints"] = json!({ "port": "admin" });
    cases.push((Resource::ServiceMonitors, monitors, bad, 422, "spec.endpoints in body must be of type array"));
    let (_, rules, rule) = by_resource(Resource::PrometheusRules);
    let mut bad = rule.clone();
    bad["spec"]["groups"] = json!("IbKubernetesNoLeader");
    cases.push((Resource::PrometheusRules, rules, bad, 422, "spec.groups in body must be of type array"));

    for (resource, collection, body, code, message) in cases {
        let (got, status) = json_request(&client, "POST", collection, Some(&body)).await;
        assert_eq!(got, code, "{collection}: {status}");
        assert!(status["message"].as_str().unwrap().contains(message), "{collection}: {status}");
        assert!(handle.list(resource, None).1.is_empty(), "{collection}: stored anyway");
    }

    // The same checks guard an update of a stored object.
    let (code, _) = json_request(&client, "POST", rules, Some(&rule)).await;
    assert_eq!(code, 200);
    let mut bad = rule.clone();
    bad["spec"]["groups"] = json!(7);
    let (code, status) = json_request(&client, "PUT", &format!("{rules}/ib-kubernetes"), Some(&bad)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.groups", "{status}");
    let stored = handle.get(Resource::PrometheusRules, "kube-system", "ib-kubernetes").unwrap();
    assert_eq!(stored["spec"], rule["spec"]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_oversized_chart_object_is_refused_before_it_is_read() {
    let (emulator, client) = start(EmulatorConfig { max_body_bytes: 64 * 1024, ..test_config() }).await;
    let (_, rules, mut rule) = objects().into_iter().find(|(r, _, _)| *r == Resource::PrometheusRules).unwrap();
    rule["spec"]["groups"][0]["rules"][0]["annotations"] = json!({ "description": "x".repeat(128 * 1024) });
    let (code, status) = json_request(&client, "POST", rules, Some(&rule)).await;
    assert_eq!((code, status["reason"].as_str()), (413, Some("RequestEntityTooLarge")), "{status}");
    assert!(emulator.handle().list(Resource::PrometheusRules, None).1.is_empty());
    emulator.shutdown().await;
}
