//! Pod and NAD watches, turned into [`Input`]s for the state task as soon as they arrive.
//!
//! kube-runtime's watcher lists (paged), then watches from the list's resourceVersion, re-lists after a
//! 410, and backs off on errors. A list is delivered as `Init`, `InitApply`…, `InitDone`; it is gathered
//! and handed over whole, so that objects missing from a re-list are known to be gone.

use futures::{StreamExt, TryStreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tracing::{info, warn};

use ib_model::{NetworkRef, PodUid};

use crate::metrics::{Metrics, ReasonLabels};
use crate::resources::{CompactPod, Nad};
use crate::state_task::Input;

/// Watches every pod until the state task goes away.
pub async fn pods(client: Client, tx: mpsc::Sender<Input>, metrics: std::sync::Arc<Metrics>) {
    let api: Api<CompactPod> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut listing: Option<Vec<ib_model::PodView>> = None;
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "pod watch error; retrying");
                metrics.watch_errors.get_or_create(&ReasonLabels { reason: "pods" }).inc();
                continue;
            }
        };
        let input = match event {
            Event::Init => {
                listing = Some(Vec::new());
                None
            }
            Event::InitApply(pod) => {
                match (pod.into_view(), listing.as_mut()) {
                    (Some(view), Some(list)) => list.push(view),
                    (None, _) => warn!("pod without uid, name or resourceVersion skipped"),
                    (Some(_), None) => {}
                }
                None
            }
            Event::InitDone => listing.take().map(Input::PodsReset),
            Event::Apply(pod) => pod.into_view().map(Input::PodApplied),
            Event::Delete(pod) => pod.metadata.uid.map(|uid| Input::PodDeleted(PodUid(uid))),
        };
        if let Some(input) = input
            && tx.send(input).await.is_err()
        {
            info!("state task gone; pod watch stops");
            return;
        }
    }
}

/// Watches every NAD until the state task goes away.
pub async fn nads(client: Client, tx: mpsc::Sender<Input>, metrics: std::sync::Arc<Metrics>) {
    let api: Api<Nad> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut listing: Option<Vec<(NetworkRef, Option<String>)>> = None;
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "NAD watch error; retrying");
                metrics.watch_errors.get_or_create(&ReasonLabels { reason: "network-attachment-definitions" }).inc();
                continue;
            }
        };
        let input = match event {
            Event::Init => {
                listing = Some(Vec::new());
                None
            }
            Event::InitApply(nad) => {
                if let (Some(network), Some(list)) = (nad.network(), listing.as_mut()) {
                    list.push((network, nad.config()));
                }
                None
            }
            Event::InitDone => listing.take().map(Input::NadsReset),
            Event::Apply(nad) => nad.network().map(|n| Input::NadApplied(n, nad.config())),
            Event::Delete(nad) => nad.network().map(Input::NadDeleted),
        };
        if let Some(input) = input
            && tx.send(input).await.is_err()
        {
            return;
        }
    }
}
