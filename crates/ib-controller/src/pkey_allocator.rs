//! Partitions allocated one per network (`allocate_pkey: true`): the task that draws keys from
//! `PKEY_ALLOCATION_RANGE`, keeps the ledger, tells the state task, and shows each NAD its key.
//!
//! The ledger is a ConfigMap in the controller's own namespace, where NAD authors cannot write, and is
//! written only by the leader, through the same lease gate as every other write, with the
//! resourceVersion it read (a concurrent writer makes the write fail instead of losing an entry). A
//! new leader reads it before it publishes anything. What the NAD shows (an annotation with the key and
//! a finalizer) is only for people and for holding the NAD while pods use its key: it is written from
//! the ledger and never read back as an allocation.
//!
//! Order of writes: an allocation is stored in the ledger, then published to the state task, then
//! shown on the NAD; a release is removed from the ledger, then published, then the finalizer goes.
//! A key is given back only when its NAD is gone, being deleted, re-created under a new UID or no
//! longer asks, and no ownership record (`GuidBlock`) names the key, twice: once found unused it is
//! withdrawn from the state task (no new pod is placed in it), and given back only if, [`SETTLE`]
//! later, still no record names it and the state task, asked after the withdrawal reached it, names it
//! in no claim, record write or subnet-manager change (`State::pkeys_claimed`). A pod planned into the
//! key just before the withdrawal holds a claim from the moment it is planned, however long its record
//! write takes, so the key cannot go to another network while that pod may still join it.
//!
//! The partition itself is created in the subnet manager by the first member's add, as for a key a
//! NAD names; no empty partition is created ahead of its members.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{EventType, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, info_span, warn};

use ib_model::nad::{NadKind, classify};
use ib_model::pkey_allocation::{AllocationLedger, Decision, Holder, NadState, World, decide};
use ib_model::{NetworkRef, PKey};
use ib_sm::{SmError, SubnetManager};

use crate::call::{CallError, bounded};
use crate::input::Input;
use crate::leader::LeaseGate;
use crate::records::{self, RecordsError};
use crate::resources::Nad;

