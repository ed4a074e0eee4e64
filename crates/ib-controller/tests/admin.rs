//! The admin endpoints: health, readiness after the initial sync, and metrics that describe the work.

mod common;

use common::{Cluster, IB5, wait_for};

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.expect("admin server answers");
    (response.status().as_u16(), response.text().await.expect("body"))
}

/// `name{labels} value` → value, for one exact series line.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let controller = cluster.controller("a", &[]).await;
    let base = format!("http://{}", controller.admin_address());
    assert_eq!(get(format!("{base}/healthz")).await.0, 200);
    let mut ready = controller.ready();
    tokio::time::timeout(common::DEADLINE, ready.wait_for(|r| *r)).await.unwrap().unwrap();
    assert_eq!(get(format!("{base}/readyz")).await, (200, "ready".to_owned()));

    cluster.pod("default", "a", "ib, ib");
    cluster.pod("default", "waiting", "nowhere");
    cluster.wait_configured("default", "a", 2).await;
    // Gauges refresh on a timer: poll until the waiting pod shows.
    let started = std::time::Instant::now();
    let metrics = loop {
        let text = get(format!("{base}/metrics")).await.1;
        if value(&text, "ib_kubernetes_pending_pods{reason=\"NetworkNotFound\"}") == Some(1.0) {
            break text;
        }
        assert!(started.elapsed() < common::DEADLINE, "metrics never showed the waiting pod: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(value(&metrics, "ib_kubernetes_pods_configured_total"), Some(1.0), "{metrics}");
    assert_eq!(value(&metrics, "ib_kubernetes_guid_pool_used"), Some(2.0));
    assert_eq!(value(&metrics, "ib_kubernetes_guid_pool_capacity"), Some(2f64.powi(56)));
    assert_eq!(value(&metrics, "ib_kubernetes_leader"), Some(1.0));
    assert_eq!(
        value(&metrics, "ib_kubernetes_sm_requests_total{operation=\"add\",outcome=\"success\",error=\"none\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&metrics, "ib_kubernetes_sm_requests_total{operation=\"list\",outcome=\"success\",error=\"none\"}"),
        Some(1.0)
    );
    assert_eq!(value(&metrics, "ib_kubernetes_sm_request_guids_sum{operation=\"add\"}"), Some(2.0));
    assert_eq!(value(&metrics, "ib_kubernetes_pod_configure_duration_seconds_count"), Some(1.0));
    assert_eq!(value(&metrics, "ib_kubernetes_pod_patches_total{outcome=\"applied\",error=\"none\"}"), Some(1.0));
    // The configured pod gets a Normal event naming its GUIDs.
    let events = wait_for("the Configured event", || {
        let e = cluster.events_for("a");
        e.iter().any(|(r, _)| r == "Configured").then_some(e)
    })
    .await;
    let note = &events.iter().find(|(r, _)| r == "Configured").unwrap().1;
    assert!(note.contains("02:00:00:00:00:00:00:00") && note.contains("pkey 0x5"), "{note}");
    controller.shutdown().await;
}

/// Every failed request is counted with the kind of its error, not only as a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_requests_are_counted_by_error_kind() {
    use kube_emulator::{Fault, FaultRule as ApiFault};
    use ufm_emulator::{FaultRule as UfmFault, Method};

    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let controller = cluster.controller("a", &[]).await;
    let base = format!("http://{}", controller.admin_address());
    cluster.fabric().inject(
        UfmFault::respond(Some(Method::POST), "/ufmRest/resources/pkeys*", 500, "{\"error\":\"boom\"}").times(1),
    );
    cluster.api().inject_fault(ApiFault::new(Fault::InternalError).method("PATCH").path("/api/v1/*").times(1));
    cluster.api().inject_fault(
        ApiFault::new(Fault::InternalError).method("PATCH").path("/apis/ib-kubernetes.mellanox.com/*").times(1),
    );
    cluster.pod("default", "a", "ib");
    cluster.wait_configured("default", "a", 1).await;
    let metrics = get(format!("{base}/metrics")).await.1;
    // Through the exec plugin, UFM's answer reaches the controller as the plugin's failure.
    let sm_error = if common::exec_plugin().is_some() { "plugin" } else { "status" };
    let sm_series =
        format!("ib_kubernetes_sm_requests_total{{operation=\"add\",outcome=\"unknown\",error=\"{sm_error}\"}}");
    for series in [
        sm_series.as_str(),
        "ib_kubernetes_pod_patches_total{outcome=\"failed\",error=\"server_error\"}",
        "ib_kubernetes_ownership_record_writes_total{outcome=\"failure\",error=\"server_error\"}",
    ] {
        assert_eq!(value(&metrics, series), Some(1.0), "{series} in {metrics}");
    }
    controller.shutdown().await;
}
