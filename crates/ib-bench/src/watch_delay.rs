//! How long the API server takes to tell a watching client about a new pod: the part of every pod's
//! latency that the floor (PATCH + UFM add) leaves out and no controller can avoid. Measured with a
//! kube-rs watcher, as the controller's own watch is built, against the same emulator.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use kube_emulator::{EmulatorHandle, Resource};
use serde_json::json;

use ib_sim::demo::stats::median_ms;

const NAMESPACE: &str = "bench-watch-probe";
const WARM_UP: usize = 3;
const SAMPLES: usize = 21;
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WatchDelayError {
    #[error("creating the probe pod {name}: {source}")]
    Create { name: String, source: Box<kube_emulator::ApiError> },
    #[error("the watch ended or failed before the probe pod {0} was seen")]
    Ended(String),
    #[error("the probe pod {0} was not seen within {EVENT_TIMEOUT:?}")]
    Timeout(String),
}

/// Median time from a pod's creation to a watcher receiving it; the probe pods are deleted afterwards.
pub async fn measure(client: Client, api: &EmulatorHandle) -> Result<f64, WatchDelayError> {
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let mut stream = watcher::watcher(pods, watcher::Config::default()).boxed();
    // The initial (empty) list first, so that every later event is a new pod.
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(Event::InitDone))) => break,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return Err(WatchDelayError::Ended("(initial list)".into())),
            Err(_) => return Err(WatchDelayError::Timeout("(initial list)".into())),
        }
    }
    let mut delays = Vec::with_capacity(SAMPLES);
    for round in 0..WARM_UP + SAMPLES {
        let name = format!("watch-probe-{round}");
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"containers": [{"name": "probe", "image": "registry.example/probe:1"}]}
        });
        let created = Instant::now();
        api.create(Resource::Pods, pod)
            .map_err(|e| WatchDelayError::Create { name: name.clone(), source: Box::new(e) })?;
        loop {
            match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
                Ok(Some(Ok(Event::Apply(p)))) if p.metadata.name.as_deref() == Some(name.as_str()) => break,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return Err(WatchDelayError::Ended(name)),
                Err(_) => return Err(WatchDelayError::Timeout(name)),
            }
        }
        if round >= WARM_UP {
            delays.push(created.elapsed());
        }
    }
    for round in 0..WARM_UP + SAMPLES {
        let _ = api.delete_with_grace(Resource::Pods, NAMESPACE, &format!("watch-probe-{round}"), Some(0));
    }
    Ok(median_ms(&delays))
}
