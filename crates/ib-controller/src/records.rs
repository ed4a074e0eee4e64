//! Ownership records in the cluster: `GuidBlock` objects (`ib-kubernetes.mellanox.com/v1alpha1`,
//! cluster-scoped, one per 64 GUIDs), which only the controller's ServiceAccount may write.
//!
//! A block write is a JSON merge patch of only the entries that change, so a burst of allocations in
//! one block is one small request; a missing block is created. A block left empty is deleted, except
//! the anchor (the block of the pool's first GUID): any block at all tells a new leader that
//! annotations are no longer proof and must not be imported again.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{ClusterResourceScope, ObjectMeta, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::{debug, info_span, warn};

use crate::call::{Labelled, bounded};
use crate::input::Input;
use ib_model::{BlockId, Guid, InterfaceKey, NetworkRef, PKey, PodUid, Record, RecordChange, RecordState, RecordWrite};

/// The API group of the `GuidBlock` ownership records.
pub const GROUP: &str = "ib-kubernetes.mellanox.com";
/// The API version of the `GuidBlock` resource.
pub const VERSION: &str = "v1alpha1";
/// The kind of the ownership-record resource.
pub const KIND: &str = "GuidBlock";
/// The plural resource name used in API paths.
pub const PLURAL: &str = "guidblocks";
/// Blocks listed per page at leader start: 16 full blocks are about 1 MB of JSON, so a large cluster's
/// records never sit in memory as one response (the allocator keeps such peaks as resident memory).
const LIST_PAGE: u32 = 16;

/// One stored block.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GuidBlock {
    /// The block's name (derived from its first GUID) and resourceVersion.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The records the block holds.
    #[serde(default)]
    pub spec: GuidBlockSpec,
}

/// Written with its `apiVersion` and `kind`: an API server refuses to create a custom resource whose
/// body does not name its type ("Object 'Kind' is missing").
impl Serialize for GuidBlock {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut object = serializer.serialize_struct("GuidBlock", 4)?;
        object.serialize_field("apiVersion", &format!("{GROUP}/{VERSION}"))?;
        object.serialize_field("kind", KIND)?;
        object.serialize_field("metadata", &self.metadata)?;
        object.serialize_field("spec", &self.spec)?;
        object.end()
    }
}

/// The content of a `GuidBlock`: the block's first GUID and one allocation per owned GUID.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct GuidBlockSpec {
    /// The block's first GUID, in the `02:00:…` notation.
    #[serde(default)]
    pub start: String,
    /// The records, keyed by GUID.
    #[serde(default)]
    pub allocations: BTreeMap<String, Allocation>,
}

/// What a write needs of the API server's answer: the version, and whether any record is left. The
/// records themselves are not decoded: a full block is some 60 KB of JSON.
#[derive(Clone, Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: AnswerSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct AnswerSpec {
    #[serde(default, deserialize_with = "count_entries")]
    allocations: usize,
}

/// The number of entries of a JSON object, without keeping any of them.
fn count_entries<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
        fn visit_unit<E>(self) -> Result<usize, E> {
            Ok(0)
        }
    }
    deserializer.deserialize_any(Count)
}

/// One record as stored; every field is the controller's own writing.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// The UID of the pod owning the GUID.
    pub pod_uid: String,
    /// The owning pod's namespace.
    pub namespace: String,
    /// The owning pod's name.
    pub pod: String,
    /// `namespace/name` of the NAD.
    pub network: String,
    /// The pod's interface name the GUID is for.
    pub interface: String,
    /// The partition key the GUID is a member of, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkey: Option<String>,
    /// How far the GUID has got: `Reserved`, `Member`, `Unknown` or `Releasing`.
    pub state: String,
}

