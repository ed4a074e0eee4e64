//! `ib-kubernetes status`: reads pods, NetworkAttachmentDefinitions, the GuidBlock ownership records,
//! the controller's Events and its ConfigMap, and reports the pool's use, each PKey's members and the
//! pods waiting (the report itself is computed in [`report`]).
//!
//! It only reads, with the caller's kubeconfig; every request has a deadline, and a failure names
//! the object it was reading.

pub mod report;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::de::DeserializeOwned;

use ib_controller::records as guidblocks;
use ib_model::{Guid, GuidRange};

use report::{BlockInput, EventInput, Inputs, NETWORKS_ANNOTATION, NadInput, PodInput, RangeSource, Report, clean};

/// Objects listed per request: bounded answers on a large cluster.
const PAGE: u32 = 500;
/// The component name the controller's Events carry.
const CONTROLLER: &str = "ib-kubernetes";

#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub kubeconfig: Option<PathBuf>,
    /// Both ends, or neither (then the ConfigMap is read).
    pub pool_start: Option<String>,
    pub pool_end: Option<String>,
    pub config_namespace: String,
    pub config_map: String,
    /// Deadline of each request.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("reading the kubeconfig {path}: {source}")]
    Kubeconfig { path: PathBuf, source: kube::config::KubeconfigError },
    #[error("loading the Kubernetes client configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Config(kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(kube::Error),
    #[error("{what}: {source}")]
    Api { what: String, source: kube::Error },
    #[error("{what}: no answer within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("{field} {value:?} is not a GUID: {reason}")]
    Guid { field: &'static str, value: String, reason: String },
    #[error("{field}: give both --pool-start and --pool-end, or neither")]
    HalfRange { field: &'static str },
    #[error("the pool range {start} .. {end} is not valid: {reason}")]
    Range { start: String, end: String, reason: String },
}

/// Reads the cluster and computes the report.
pub async fn status(options: &StatusOptions) -> Result<Report, StatusError> {
    let flag_range = flag_range(options)?;
    let client = client(options).await?;
    let (range, range_note) = match flag_range {
        Some(range) => (Some((range, RangeSource::Flags)), None),
        None => match config_map_range(&client, options).await? {
            Ok(range) => (Some((range, RangeSource::ConfigMap)), None),
            Err(note) => (None, Some(note)),
        },
    };
    let pods: Vec<Pod> = list_all(Api::all(client.clone()), "listing pods", options.timeout).await?;
    let nads = list_all(
        Api::<DynamicObject>::all_with(client.clone(), &nad_resource()),
        "listing NetworkAttachmentDefinitions",
        options.timeout,
    )
    .await?;
    let blocks = list_all(
        Api::<DynamicObject>::all_with(client.clone(), &guidblock_resource()),
        "listing guidblocks (the ownership records)",
        options.timeout,
    )
    .await?;
    let events: Vec<Event> = list_all(Api::all(client), "listing events.k8s.io Events", options.timeout).await?;
    let inputs = Inputs {
        pods: pods.into_iter().map(pod_input).collect(),
        nads: nads.into_iter().map(nad_input).collect(),
        blocks: blocks
            .into_iter()
            .map(|b| BlockInput {
                name: b.metadata.name.unwrap_or_default(),
                allocations: b.data.get("spec").and_then(|s| s.get("allocations")).cloned(),
            })
            .collect(),
        events: events.into_iter().filter_map(event_input).collect(),
        range,
        range_note,
    };
    Ok(report::compute(&inputs))
}

fn flag_range(options: &StatusOptions) -> Result<Option<GuidRange>, StatusError> {
    match (&options.pool_start, &options.pool_end) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(StatusError::HalfRange { field: "--pool-start" }),
        (None, Some(_)) => Err(StatusError::HalfRange { field: "--pool-end" }),
        (Some(start), Some(end)) => range("--pool-start", start, "--pool-end", end).map(Some),
    }
}

fn range(start_field: &'static str, start: &str, end_field: &'static str, end: &str) -> Result<GuidRange, StatusError> {
    let guid = |field, text: &str| {
        Guid::parse(text).map_err(|e| StatusError::Guid { field, value: clean(text), reason: e.to_string() })
    };
    GuidRange::new(guid(start_field, start)?, guid(end_field, end)?).map_err(|e| StatusError::Range {
        start: clean(start),
        end: clean(end),
        reason: e.to_string(),
    })
}

