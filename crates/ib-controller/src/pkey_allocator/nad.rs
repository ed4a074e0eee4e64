//! What the allocator writes to a NAD: the annotation and finalizer that show its key, and Events.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use tracing::{debug, info_span};

use ib_model::pkey_allocation::Holder;
use ib_model::{NetworkRef, PKey};

use super::{AllocatorError, EVENT_TIMEOUT, FINALIZER, PKEY_ANNOTATION};
use crate::call::{CallError, bounded};
use crate::leader::LeaseGate;
use crate::resources::Nad;

/// What a NAD patch found.
pub(super) enum Patched {
    /// The NAD as stored after the patch.
    Stored(Box<Nad>),
    /// The NAD is gone (also when the patch removed the last finalizer of a deleting NAD).
    Gone,
    /// The NAD changed since it was read: the watch brings it as it is, the next pass patches again.
    Stale,
}

pub(super) async fn patch_nad(
    client: Client,
    gate: &LeaseGate,
    timeout: Duration,
    network: &NetworkRef,
    patch: serde_json::Value,
) -> Result<Patched, AllocatorError> {
    let left = gate.time_left().ok_or(AllocatorError::NotLeader)?;
    let api: Api<Nad> = Api::namespaced(client, &network.namespace);
    let span = info_span!("api", operation = "patch_nad", network = %network);
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    match bounded(timeout.min(left), span, api.patch(&network.name, &params, &patch)).await {
        Ok(nad)
            if nad.metadata.deletion_timestamp.is_some()
                && nad.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) =>
        {
            Ok(Patched::Gone)
        }
        Ok(nad) => Ok(Patched::Stored(Box::new(nad))),
        Err(CallError::Failed(kube::Error::Api(status))) if status.code == 404 => Ok(Patched::Gone),
        Err(CallError::Failed(kube::Error::Api(status))) if status.code == 409 => {
            debug!(network = %network, "NAD changed since read; patched again at the next pass");
            Ok(Patched::Stale)
        }
        Err(source) => Err(AllocatorError::Nad { network: network.clone(), source }),
    }
}

/// An Event about one NAD.
pub(super) struct NadEvent {
    pub(super) holder: Holder,
    pub(super) type_: EventType,
    pub(super) reason: &'static str,
    pub(super) note: String,
}

/// Sends one Event about a NAD; best effort, bounded.
pub(super) async fn send_event(client: Client, reporter: Reporter, NadEvent { holder, type_, reason, note }: NadEvent) {
    let recorder = Recorder::new(client, reporter);
    let reference = ObjectReference {
        api_version: Some("k8s.cni.cncf.io/v1".into()),
        kind: Some("NetworkAttachmentDefinition".into()),
        name: Some(holder.name.clone()),
        namespace: Some(holder.namespace.clone()),
        uid: Some(holder.uid.clone()),
        ..ObjectReference::default()
    };
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "AllocatePartition".into(),
        secondary: None,
    };
    let span = info_span!("event", network = %holder.network(), reason);
    if let Err(e) = bounded(EVENT_TIMEOUT, span, recorder.publish(&event, &reference)).await {
        debug!(network = %holder.network(), reason, error = %e, "event not recorded");
    }
}

/// The merge patch that makes `nad` show `key` (or nothing of ours), or `None` when it already does.
/// It carries the resourceVersion read, so that it fails instead of overwriting a change made since
/// (the finalizer list is replaced whole by a merge patch).
pub(super) fn nad_patch(nad: &Nad, key: Option<PKey>) -> Option<serde_json::Value> {
    let meta = &nad.metadata;
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    let has_finalizer = finalizers.iter().any(|f| f == FINALIZER);
    let shown = meta.annotations.as_ref().and_then(|a| a.get(PKEY_ANNOTATION));
    let want_text = key.map(|k| k.to_string());
    let deleting = meta.deletion_timestamp.is_some();
    // A deleting NAD cannot gain a finalizer; one that holds no key must not keep ours.
    let want_finalizer = key.is_some() && (has_finalizer || !deleting);
    if has_finalizer == want_finalizer && shown == want_text.as_ref() {
        return None;
    }
    let mut metadata = serde_json::Map::new();
    metadata.insert("resourceVersion".into(), json!(meta.resource_version));
    if shown != want_text.as_ref() && !(deleting && want_text.is_some()) {
        metadata.insert("annotations".into(), json!({ PKEY_ANNOTATION: want_text }));
    }
    if has_finalizer != want_finalizer {
        let mut list: Vec<String> = finalizers.into_iter().filter(|f| f != FINALIZER).collect();
        if want_finalizer {
            list.push(FINALIZER.to_owned());
        }
        metadata.insert("finalizers".into(), json!(list));
    }
    (metadata.len() > 1).then(|| json!({ "metadata": metadata }))
}
