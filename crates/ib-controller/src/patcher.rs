//! Pod annotation patches: only the networks annotation, guarded by the pod's uid and resourceVersion.
//!
//! The merge patch carries `metadata.uid` and `metadata.resourceVersion`. The API server then refuses
//! it (409 Conflict) if the pod changed since it was planned, and refuses it (422, uid is immutable) if
//! the name now belongs to a re-created pod, so a concurrent edit or a new pod with the same name is
//! never overwritten. Both mean "plan again on the newer pod".
//!
//! A 422 can also refuse this very change on this very pod: an admission policy's denial, or the
//! annotation size limit. Planning again would send the same patch at once and be refused again, GET and
//! PATCH back to back forever. So a 422 is followed by a re-read: if the pod is still the one the patch
//! was planned on (same uid and resourceVersion), the refusal is a failure, retried with backoff and
//! reported on the pod; otherwise it is a conflict as above.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tracing::{Instrument, debug, info_span, warn};

use ib_model::annotation::NETWORKS_ANNOTATION;
use ib_model::{PatchOutcome, PodPatch};

use crate::call::{CallError, Labelled, bounded};
use crate::leader::LeaseGate;
use crate::resources::CompactPod;

/// What a pod patch needs: the API client, the leadership check and the timeout. How many patches are in
/// flight at once is bounded by the executors, which run that many senders.
pub struct PatchContext {
    /// The API client the patch is sent with.
    pub client: Client,
    /// Refuses the patch when the Lease is no longer held.
    pub gate: LeaseGate,
    /// The longest one patch call may take.
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

/// Sends the patch, with its UID and resourceVersion preconditions, and says how it ended.
pub async fn patch_pod(ctx: &PatchContext, patch: &PodPatch) -> PatchOutcome {
    let span = info_span!("patch", pod = %patch.pod, resource_version = %patch.resource_version);
    async {
        // The one place pod writes are gated on leadership.
        if !ctx.gate.allows_writes() {
            return failed("not_leader", "not the leader".into());
        }
        let api: Api<CompactPod> = Api::namespaced(ctx.client.clone(), &patch.pod.namespace);
        let body = patch_body(patch);
        let (params, body) = (PatchParams::default(), Patch::Merge(&body));
        let call = api.patch(&patch.pod.name, &params, &body);
        match bounded(ctx.timeout, info_span!("api", operation = "patch"), call).await {
            Ok(pod) => match pod.into_view() {
                Some(view) => PatchOutcome::Applied(view),
                None => failed("decode", "the API server returned a pod without uid or resourceVersion".into()),
            },
            Err(CallError::Failed(kube::Error::Api(status))) => {
                debug!(code = status.code, reason = %status.reason, "patch refused");
                match status.code {
                    404 => PatchOutcome::NotFound,
                    409 => PatchOutcome::Conflict,
                    422 => unprocessable(&api, patch, &status, ctx.timeout).await,
                    code => failed(
                        kube::Error::Api(status.clone()).label(),
                        format!("{code} {}: {}", status.reason, shorten(&status.message, MAX_MESSAGE_CHARS)),
                    ),
                }
            }
            Err(e) => failed(e.label(), e.to_string()),
        }
    }
    .instrument(span)
    .await
}

fn failed(kind: &'static str, message: String) -> PatchOutcome {
    PatchOutcome::Failed { kind, message }
}

/// The API server's message is cut here: it lands in an Event and a log line, and it may quote the
/// refused value (an annotation of up to 256 KiB).
const MAX_MESSAGE_CHARS: usize = 300;

/// Tells a refusal of this exact patch (the pod is as planned) from a stale plan (the pod changed or is
/// another pod now) by reading the pod again.
async fn unprocessable(
    api: &Api<CompactPod>,
    patch: &PodPatch,
    status: &kube::core::Status,
    timeout: Duration,
) -> PatchOutcome {
    let refusal = format!("422 {}: {}", status.reason, shorten(&status.message, MAX_MESSAGE_CHARS));
    match bounded(timeout, info_span!("api", operation = "get"), api.get_opt(&patch.pod.name)).await {
        Ok(Some(pod)) => match pod.into_view() {
            Some(view) if view.uid == patch.pod.uid && view.resource_version == patch.resource_version => {
                failed("refused", format!("the API server refused the patch: {refusal}"))
            }
            // Changed since it was planned, or the name belongs to a new pod: plan again on what is there.
            _ => PatchOutcome::Conflict,
        },
        // Gone: the re-read after a conflict finds that out and forgets the pod.
        Ok(None) => PatchOutcome::Conflict,
        // Unknown whether the pod changed; a failure is retried with backoff, which a conflict is not.
        Err(e) => {
            warn!(error = %e, "re-reading the pod after a refused patch failed");
            let why = match e {
                CallError::Failed(_) => "re-reading the pod failed".to_owned(),
                CallError::TimedOut(limit) => format!("re-reading the pod timed out after {}s", limit.as_secs()),
            };
            failed("refused", format!("the API server refused the patch: {refusal} ({why})"))
        }
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
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
    let span = info_span!("refresh", pod = %patch.pod);
    match bounded(timeout, span, api.get_opt(&patch.pod.name)).await {
        Ok(Some(pod)) => match pod.into_view() {
            Some(view) if view.uid == patch.pod.uid => Refreshed::Current(view),
            Some(_) => Refreshed::Gone,
            None => Refreshed::Unknown,
        },
        Ok(None) => Refreshed::Gone,
        Err(_) => Refreshed::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn shorten_cuts_on_a_character_boundary() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "abc…");
        assert_eq!(shorten("ééé", 2), "éé…");
        assert_eq!(shorten(&"a,".repeat(100_000), 300).chars().count(), 301);
    }
}
