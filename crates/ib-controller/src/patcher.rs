//! Pod annotation patches: only the networks annotation, guarded by the pod's uid and resourceVersion.
//!
//! The merge patch carries `metadata.uid` and `metadata.resourceVersion`. The API server then refuses
//! it (409 Conflict) if the pod changed since it was planned, and refuses it (422, uid is immutable) if
//! the name now belongs to a re-created pod, so a concurrent edit or a new pod with the same name is
//! never overwritten (Go bug B16). Both mean "plan again on the newer pod".

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, info_span};

use ib_model::annotation::NETWORKS_ANNOTATION;
use ib_model::{PatchOutcome, PodPatch};

use crate::leader::LeaseGate;
use crate::resources::CompactPod;

pub struct PatchContext {
    pub client: Client,
    pub gate: LeaseGate,
    pub slots: Arc<Semaphore>,
    pub timeout: Duration,
}

/// The patch body: only the annotation this controller owns, plus the preconditions.
pub fn patch_body(patch: &PodPatch) -> serde_json::Value {
    json!({
        "metadata": {
            "uid": &*patch.pod.uid.0,
            "resourceVersion": patch.resource_version,
            "annotations": { NETWORKS_ANNOTATION: patch.annotation },
        }
    })
}

pub async fn patch_pod(ctx: &PatchContext, patch: &PodPatch) -> PatchOutcome {
    let span = info_span!("patch", pod = %patch.pod, resource_version = %patch.resource_version);
    async {
        let Ok(_slot) = ctx.slots.acquire().await else {
            return PatchOutcome::Failed("patcher stopped".into());
        };
        // The one place pod writes are gated on leadership.
        if !ctx.gate.allows_writes() {
            return PatchOutcome::Failed("not the leader".into());
        }
        let api: Api<CompactPod> = Api::namespaced(ctx.client.clone(), &patch.pod.namespace);
        let body = patch_body(patch);
        let (params, body) = (PatchParams::default(), Patch::Merge(&body));
        let call = api.patch(&patch.pod.name, &params, &body);
        match tokio::time::timeout(ctx.timeout, call).await {
            Ok(Ok(pod)) => match pod.into_view() {
                Some(view) => PatchOutcome::Applied(view),
                None => PatchOutcome::Failed("the API server returned a pod without uid or resourceVersion".into()),
            },
            Ok(Err(kube::Error::Api(status))) => {
                debug!(code = status.code, reason = %status.reason, "patch refused");
                match status.code {
                    404 => PatchOutcome::NotFound,
                    409 | 422 => PatchOutcome::Conflict,
                    code => PatchOutcome::Failed(format!("{code} {}: {}", status.reason, status.message)),
                }
            }
            Ok(Err(e)) => PatchOutcome::Failed(e.to_string()),
            Err(_) => PatchOutcome::Failed(format!("timed out after {}s", ctx.timeout.as_secs())),
        }
    }
    .instrument(span)
    .await
}

/// What a fresh read of a pod whose patch conflicted says.
pub enum Refreshed {
    /// The same pod, as it is now.
    Current(ib_model::PodView),
    /// The pod with that uid no longer exists (gone, or the name was reused by a new pod).
    Gone,
    /// The read failed; the watch will bring the pod.
    Unknown,
}

/// Re-reads a pod after a conflict, so that the next plan starts from its current version.
pub async fn refresh(client: &Client, patch: &PodPatch, timeout: Duration) -> Refreshed {
    let api: Api<CompactPod> = Api::namespaced(client.clone(), &patch.pod.namespace);
    match tokio::time::timeout(timeout, api.get_opt(&patch.pod.name)).await {
        Ok(Ok(Some(pod))) => match pod.into_view() {
            Some(view) if view.uid == patch.pod.uid => Refreshed::Current(view),
            Some(_) => Refreshed::Gone,
            None => Refreshed::Unknown,
        },
        Ok(Ok(None)) => Refreshed::Gone,
        _ => Refreshed::Unknown,
    }
}