/// The ConfigMap holding the ledger, in the controller's namespace.
pub const LEDGER_NAME: &str = "ib-kubernetes-pkey-allocations";
/// The annotation showing a NAD its allocated key (`0x1001`). Written by the controller only.
pub const PKEY_ANNOTATION: &str = "ib-kubernetes.mellanox.com/pkey";
/// The finalizer holding a NAD while its key may still be in use.
pub const FINALIZER: &str = "ib-kubernetes.mellanox.com/pkey-allocation";
/// How often the allocator looks again without a NAD change: pods ending (their records going)
/// let a key be given back, and a follower re-reads the ledger.
const RECHECK: Duration = Duration::from_secs(2);
/// How long a withdrawn key waits before it is read unused again and given back: longer than the
/// state task takes to act on the withdrawal and to send a record write it had already planned.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Events and NAD patches sent at once.
const CONCURRENCY: usize = 4;
/// Range-full Events sent per pass at most.
const EVENTS_PER_PASS: usize = 64;
/// Upper bound on sending one Event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a pass of the allocator did not finish; it is tried again at the next change or recheck.
#[derive(Debug, thiserror::Error)]
pub enum AllocatorError {
    /// The ledger ConfigMap could not be read or written.
    #[error("{operation} configmap {namespace}/{LEDGER_NAME}: {source}")]
    Ledger {
        /// `get`, `create` or `replace`.
        operation: &'static str,
        /// The controller's namespace.
        namespace: String,
        /// The API error, or the timeout.
        source: CallError<kube::Error>,
    },
    /// A NAD could not be patched.
    #[error("patch network-attachment-definition {network}: {source}")]
    Nad {
        /// The NAD.
        network: NetworkRef,
        /// The API error, or the timeout.
        source: CallError<kube::Error>,
    },
    /// The ownership records could not be read, so no key can be known unused.
    #[error("reading the ownership records: {0}")]
    Records(#[from] RecordsError),
    /// The subnet manager's partitions could not be read, so no key can be known free.
    #[error("reading the subnet manager's partitions: {0}")]
    SubnetManager(CallError<SmError>),
    /// The lease is not held (or not for long enough): nothing is written.
    #[error("not the leader")]
    NotLeader,
}

/// What the allocator is told at start.
#[derive(Clone, Debug)]
pub struct AllocatorSettings {
    /// `PKEY_ALLOCATION_RANGE`.
    pub range: ib_model::pkey::PKeyRange,
    /// The controller's namespace (`POD_NAMESPACE`), where the ledger lives.
    pub namespace: String,
    /// `WATCH_NAMESPACE`: only NADs of this namespace are served when set.
    pub watch_namespace: Option<String>,
    /// Upper bound on one API call.
    pub api_timeout: Duration,
    /// The reporting instance on Events (the replica's identity).
    pub instance: String,
}

/// The ledger as last read or written, with the version a write must match.
struct Stored {
    ledger: AllocationLedger,
    resource_version: Option<String>,
}

/// The allocator task's state.
pub struct Allocator {
    client: Client,
    sm: Arc<dyn SubnetManager>,
    gate: LeaseGate,
    tx: mpsc::Sender<Input>,
    settings: AllocatorSettings,
    /// Every NAD, as last seen by the watch.
    nads: HashMap<NetworkRef, Nad>,
    synced: bool,
    stored: Option<Stored>,
    published: Option<HashMap<NetworkRef, PKey>>,
    /// NAD UIDs already told the range is full: told once, not at every pass.
    told_full: HashSet<String>,
    /// Keys withdrawn from the state task on the way to being given back, and since when.
    withdrawn: HashMap<PKey, Instant>,
    /// When a follower last read the ledger.
    followed: Option<Instant>,
}

impl Allocator {
    /// An allocator that writes only while `gate` allows it and publishes on `tx`.
    pub fn new(
        client: Client,
        sm: Arc<dyn SubnetManager>,
        gate: LeaseGate,
        tx: mpsc::Sender<Input>,
        settings: AllocatorSettings,
    ) -> Self {
        Allocator {
            client,
            sm,
            gate,
            tx,
            settings,
            nads: HashMap::new(),
            synced: false,
            stored: None,
            published: None,
            told_full: HashSet::new(),
            withdrawn: HashMap::new(),
            followed: None,
        }
    }