async fn client(options: &StatusOptions) -> Result<Client, StatusError> {
    let config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| StatusError::Kubeconfig { path: path.clone(), source })?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| StatusError::Kubeconfig { path: path.clone(), source })?
        }
        None => Config::infer().await.map_err(StatusError::Config)?,
    };
    let mut config = config;
    config.connect_timeout = Some(options.timeout);
    config.read_timeout = Some(options.timeout);
    Client::try_from(config).map_err(StatusError::Client)
}

/// The range from the controller's ConfigMap, or why it is not known (an absent ConfigMap or key is
/// not an error: the report is still useful without a range). Keys left out take the controller's
/// defaults, as the controller itself does.
async fn config_map_range(client: &Client, options: &StatusOptions) -> Result<Result<GuidRange, String>, StatusError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &options.config_namespace);
    let what = format!("reading ConfigMap {}/{}", options.config_namespace, options.config_map);
    let found = match tokio::time::timeout(options.timeout, api.get_opt(&options.config_map)).await {
        Err(_) => return Err(StatusError::Timeout { what, timeout: options.timeout }),
        Ok(Err(kube::Error::Api(status))) if status.code == 403 => {
            return Ok(Err(format!(
                "not allowed to read ConfigMap {}/{}",
                options.config_namespace, options.config_map
            )));
        }
        Ok(Err(source)) => return Err(StatusError::Api { what, source }),
        Ok(Ok(found)) => found,
    };
    let Some(config_map) = found else {
        return Ok(Err(format!(
            "no ConfigMap {}/{}; give --pool-start and --pool-end",
            options.config_namespace, options.config_map
        )));
    };
    let data = config_map.data.unwrap_or_default();
    let start = data.get("GUID_POOL_RANGE_START").map_or(ib_controller::config::DEFAULT_RANGE_START, String::as_str);
    let end = data.get("GUID_POOL_RANGE_END").map_or(ib_controller::config::DEFAULT_RANGE_END, String::as_str);
    Ok(Ok(range("GUID_POOL_RANGE_START", start, "GUID_POOL_RANGE_END", end)?))
}

/// Every object, a page at a time, each page with its own deadline.
async fn list_all<K>(api: Api<K>, what: &str, timeout: Duration) -> Result<Vec<K>, StatusError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = match tokio::time::timeout(timeout, api.list(&params)).await {
            Err(_) => return Err(StatusError::Timeout { what: what.to_owned(), timeout }),
            Ok(Err(source)) => return Err(StatusError::Api { what: what.to_owned(), source }),
            Ok(Ok(page)) => page,
        };
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

fn nad_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

fn guidblock_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(guidblocks::GROUP, guidblocks::VERSION, guidblocks::KIND),
        guidblocks::PLURAL,
    )
}

fn pod_input(pod: Pod) -> PodInput {
    let metadata = pod.metadata;
    PodInput {
        namespace: metadata.namespace.unwrap_or_default(),
        name: metadata.name.unwrap_or_default(),
        uid: metadata.uid.unwrap_or_default(),
        phase: pod.status.and_then(|s| s.phase),
        node: pod.spec.and_then(|s| s.node_name),
        deleting: metadata.deletion_timestamp.is_some(),
        networks: metadata.annotations.and_then(|mut a| a.remove(NETWORKS_ANNOTATION)),
    }
}

fn nad_input(nad: DynamicObject) -> NadInput {
    NadInput {
        namespace: nad.metadata.namespace.unwrap_or_default(),
        name: nad.metadata.name.unwrap_or_default(),
        config: nad.data.get("spec").and_then(|s| s.get("config")).and_then(|c| c.as_str()).map(str::to_owned),
    }
}

/// Only the controller's Events about pods.
fn event_input(event: Event) -> Option<EventInput> {
    if event.reporting_controller.as_deref() != Some(CONTROLLER) {
        return None;
    }
    let regarding = event.regarding?;
    if regarding.kind.as_deref() != Some("Pod") {
        return None;
    }
    let time = event
        .series
        .map(|s| s.last_observed_time.0)
        .or(event.event_time.map(|t| t.0))
        .or(event.deprecated_last_timestamp.map(|t| t.0))
        .or(event.metadata.creation_timestamp.map(|t| t.0));
    Some(EventInput {
        namespace: regarding.namespace.or(event.metadata.namespace).unwrap_or_default(),
        pod: regarding.name.unwrap_or_default(),
        pod_uid: regarding.uid,
        warning: event.type_.as_deref() == Some("Warning"),
        reason: event.reason.unwrap_or_default(),
        note: event.note,
        time,
    })
}