/// The `GuidBlock` resource's identity, for the full object and for the slim answer to a write.
macro_rules! guidblock_resource {
    ($t:ty) => {
        impl Resource for $t {
            type DynamicType = ();
            type Scope = ClusterResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                KIND.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                GROUP.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                VERSION.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                PLURAL.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

guidblock_resource!(GuidBlock);
guidblock_resource!(Answer);

/// Why reading or writing the ownership records failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The API server refused or failed the call.
    #[error("{operation} guidblocks: {source}")]
    Api {
        /// Which call (`list`, `patch`, …).
        operation: &'static str,
        /// The API error.
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("{operation} guidblocks: no answer within {timeout:?}")]
    Timeout {
        /// Which call (`list`, `patch`, …).
        operation: &'static str,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The lease is not held (or not for long enough to write): nothing is written.
    #[error("write guidblocks: not the leader")]
    NotLeader,
}

impl Labelled for RecordsError {
    fn label(&self) -> &'static str {
        match self {
            RecordsError::Api { source, .. } => source.label(),
            RecordsError::Timeout { .. } => "timeout",
            RecordsError::NotLeader => "not_leader",
        }
    }
}

/// The stored form of a record.
pub fn allocation(record: &Record) -> Allocation {
    Allocation {
        pod_uid: record.owner.pod.to_string(),
        namespace: record.pod_namespace.clone(),
        pod: record.pod_name.clone(),
        network: record.owner.network.to_string(),
        interface: record.owner.interface.to_string(),
        pkey: record.pkey.map(|p| format!("0x{:04x}", p.get())),
        state: record.state.as_str().to_owned(),
    }
}

/// Reads one stored entry back; `None` for anything the controller would not have written (such an
/// entry is skipped with a warning rather than trusted).
pub fn record(guid_text: &str, a: &Allocation) -> Option<(Guid, Record)> {
    let guid = Guid::parse(guid_text).ok()?;
    let (ns, name) = a.network.split_once('/')?;
    let pkey = match a.pkey.as_deref() {
        None => None,
        Some(p) => Some(PKey::parse(p).ok()?),
    };
    let record = Record {
        owner: InterfaceKey {
            pod: PodUid::from(a.pod_uid.as_str()),
            network: NetworkRef::new(ns, name),
            interface: a.interface.as_str().into(),
        },
        pod_namespace: a.namespace.clone(),
        pod_name: a.pod.clone(),
        pkey,
        state: RecordState::parse(&a.state)?,
    };
    Some((guid, record))
}

/// What a leader reads at start.
#[derive(Debug, Default)]
pub struct Listed {
    /// Whether any block exists at all (none: the first start, when annotations are imported once).
    pub any_block: bool,
    /// Every record read, by GUID.
    pub records: Vec<(Guid, Record)>,
}

/// Every block: whether any exists, and every record they hold.
pub async fn list(client: Client, timeout: Duration) -> Result<Listed, RecordsError> {
    let mut records = Vec::new();
    let any_block = read_pages(client, timeout, |page| {
        records.extend(page);
        std::future::ready(())
    })
    .await?;
    Ok(Listed { any_block, records })
}

/// Every block, for a leader's start: each page's records go to the state task as they are read, as
/// [`Input::RecordsPage`] of the leadership `term`, so that the whole list is never held at once;
/// whether any block exists, which the caller sends as the list's end.
pub async fn list_pages(
    client: Client,
    timeout: Duration,
    term: u64,
    tx: &mpsc::Sender<Input>,
) -> Result<bool, RecordsError> {
    read_pages(client, timeout, |records| async move {
        // The state task gone: nobody waits for the rest.
        let _ = tx.send(Input::RecordsPage { term, records }).await;
    })
    .await
}

/// Reads every block page by page, bounded as a whole by `timeout`, handing each page's records to
/// `page`; whether any block exists.
async fn read_pages<F, Fut>(client: Client, timeout: Duration, mut page: F) -> Result<bool, RecordsError>
where
    F: FnMut(Vec<(Guid, Record)>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let api: Api<GuidBlock> = Api::all(client);
    let read = async {
        let mut any = false;
        let mut params = ListParams::default().limit(LIST_PAGE);
        loop {
            let list = api.list(&params).await.map_err(|source| RecordsError::Api { operation: "list", source })?;
            let mut records = Vec::new();
            for block in list.items {
                let Some(name) = block.metadata.name.as_deref() else { continue };
                if BlockId::from_name(name).is_none() {
                    warn!(block = name, "a guidblock whose name is not a block start is ignored");
                    continue;
                }
                any = true;
                for (guid, a) in &block.spec.allocations {
                    match record(guid, a) {
                        Some((g, r)) if BlockId::of(g).name() == name => records.push((g, r)),
                        _ => {
                            warn!(block = name, guid = %ib_model::text::shorten(guid, 40), "unreadable record skipped")
                        }
                    }
                }
            }
            page(records).await;
            match list.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(any),
            }
        }
    };
    let span = info_span!("records", operation = "list");
    bounded(timeout, span, read)
        .await
        .map_err(|e| e.into_inner(|timeout| RecordsError::Timeout { operation: "list", timeout }))
}

/// The merge patch for one write.
fn patch_body(write: &RecordWrite) -> Value {
    let mut allocations = Map::new();
    for (guid, change) in &write.changes {
        let value = match change {
            RecordChange::Set(record) => serde_json::to_value(allocation(record)).unwrap_or(Value::Null),
            RecordChange::State(state) => json!({ "state": state.as_str() }),
            RecordChange::Delete => Value::Null,
        };
        allocations.insert(guid.to_string(), value);
    }
    json!({ "spec": { "start": write.block.start().to_string(), "allocations": allocations } })
}

/// Applies one write: a merge patch, or a create when the block does not exist yet. `anchor` is never
/// deleted when it ends up empty.
pub async fn write(
    client: Client,
    write: &RecordWrite,
    anchor: BlockId,
    timeout: Duration,
) -> Result<(), RecordsError> {
    let span = info_span!("records", operation = "write", block = %write.block, changes = write.changes.len());
    let api: Api<Answer> = Api::all(client.clone());
    let create_api: Api<GuidBlock> = Api::all(client);
    let name = write.block.name();
    let apply = async {
        let body = patch_body(write);
        let patched = match api.patch(&name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(block) => block,
            Err(kube::Error::Api(status)) if status.code == 404 => {
                let mut block = GuidBlock {
                    metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
                    spec: GuidBlockSpec { start: write.block.start().to_string(), allocations: BTreeMap::new() },
                };
                for (guid, change) in &write.changes {
                    if let RecordChange::Set(record) = change {
                        block.spec.allocations.insert(guid.to_string(), allocation(record));
                    }
                }
                match create_api.create(&PostParams::default(), &block).await {
                    Ok(block) => Answer {
                        metadata: block.metadata,
                        spec: AnswerSpec { allocations: block.spec.allocations.len() },
                    },
                    // Created meanwhile (by an earlier attempt whose answer was lost): patch it.
                    Err(kube::Error::Api(status)) if status.code == 409 => api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                        .map_err(|source| RecordsError::Api { operation: "patch", source })?,
                    Err(source) => return Err(RecordsError::Api { operation: "create", source }),
                }
            }
            Err(source) => return Err(RecordsError::Api { operation: "patch", source }),
        };
        if patched.spec.allocations == 0 && write.block != anchor {
            // Only if nothing was written to it since: the precondition makes the delete a no-op then.
            let preconditions =
                Preconditions { resource_version: patched.metadata.resource_version.clone(), uid: None };
            let params = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::default() };
            if let Err(e) = api.delete(&name, &params).await {
                debug!(block = %name, error = %e, "empty block not deleted");
            }
        }
        Ok(())
    };
    bounded(timeout, span, apply)
        .await
        .map_err(|e| e.into_inner(|timeout| RecordsError::Timeout { operation: "write", timeout }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            owner: InterfaceKey {
                pod: PodUid::from("uid-1"),
                network: NetworkRef::new("tenant", "ib"),
                interface: "net1".into(),
            },
            pod_namespace: "tenant".into(),
            pod_name: "worker-0".into(),
            pkey: Some(PKey::parse("0x1a").unwrap()),
            state: RecordState::Member,
        }
    }

    #[test]
    fn records_round_trip_through_the_stored_form() {
        let r = sample();
        let guid = Guid::parse("02:00:00:00:00:00:01:05").unwrap();
        let a = allocation(&r);
        assert_eq!(a.pkey.as_deref(), Some("0x001a"));
        assert_eq!(record(&guid.to_string(), &a), Some((guid, r.clone())));
        let guid_only = Record { pkey: None, ..r };
        let a = allocation(&guid_only);
        assert_eq!(serde_json::to_value(&a).unwrap().get("pkey"), None);
        assert_eq!(record(&guid.to_string(), &a).map(|(_, r)| r), Some(guid_only));
    }

    #[test]
    fn entries_the_controller_would_not_write_are_refused() {
        let a = allocation(&sample());
        for bad in [
            Allocation { state: "Owned".into(), ..a.clone() },
            Allocation { network: "no-namespace".into(), ..a.clone() },
            Allocation { pkey: Some("0x7fff".into()), ..a.clone() },
        ] {
            assert_eq!(record("02:00:00:00:00:00:01:05", &bad), None, "{bad:?}");
        }
        assert_eq!(record("not-a-guid", &a), None);
    }

    #[test]
    fn a_block_is_written_with_its_api_version_and_kind() {
        let block = GuidBlock {
            metadata: ObjectMeta { name: Some("0200000000000100".into()), ..ObjectMeta::default() },
            spec: GuidBlockSpec { start: "02:00:00:00:00:00:01:00".into(), allocations: BTreeMap::new() },
        };
        let written = serde_json::to_value(&block).unwrap();
        assert_eq!(written["apiVersion"], "ib-kubernetes.mellanox.com/v1alpha1");
        assert_eq!(written["kind"], "GuidBlock");
        assert_eq!(written["metadata"]["name"], "0200000000000100");
        assert_eq!(written["spec"]["start"], "02:00:00:00:00:00:01:00");
        let read: GuidBlock = serde_json::from_value(written).unwrap();
        assert_eq!(read.spec.start, block.spec.start);
    }

    #[test]
    fn an_answer_is_read_without_its_records() {
        let full = json!({"metadata": {"name": "0200000000000100", "resourceVersion": "7"},
                          "spec": {"start": "02:00:00:00:00:00:01:00",
                                   "allocations": {"02:00:00:00:00:00:01:05": allocation(&sample()),
                                                   "02:00:00:00:00:00:01:06": allocation(&sample())}}});
        let answer: Answer = serde_json::from_value(full).unwrap();
        assert_eq!((answer.spec.allocations, answer.metadata.resource_version.as_deref()), (2, Some("7")));
        for empty in [json!({"metadata": {}}), json!({"spec": {}}), json!({"spec": {"allocations": null}})] {
            assert_eq!(serde_json::from_value::<Answer>(empty).unwrap().spec.allocations, 0);
        }
    }

    #[test]
    fn a_write_patches_only_what_changes() {
        let g1 = Guid::parse("02:00:00:00:00:00:01:05").unwrap();
        let g2 = Guid::parse("02:00:00:00:00:00:01:06").unwrap();
        let g3 = Guid::parse("02:00:00:00:00:00:01:07").unwrap();
        let write = RecordWrite {
            block: BlockId::of(g1),
            changes: BTreeMap::from([
                (g1, RecordChange::Set(sample())),
                (g2, RecordChange::State(RecordState::Releasing)),
                (g3, RecordChange::Delete),
            ]),
        };
        let body = patch_body(&write);
        assert_eq!(body["spec"]["start"], "02:00:00:00:00:00:01:00");
        let allocations = &body["spec"]["allocations"];
        assert_eq!(allocations["02:00:00:00:00:00:01:05"]["podUid"], "uid-1");
        assert_eq!(allocations["02:00:00:00:00:00:01:06"], json!({"state": "Releasing"}));
        assert_eq!(allocations["02:00:00:00:00:00:01:07"], Value::Null);
    }
}