    /// Watches NADs and follows `leading` until the state task goes away.
    pub async fn run(mut self, mut leading: watch::Receiver<bool>) {
        let api: Api<Nad> = match &self.settings.watch_namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut listing: Option<HashMap<NetworkRef, Nad>> = None;
        let mut tick = tokio::time::interval(RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_leading = false;
        loop {
            tokio::select! {
                event = stream.try_next() => match event {
                    Ok(Some(event)) => {
                        self.watched(event, &mut listing);
                        // A burst of NAD changes makes one pass, not one per change.
                        while let Some(Ok(Some(event))) = stream.try_next().now_or_never() {
                            self.watched(event, &mut listing);
                        }
                    }
                    Ok(None) => return,
                    Err(e) => warn!(error = %e, "network-attachment-definition watch error (allocator); retrying"),
                },
                changed = leading.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            let now_leading = *leading.borrow_and_update();
            if now_leading != was_leading {
                // A new leadership reads the ledger afresh before it publishes or writes anything.
                self.stored = None;
                self.published = None;
                self.told_full.clear();
                self.withdrawn.clear();
                self.followed = None;
                was_leading = now_leading;
            }
            if !self.synced {
                continue;
            }
            let result = if now_leading { self.lead().await } else { self.follow().await };
            match result {
                Ok(()) => {}
                Err(AllocatorError::NotLeader) => debug!("allocator: lease not held; nothing written"),
                Err(e) => warn!(error = %e, "partition allocation pass failed; retrying"),
            }
            if self.tx.is_closed() {
                return;
            }
        }
    }

    fn watched(&mut self, event: WatchEvent<Nad>, listing: &mut Option<HashMap<NetworkRef, Nad>>) {
        match event {
            WatchEvent::Init => *listing = Some(HashMap::new()),
            WatchEvent::InitApply(nad) => {
                if let (Some(network), Some(list)) = (nad.network(), listing.as_mut()) {
                    list.insert(network, nad);
                }
            }
            WatchEvent::InitDone => {
                if let Some(list) = listing.take() {
                    self.nads = list;
                    self.synced = true;
                }
            }
            WatchEvent::Apply(nad) => {
                if let Some(network) = nad.network() {
                    self.nads.insert(network, nad);
                }
            }
            WatchEvent::Delete(nad) => {
                if let Some(network) = nad.network() {
                    self.nads.remove(&network);
                }
            }
        }
    }

    /// A follower reads the ledger and publishes it, so that the state it hands over on a fail-over
    /// already knows every allocation.
    async fn follow(&mut self) -> Result<(), AllocatorError> {
        if self.followed.is_some_and(|at| at.elapsed() < RECHECK) {
            return Ok(());
        }
        self.followed = Some(Instant::now());
        self.stored = Some(self.read_ledger().await?);
        self.publish().await;
        Ok(())
    }

    /// One pass of the leader: decide, store, publish, then show each NAD its key.
    async fn lead(&mut self) -> Result<(), AllocatorError> {
        if self.stored.is_none() {
            let stored = self.read_ledger().await?;
            self.stored = Some(stored);
        }
        let nads = self.nad_states();
        let decision = {
            // Read just above; a pass without a ledger decides nothing.
            let Some(stored) = self.stored.as_ref() else { return Ok(()) };
            let ledger = &stored.ledger;
            let wants_key = nads.iter().any(|n| n.asks && !n.deleting && ledger.key_of(&n.holder.uid).is_none());
            let live: HashMap<&str, &NadState> = nads.iter().map(|n| (n.holder.uid.as_str(), n)).collect();
            let may_release =
                ledger.entries().any(|(_, h)| !live.get(h.uid.as_str()).is_some_and(|n| n.asks && !n.deleting));
            // Settled: withdrawn long enough ago, and the withdrawal was handed to the state task.
            let published = |k: &PKey| self.published.as_ref().is_some_and(|p| p.values().any(|v| v == k));
            let settled = self
                .withdrawn
                .iter()
                .filter(|(k, at)| at.elapsed() >= SETTLE && !published(k))
                .map(|(k, _)| *k)
                .collect();
            // With every key of the range in the ledger, a NAD waiting for one needs no reads: it is
            // told the range is full, and a key comes free only through a release.
            let can_allocate = wants_key && ledger.len() < ledger.range().len();
            let mut world = World { nads, taken: BTreeSet::new(), in_use: BTreeSet::new(), settled };
            if can_allocate || may_release {
                world.in_use = self.keys_in_use().await?;
            }
            if may_release {
                // The records show what was written; the state also knows the pods planned into a key
                // whose records are still being written, however long that takes.
                world.in_use.extend(self.keys_claimed(ledger).await);
            }
            if can_allocate {
                world.taken = self.sm_keys().await?;
            }
            decide(ledger, &world)
        };
        if decision.changed() {
            self.write_ledger(&decision.ledger).await?;
        }
        let withdrawing: HashSet<PKey> = decision.withdrawing.iter().map(|(k, _)| *k).collect();
        self.withdrawn.retain(|k, _| withdrawing.contains(k));
        for key in withdrawing {
            self.withdrawn.entry(key).or_insert_with(Instant::now);
        }
        self.publish().await;
        self.tell(&decision).await;
        self.show_on_nads().await
    }

    /// What the allocator needs of every NAD. Keys NADs name by hand do not count as taken: one of the
    /// range is refused by the planner, and counting it would let any NAD author block keys; a key
    /// pods really use shows in the records and in the subnet manager.
    fn nad_states(&self) -> Vec<NadState> {
        let mut states = Vec::new();
        for (network, nad) in &self.nads {
            let Some(uid) = nad.metadata.uid.clone() else { continue };
            let asks = matches!(
                classify(nad.config().as_deref()),
                Ok(NadKind::InfiniBand(spec)) if spec.options.allocate_pkey
            );
            let holder = Holder::new(network.namespace.to_string(), network.name.to_string(), uid);
            states.push(NadState { holder, asks, deleting: nad.metadata.deletion_timestamp.is_some() });
        }
        states
    }

    /// Keys of the range some ownership record names: a pod still uses them.
    async fn keys_in_use(&self) -> Result<BTreeSet<PKey>, AllocatorError> {
        let listed = records::list(self.client.clone(), self.settings.api_timeout).await?;
        let range = self.settings.range;
        Ok(listed.records.into_iter().filter_map(|(_, r)| r.pkey).filter(|k| range.contains(*k)).collect())
    }

    /// Keys of the range the state task's claims, records or subnet-manager changes name. When the
    /// state cannot tell (its leadership has not read the records yet) or does not answer in time,
    /// every key of the ledger counts as named: nothing is given back on a guess.
    async fn keys_claimed(&self, ledger: &AllocationLedger) -> BTreeSet<PKey> {
        let everything = || ledger.entries().map(|(k, _)| k).collect();
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Input::PKeysClaimed { range: self.settings.range, reply }).await.is_err() {
            return everything();
        }
        match tokio::time::timeout(self.settings.api_timeout, answer).await {
            Ok(Ok(Some(claimed))) => claimed,
            Ok(Ok(None)) => {
                debug!("the state has not read who owns what yet: no key is given back");
                everything()
            }
            Ok(Err(_)) | Err(_) => {
                debug!("the state task did not say which keys are claimed: no key is given back");
                everything()
            }
        }
    }

    /// Keys of the range the subnet manager has partitions for.
    async fn sm_keys(&self) -> Result<BTreeSet<PKey>, AllocatorError> {
        let limit = self.sm.call_timeout() + Duration::from_secs(2);
        let list = bounded(limit, info_span!("sm", operation = "list"), self.sm.list_guids())
            .await
            .map_err(AllocatorError::SubnetManager)?;
        let range = self.settings.range;
        Ok(list
            .into_iter()
            .filter_map(|(text, _)| ib_model::pkey::parse_number(&text).and_then(|v| PKey::new(v & 0x7FFF).ok()))
            .filter(|k| range.contains(*k))
            .collect())
    }

    fn ledger_api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn ledger_error(&self, operation: &'static str, source: CallError<kube::Error>) -> AllocatorError {
        AllocatorError::Ledger { operation, namespace: self.settings.namespace.clone(), source }
    }

    async fn read_ledger(&self) -> Result<Stored, AllocatorError> {
        let api = self.ledger_api();
        let span = info_span!("api", operation = "get_pkey_ledger");
        let map = bounded(self.settings.api_timeout, span, api.get_opt(LEDGER_NAME))
            .await
            .map_err(|e| self.ledger_error("get", e))?;
        let Some(map) = map else {
            return Ok(Stored { ledger: AllocationLedger::new(self.settings.range), resource_version: None });
        };
        let data = map.data.unwrap_or_default();
        let (ledger, problems) =
            AllocationLedger::from_data(self.settings.range, data.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for problem in problems {
            warn!(configmap = LEDGER_NAME, error = %problem, "partition ledger entry left out");
        }
        Ok(Stored { ledger, resource_version: map.metadata.resource_version })
    }

    /// Stores `ledger` over the version read; a conflict makes the next pass read it again.
    async fn write_ledger(&mut self, ledger: &AllocationLedger) -> Result<(), AllocatorError> {
        let left = self.gate.time_left().ok_or(AllocatorError::NotLeader)?;
        let limit = self.settings.api_timeout.min(left);
        let version = self.stored.as_ref().and_then(|s| s.resource_version.clone());
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(LEDGER_NAME.into()),
                namespace: Some(self.settings.namespace.clone()),
                resource_version: version.clone(),
                labels: Some(BTreeMap::from([("app".to_owned(), "ib-kubernetes".to_owned())])),
                ..ObjectMeta::default()
            },
            data: Some(ledger.to_data()),
            ..ConfigMap::default()
        };
        let api = self.ledger_api();
        let span = info_span!("api", operation = "write_pkey_ledger");
        let (operation, result) = match version {
            None => ("create", bounded(limit, span, api.create(&PostParams::default(), &map)).await),
            Some(_) => ("replace", bounded(limit, span, api.replace(LEDGER_NAME, &PostParams::default(), &map)).await),
        };
        match result {
            Ok(written) => {
                self.stored =
                    Some(Stored { ledger: ledger.clone(), resource_version: written.metadata.resource_version });
                Ok(())
            }
            Err(e) => {
                // The stored ledger may have changed under us: read it again before deciding anything.
                self.stored = None;
                Err(self.ledger_error(operation, e))
            }
        }
    }

