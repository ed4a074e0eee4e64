//! Pod and NAD watches, turned into [`Input`]s for the state task as soon as they arrive.
//!
//! kube-runtime's watcher lists (paged), then watches from the list's resourceVersion, re-lists after a
//! 410, and backs off on errors. A list is delivered as `Init`, `InitApply`…, `InitDone`; it is gathered
//! and handed over whole, so that objects missing from a re-list are known to be gone.

use std::fmt::Debug;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc};
use tracing::{info, warn};

use ib_model::{NetworkRef, PodUid, PodView};

use crate::input::Input;
use crate::metrics::{Metrics, ReasonLabels};
use crate::resources::{CompactPod, Nad};

/// How one watched kind becomes inputs.
trait Watched: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    /// What a list gathers per object.
    type Item: Send;
    const NAME: &'static str;
    fn item(self) -> Option<Self::Item>;
    fn applied(item: Self::Item) -> Input;
    fn deleted(self) -> Option<Input>;
    /// Items of a list handed on at once, before the list has ended.
    const PAGE: usize;
    /// A page of a list (`first`: it begins the list; `done`: it ends it), if it is handed on.
    fn listed(items: Vec<Self::Item>, first: bool, done: bool) -> Option<Input>;
}

impl Watched for CompactPod {
    type Item = PodView;
    const NAME: &'static str = "pods";
    fn item(self) -> Option<PodView> {
        let view = self.into_view();
        if view.is_none() {
            warn!("pod without uid, name or resourceVersion skipped");
        }
        view
    }
    fn applied(item: PodView) -> Input {
        Input::PodApplied(item)
    }
    fn deleted(self) -> Option<Input> {
        self.metadata.uid.map(|uid| Input::PodDeleted(PodUid::from(uid)))
    }
    // A page at a time: gathered whole, 100,000 pods' views were the largest thing a start held.
    const PAGE: usize = LIST_PAGE as usize;
    fn listed(views: Vec<PodView>, first: bool, done: bool) -> Option<Input> {
        Some(Input::PodsReset { first, done, views })
    }
}

impl Watched for Nad {
    type Item = (NetworkRef, Option<String>);
    const NAME: &'static str = "network-attachment-definitions";
    fn item(self) -> Option<Self::Item> {
        Some((self.network()?, self.config()))
    }
    fn applied((network, config): Self::Item) -> Input {
        Input::NadApplied(network, config)
    }
    fn deleted(self) -> Option<Input> {
        self.network().map(Input::NadDeleted)
    }
    // Few and small: handed on whole, at the end.
    const PAGE: usize = usize::MAX;
    fn listed(items: Vec<Self::Item>, _first: bool, done: bool) -> Option<Input> {
        done.then_some(Input::NadsReset(items))
    }
}

/// The API of every namespace, or of the one `WATCH_NAMESPACE` names: a controller restricted to a
/// namespace never learns of another namespace's objects, so it can neither configure nor release them.
fn scoped<K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>>(
    client: Client,
    namespace: Option<&str>,
) -> Api<K> {
    match namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    }
}

/// Watches every pod (of `namespace` when given) until the state task goes away.
pub async fn pods(client: Client, namespace: Option<String>, tx: mpsc::Sender<Input>, metrics: Arc<Metrics>) {
    run::<CompactPod>(scoped(client, namespace.as_deref()), tx, metrics).await;
}

/// Watches every NAD (of `namespace` when given) until the state task goes away.
pub async fn nads(client: Client, namespace: Option<String>, tx: mpsc::Sender<Input>, metrics: Arc<Metrics>) {
    run::<Nad>(scoped(client, namespace.as_deref()), tx, metrics).await;
}

async fn run<K: Watched>(api: Api<K>, tx: mpsc::Sender<Input>, metrics: Arc<Metrics>) {
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    // The list in progress: the items not yet handed on, and whether none has been.
    let mut listing: Option<(Vec<K::Item>, bool)> = None;
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                warn!(resource = K::NAME, error = %e, "watch error; retrying");
                metrics.watch_errors.get_or_create(&ReasonLabels { reason: K::NAME }).inc();
                continue;
            }
        };
        let input = match event {
            Event::Init => {
                listing = Some((Vec::new(), true));
                None
            }
            Event::InitApply(object) => match (object.item(), listing.as_mut()) {
                (Some(item), Some((items, first))) => {
                    items.push(item);
                    if items.len() >= K::PAGE {
                        K::listed(std::mem::take(items), std::mem::replace(first, false), false)
                    } else {
                        None
                    }
                }
                _ => None,
            },
            Event::InitDone => listing.take().and_then(|(items, first)| K::listed(items, first, true)),
            Event::Apply(object) => object.item().map(K::applied),
            Event::Delete(object) => object.deleted(),
        };
        if let Some(input) = input
            && tx.send(input).await.is_err()
        {
            info!(resource = K::NAME, "state task gone; watch stops");
            return;
        }
    }
}

/// Pods listed on a list request page: large enough to keep round trips few, small enough not to make
/// the API server build one huge response (the watcher's own page size).
const LIST_PAGE: u32 = 500;

/// Pages of a fresh list read ahead of the state task: the reader waits while this many are read and
/// not yet taken in, so that a state task busy planning does not let the whole list pile up in its
/// queue.
const FRESH_PAGES_AHEAD: usize = 4;

/// Reads every pod afresh (a consistent, paged LIST), for a new leader: the watch cache of a follower
/// may lag behind what the previous leader wrote. Each page's pods (of `namespace` when given) go to the
/// state task as they are read, as [`Input::FreshPodsPage`] of the leadership `term`, so that the whole
/// list is never held at once; returns the list's resourceVersion, which the caller sends as its end.
pub async fn list_pods(
    client: Client,
    namespace: Option<&str>,
    term: u64,
    tx: &mpsc::Sender<Input>,
) -> Result<Option<String>, kube::Error> {
    let api: Api<CompactPod> = scoped(client, namespace);
    send_pages(term, tx, |token| {
        let api = api.clone();
        async move {
            let mut params = kube::api::ListParams::default().limit(LIST_PAGE);
            if let Some(token) = token {
                params = params.continue_token(&token);
            }
            let page = api.list(&params).await?;
            let views = page.items.into_iter().filter_map(CompactPod::into_view).collect();
            let next = page.metadata.continue_.filter(|c| !c.is_empty());
            Ok(Page { views, next, resource_version: page.metadata.resource_version })
        }
    })
    .await
}

/// One page of a list: its pods, the token of the next page, and the list's resourceVersion.
struct Page {
    views: Vec<PodView>,
    next: Option<String>,
    resource_version: Option<String>,
}

/// Reads pages with `read` (given the token of the page to read, `None` for the first) and sends each to
/// the state task, at most [`FRESH_PAGES_AHEAD`] not yet taken in; the last page's resourceVersion.
async fn send_pages<E, F, Fut>(term: u64, tx: &mpsc::Sender<Input>, mut read: F) -> Result<Option<String>, E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page, E>>,
{
    let ahead = Arc::new(Semaphore::new(FRESH_PAGES_AHEAD));
    let mut token = None;
    loop {
        // Never closed: without a permit the page is sent all the same.
        let permit = ahead.clone().acquire_owned().await.ok();
        let page = read(token).await?;
        // The state task gone: nobody waits for the rest, nor for the end.
        if tx.send(Input::FreshPodsPage { term, views: page.views, permit }).await.is_err() {
            return Ok(None);
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(page.resource_version),
        }
    }
}

#[cfg(test)]
mod tests;
