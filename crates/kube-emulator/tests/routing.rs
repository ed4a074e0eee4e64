//! Discovery as kube's own discovery client reads it, a kubeconfig written by the emulator, and
//! `Status` answers for unknown paths, wrong methods and oversized bodies.

mod common;

use common::{start, test_config};
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Discovery};
use kube_emulator::EmulatorConfig;
use serde_json::Value;

async fn raw(client: &kube::Client, method: &str, uri: &str, body: Vec<u8>) -> (u16, Value) {
    let request =
        http::Request::builder().method(method).uri(uri).header("Content-Type", "application/json").body(body).unwrap();
    match client.request::<Value>(request).await {
        Ok(v) => (200, v),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&*s).unwrap()),
        Err(other) => panic!("transport error {other:?}"),
    }
}

#[tokio::test]
async fn discovery_finds_every_resource() {
    let (emulator, client) = start(test_config()).await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!((version.major.as_str(), version.minor.as_str()), ("1", "33"));
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, _caps) in group.recommended_resources() {
            found.push(format!("{}/{}", resource.api_version, resource.plural));
        }
    }
    found.sort();
    assert_eq!(
        found,
        vec![
            "admissionregistration.k8s.io/v1/validatingadmissionpolicies",
            "admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
            "apiextensions.k8s.io/v1/customresourcedefinitions",
            "apps/v1/deployments",
            "coordination.k8s.io/v1/leases",
            "events.k8s.io/v1/events",
            "ib-kubernetes.mellanox.com/v1alpha1/guidblocks",
            "k8s.cni.cncf.io/v1/network-attachment-definitions",
            "monitoring.coreos.com/v1/prometheusrules",
            "monitoring.coreos.com/v1/servicemonitors",
            "networking.k8s.io/v1/networkpolicies",
            "rbac.authorization.k8s.io/v1/clusterrolebindings",
            "rbac.authorization.k8s.io/v1/clusterroles",
            "rbac.authorization.k8s.io/v1/rolebindings",
            "rbac.authorization.k8s.io/v1/roles",
            "v1/configmaps",
            "v1/events",
            "v1/nodes",
            "v1/pods",
            "v1/secrets",
            "v1/serviceaccounts",
            "v1/services",
        ]
    );
    let rbac = discovery.get("rbac.authorization.k8s.io").unwrap();
    let scopes: Vec<(String, bool)> = rbac
        .recommended_resources()
        .into_iter()
        .map(|(r, caps)| (r.plural, caps.scope == kube::discovery::Scope::Namespaced))
        .collect();
    assert!(scopes.contains(&("clusterroles".to_string(), false)), "{scopes:?}");
    assert!(scopes.contains(&("roles".to_string(), true)), "{scopes:?}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn cluster_scoped_objects_live_outside_namespaces() {
    let (emulator, client) = start(test_config()).await;
    let base = "/apis/rbac.authorization.k8s.io/v1";
    let role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": { "name": "reader", "namespace": "ignored" },
        "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] }],
    });
    let (code, created) =
        raw(&client, "POST", &format!("{base}/clusterroles"), serde_json::to_vec(&role).unwrap()).await;
    assert_eq!(code, 200, "{created}");
    assert!(created["metadata"].get("namespace").is_none(), "{created}");
    let (code, got) = raw(&client, "GET", &format!("{base}/clusterroles/reader"), Vec::new()).await;
    assert_eq!((code, &got["rules"]), (200, &role["rules"]));
    assert!(emulator.handle().get(kube_emulator::Resource::ClusterRoles, "", "reader").is_some());
    // No namespaced path for a cluster-scoped type, and no cluster path for a namespaced one.
    let (code, _) = raw(&client, "GET", &format!("{base}/namespaces/default/clusterroles"), Vec::new()).await;
    assert_eq!(code, 404);
    let (code, _) = raw(&client, "GET", &format!("{base}/roles/reader"), Vec::new()).await;
    assert_eq!(code, 404);
    let (code, list) = raw(&client, "GET", &format!("{base}/clusterroles"), Vec::new()).await;
    assert_eq!((code, list["items"].as_array().map(Vec::len)), (200, Some(1)));
    let (code, _) = raw(&client, "DELETE", &format!("{base}/clusterroles/reader"), Vec::new()).await;
    assert_eq!(code, 200);
    let (code, _) = raw(&client, "GET", &format!("{base}/clusterroles/reader"), Vec::new()).await;
    assert_eq!(code, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn kubeconfig_drives_a_kube_client() {
    let (emulator, _client) = start(test_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    emulator.write_kubeconfig(&path).unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    assert!(pods.list(&Default::default()).await.unwrap().items.is_empty());
    let logged = emulator.handle().requests();
    assert_eq!(logged.last().map(|r| r.path.as_str()), Some("/api/v1/namespaces/default/pods"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn errors_for_paths_methods_and_bodies() {
    let config = EmulatorConfig { max_body_bytes: 1024, ..test_config() };
    let (emulator, client) = start(config).await;
    let (code, status) = raw(&client, "GET", "/api/v1/namespaces/default/widgets", vec![]).await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, _) =
        raw(&client, "GET", "/apis/k8s.cni.cncf.io/v1/namespaces/d/network-attachment-definitions/x/status", vec![])
            .await;
    assert_eq!(code, 404, "NADs have no status subresource");
    let (code, status) = raw(&client, "POST", "/api/v1/pods", b"{}".to_vec()).await;
    assert_eq!((code, status["reason"].as_str()), (405, Some("MethodNotAllowed")));
    let (code, _) = raw(&client, "DELETE", "/api/v1/namespaces/default/pods/p/status", vec![]).await;
    assert_eq!(code, 405);
    let (code, status) = raw(&client, "POST", "/api/v1/namespaces/default/pods", vec![b' '; 4096]).await;
    assert_eq!((code, status["reason"].as_str()), (413, Some("RequestEntityTooLarge")));
    let (code, status) =
        raw(&client, "POST", "/api/v1/namespaces/default/pods", b"{\"kind\":\"Lease\"}".to_vec()).await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, status) = raw(&client, "POST", "/api/v1/namespaces/default/pods", b"{\"metadata\":{}}".to_vec()).await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    let (code, status) = raw(&client, "GET", "/api/v1/pods?limit=ten", vec![]).await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, groups) = raw(&client, "GET", "/apis", vec![]).await;
    assert_eq!((code, groups["kind"].as_str()), (200, Some("APIGroupList")));
    emulator.shutdown().await;
}

/// Boolean query parameters take every form Go's ParseBool does: the Python client sends
/// `watch=True` and `allowWatchBookmarks=True`, and must get a watch, not a list.
#[tokio::test]
async fn capitalised_booleans_start_a_watch() {
    let (emulator, client) = start(test_config()).await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), "default");
    pods.create(&Default::default(), &common::pod("default", "p")).await.unwrap();
    for flag in ["True", "TRUE", "t", "1", "true"] {
        let request = http::Request::get(format!(
            "/api/v1/namespaces/default/pods?watch={flag}&allowWatchBookmarks={flag}&timeoutSeconds=1"
        ))
        .body(Vec::new())
        .unwrap();
        let text = client.request_text(request).await.unwrap();
        assert!(text.starts_with(r#"{"type":"ADDED""#), "watch={flag}: {text}");
    }
    let request = http::Request::get("/api/v1/namespaces/default/pods?watch=False").body(Vec::new()).unwrap();
    assert!(client.request_text(request).await.unwrap().contains(r#""kind":"PodList""#));
    emulator.shutdown().await;
}