    /// Tells the state task the allocations of the NADs as they exist now, when they changed.
    async fn publish(&mut self) {
        let Some(stored) = &self.stored else { return };
        let live: HashMap<NetworkRef, String> =
            self.nads.iter().filter_map(|(n, nad)| Some((n.clone(), nad.metadata.uid.clone()?))).collect();
        let mut now = stored.ledger.published(&live);
        now.retain(|_, key| !self.withdrawn.contains_key(key));
        if self.published.as_ref() == Some(&now) {
            return;
        }
        debug!(networks = now.len(), "publishing partition allocations");
        if self.tx.send(Input::PKeyAllocations(now.clone())).await.is_ok() {
            self.published = Some(now);
        }
    }

    /// Events on the NADs concerned, each about that NAD only. A few at a time, and a bounded number per
    /// pass: a burst of NADs finding the range full must not hold the allocator up; the ones not yet
    /// told are told at the next passes.
    async fn tell(&mut self, decision: &Decision) {
        let range = self.settings.range;
        let mut events = Vec::new();
        for (key, holder) in &decision.allocated {
            info!(network = %holder.network(), pkey = %key, "partition allocated");
            self.told_full.remove(&holder.uid);
            let note = format!("partition {key} allocated to this network from {range}");
            events.push(NadEvent { holder: holder.clone(), type_: EventType::Normal, reason: "PKeyAllocated", note });
        }
        for (key, holder) in &decision.released {
            info!(network = %holder.network(), pkey = %key, "partition given back");
        }
        let live: HashSet<&str> = self.nads.values().filter_map(|n| n.metadata.uid.as_deref()).collect();
        self.told_full.retain(|uid| live.contains(uid.as_str()));
        for holder in &decision.exhausted {
            if events.len() >= EVENTS_PER_PASS {
                break;
            }
            if self.told_full.insert(holder.uid.clone()) {
                warn!(network = %holder.network(), %range, "no partition key free for a network that asks for one");
                let note = format!(
                    "no partition key is free in the allocation range {range} (PKEY_ALLOCATION_RANGE); pods of this network wait until one is given back"
                );
                let type_ = EventType::Warning;
                events.push(NadEvent { holder: holder.clone(), type_, reason: "PKeyRangeExhausted", note });
            }
        }
        let reporter = Reporter { controller: "ib-kubernetes".into(), instance: Some(self.settings.instance.clone()) };
        let client = &self.client;
        futures::stream::iter(events)
            .for_each_concurrent(CONCURRENCY, |event| send_event(client.clone(), reporter.clone(), event))
            .await;
    }

