//! Fault injection as a kube-rs client sees it: retried 429s with Retry-After, surfaced 500s,
//! hung requests released on demand, and a request log recording every attempt.

mod common;

use common::{api_error, pod, start, test_config, wait_for, within};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube_emulator::{Fault, FaultRule};
use std::time::Duration;

#[tokio::test]
async fn too_many_requests_is_retried_by_kube() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.inject_fault(
        FaultRule::new(Fault::TooManyRequests { retry_after_seconds: 1 })
            .method("POST")
            .path("/api/v1/namespaces/*/pods"),
    );
    let api: Api<Pod> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &pod("default", "p")).await.unwrap();
    let posts: Vec<_> = handle.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.iter().map(|r| r.status).collect::<Vec<_>>(), vec![Some(429), Some(201)]);
    assert!(posts[0].body.contains("\"name\":\"p\""));
    assert_eq!(posts[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(handle.faults_remaining(), 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn internal_errors_reach_the_caller_and_change_nothing() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let api: Api<Pod> = Api::namespaced(client, "default");
    handle.inject_fault(FaultRule::new(Fault::InternalError).method("POST").times(1));
    let status = api_error(api.create(&PostParams::default(), &pod("default", "p")).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (500, "InternalError"));
    assert_eq!(handle.resource_version(), 0);

    // kube retries 503 and 504 (up to 15 times, with exponential backoff): a short burst
    // is invisible to the caller, and shows in the request log.
    handle.clear_requests();
    handle.inject_fault(FaultRule::new(Fault::ServiceUnavailable).method("GET").times(1));
    handle.inject_fault(FaultRule::new(Fault::GatewayTimeout).method("GET").times(1));
    assert_eq!(api_error(api.get("p").await.unwrap_err()).code, 404);
    let codes: Vec<_> = handle.requests().iter().map(|r| r.status).collect();
    assert_eq!(codes, vec![Some(503), Some(504), Some(404)]);

    // Without retries the fault surfaces with its exact reason.
    let mut config = kube::Config::new(emulator.url().parse().unwrap());
    config.default_retry = false;
    let no_retry: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    handle.inject_fault(FaultRule::new(Fault::ServiceUnavailable).method("GET"));
    let status = api_error(no_retry.get("p").await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (503, "ServiceUnavailable"));
    handle.inject_fault(FaultRule::new(Fault::GatewayTimeout).method("GET"));
    let status = api_error(no_retry.get("p").await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (504, "Timeout"));
    handle.clear_faults();
    assert_eq!(api_error(api.get("p").await.unwrap_err()).code, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn hung_request_completes_after_release() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    handle.inject_fault(FaultRule::new(Fault::Hang { max: Duration::from_secs(120) }).method("POST"));
    handle.inject_fault(FaultRule::new(Fault::Latency(Duration::from_millis(50))).method("GET"));
    let api: Api<Pod> = Api::namespaced(client, "default");
    let creating = tokio::spawn({
        let api = api.clone();
        async move { api.create(&PostParams::default(), &pod("default", "p")).await }
    });
    wait_for("the POST to hang", || async { (handle.hung_requests() == 1).then_some(()) }).await;
    assert!(!creating.is_finished());
    assert_eq!(api_error(api.get("p").await.unwrap_err()).code, 404, "not created while hung");
    handle.release_hung();
    let created = within("the POST to finish", creating).await.unwrap().unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("p"));
    handle.clear_requests();
    assert!(handle.requests().is_empty());
    emulator.shutdown().await;
}