    /// Makes every NAD show what the ledger says: the key and the finalizer on a holder, neither on any
    /// other NAD (whatever its author wrote there). A few patches at a time.
    async fn show_on_nads(&mut self) -> Result<(), AllocatorError> {
        let Some(stored) = &self.stored else { return Ok(()) };
        let mut patches = Vec::new();
        for (network, nad) in &self.nads {
            let key = nad.metadata.uid.as_deref().and_then(|uid| stored.ledger.key_of(uid));
            if let Some(patch) = nad_patch(nad, key) {
                patches.push((network.clone(), patch));
            }
        }
        let (client, gate, timeout) = (&self.client, &self.gate, self.settings.api_timeout);
        let outcomes: Vec<_> = futures::stream::iter(patches)
            .map(|(network, patch)| async move {
                let outcome = patch_nad(client.clone(), gate, timeout, &network, patch).await;
                (network, outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut first_error = None;
        for (network, outcome) in outcomes {
            match outcome {
                Ok(Patched::Stored(nad)) => {
                    self.nads.insert(network, *nad);
                }
                Ok(Patched::Gone) => {
                    self.nads.remove(&network);
                }
                Ok(Patched::Stale) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

mod nad;
#[cfg(test)]
mod tests;

use nad::{NadEvent, Patched, nad_patch, patch_nad, send_event};
