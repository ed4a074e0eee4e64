//! How the state task takes in what its executors report: the state learns the outcome, the metrics
//! count it with its error's label, and failed work is retried with backoff.

use std::time::Duration;

use tracing::{debug, info, warn};

use ib_model::annotation::NetworksAnnotation;
use ib_model::{Guid, PatchOutcome, PodPatch, PodView, Record, RecordWrite, SmFailure, SmListing, SmRequest};
use ib_sm::SmError;

use super::StateTask;
use crate::call::{CallError, Labelled};
use crate::executors::{op_name, retry_delay};
use crate::input::Input;
use crate::metrics::{NO_ERROR, OperationLabels, OutcomeLabels, SmLabels};
use crate::records::RecordsError;

impl StateTask {
    pub(super) fn records_page(&mut self, term: u64, records: Vec<(Guid, Record)>) {
        if term != self.term || !self.leading {
            return;
        }
        self.records_read += records.len();
        self.state.records_page(records);
    }

    pub(super) fn records_listed(&mut self, term: u64, result: Result<bool, RecordsError>) {
        if term != self.term || !self.leading {
            return;
        }
        let count = std::mem::take(&mut self.records_read);
        match result {
            Ok(any) => {
                info!(records = count, blocks_exist = any, "ownership records read for this leadership");
                self.record_list_failures = 0;
                self.state.records_end(any);
                self.exec.list_pods(self.term, Duration::ZERO);
            }
            Err(_) => {
                self.record_list_failures += 1;
                self.retry_later(Input::RetryRecords(term), self.record_list_failures);
            }
        }
    }

    pub(super) fn records_written(&mut self, term: u64, write: RecordWrite, result: Result<(), RecordsError>) {
        let labels = match &result {
            Ok(()) => OutcomeLabels { outcome: "success", error: NO_ERROR },
            Err(e) => OutcomeLabels { outcome: "failure", error: e.label() },
        };
        self.metrics.record_writes.get_or_create(&labels).inc();
        if term != self.term {
            return;
        }
        self.state.records_written(&write, result.is_ok());
        if result.is_ok() {
            self.record_write_failures = 0;
        } else {
            self.record_write_failures += 1;
            self.retry_later(Input::RetryRecordWrites, self.record_write_failures);
        }
    }

    pub(super) fn fresh_pods_page(&mut self, term: u64, mut views: Vec<PodView>) {
        if term != self.term || !self.leading {
            return;
        }
        // Listed before a deletion the watch has delivered since: gone, whatever the list says.
        views.retain(|v| !self.deleted.contains(&v.uid));
        self.fresh_listed += views.len();
        self.state.fresh_pods_page(views);
    }

    pub(super) fn fresh_pods_end(&mut self, term: u64, result: Result<Option<String>, CallError<kube::Error>>) {
        if term != self.term || !self.leading {
            return;
        }
        let listed = std::mem::take(&mut self.fresh_listed);
        match result {
            Ok(list_rv) => {
                info!(pods = listed, "pods read afresh for this leadership");
                self.state.fresh_pods_end(list_rv.as_deref());
                self.list_failures = 0;
            }
            Err(e) => {
                warn!(error = %e, kind = e.label(), "listing pods failed; retrying");
                self.state.fresh_pods_failed();
                self.list_failures += 1;
                let delay = retry_delay(self.list_failures, self.exec.settings().max_retry);
                self.exec.list_pods(term, delay);
            }
        }
    }

    pub(super) fn sm_done(&mut self, term: u64, request: SmRequest, result: Result<(), SmFailure>, elapsed: Duration) {
        let operation = op_name(request.op);
        let labels = match &result {
            Ok(()) => SmLabels { operation, outcome: "success", error: NO_ERROR },
            Err(f) if f.unknown => SmLabels { operation, outcome: "unknown", error: f.kind },
            Err(f) => SmLabels { operation, outcome: "failure", error: f.kind },
        };
        self.metrics.sm_requests.get_or_create(&labels).inc();
        self.metrics.sm_request_seconds.get_or_create(&OperationLabels { operation }).observe(elapsed.as_secs_f64());
        self.metrics.sm_request_guids.get_or_create(&OperationLabels { operation }).observe(request.guids.len() as f64);
        self.state.sm_done(&request, result.clone());
        match result {
            Ok(()) => {
                for g in &request.guids {
                    self.sm_failures.remove(g);
                }
            }
            Err(_) => {
                let attempt = request
                    .guids
                    .iter()
                    .map(|g| {
                        let n = self.sm_failures.entry(*g).or_insert(0);
                        *n += 1;
                        *n
                    })
                    .max()
                    .unwrap_or(1);
                self.retry_later(Input::RetryGuids(request.guids.clone()), attempt);
            }
        }
        if term != self.term {
            return;
        }
        // What the lane gathered meanwhile goes out with the rest of this round (`flush_lanes`).
        self.exec.lane_done(request.pkey, elapsed);
    }

    pub(super) fn sm_listed(&mut self, term: u64, result: Result<SmListing, CallError<SmError>>) {
        if term != self.term {
            return;
        }
        match result {
            Ok(list) => {
                let labels = SmLabels { operation: "list", outcome: "success", error: NO_ERROR };
                self.metrics.sm_requests.get_or_create(&labels).inc();
                self.sm_list_failures = 0;
                self.state.sm_listed(list.memberships());
            }
            Err(e) => {
                let labels = SmLabels { operation: "list", outcome: "failure", error: e.label() };
                self.metrics.sm_requests.get_or_create(&labels).inc();
                self.state.sm_list_failed();
                // Its own count: the listing backs off to DAEMON_PERIODIC_UPDATE while the subnet manager
                // stays down, instead of retrying every 250 ms.
                self.sm_list_failures += 1;
                self.retry_later(Input::Resync, self.sm_list_failures);
            }
        }
    }

    pub(super) fn patch_done(&mut self, term: u64, patch: PodPatch, outcome: PatchOutcome) {
        let labels = match &outcome {
            PatchOutcome::Applied(_) => OutcomeLabels { outcome: "applied", error: NO_ERROR },
            PatchOutcome::Conflict => OutcomeLabels { outcome: "conflict", error: NO_ERROR },
            PatchOutcome::NotFound => OutcomeLabels { outcome: "not_found", error: NO_ERROR },
            PatchOutcome::Failed { kind, .. } => OutcomeLabels { outcome: "failed", error: kind },
        };
        self.metrics.patches.get_or_create(&labels).inc();
        let uid = patch.pod.uid.clone();
        match &outcome {
            PatchOutcome::Applied(_) => {
                self.patch_failures.remove(&uid);
                self.metrics.pods_configured.inc();
                if let Some(seen) = self.first_seen.remove(&uid) {
                    self.metrics.pod_configure_seconds.observe(seen.elapsed().as_secs_f64());
                }
                let guids: Vec<String> = patch.guids.iter().map(Guid::to_string).collect();
                info!(pod = %patch.pod, guids = %guids.join(","), "pod configured");
                self.events.normal(&patch.pod, "Configured", configured_note(&patch));
            }
            PatchOutcome::Conflict => {
                debug!(pod = %patch.pod, "pod changed meanwhile; re-reading it and planning again");
                self.exec.refresh(patch.clone());
            }
            PatchOutcome::NotFound => debug!(pod = %patch.pod, "pod gone before it was configured"),
            PatchOutcome::Failed { kind, message } => {
                warn!(pod = %patch.pod, kind, error = %message, "patching the pod failed");
                let n = self.patch_failures.entry(uid.clone()).or_insert(0);
                *n += 1;
                let attempt = *n;
                self.retry_later(Input::RetryPod(uid.clone()), attempt);
            }
        }
        if term != self.term && !matches!(outcome, PatchOutcome::Applied(_)) {
            return;
        }
        // Applied, but the pod's deletion has been delivered since: its answer must not bring it back.
        let outcome = match outcome {
            PatchOutcome::Applied(_) if self.deleted.contains(&uid) => PatchOutcome::NotFound,
            outcome => outcome,
        };
        self.state.patch_done(&uid, outcome);
    }
}

fn configured_note(patch: &PodPatch) -> String {
    let networks = NetworksAnnotation::parse(&patch.annotation, &patch.pod.namespace)
        .map(|a| {
            a.selections()
                .iter()
                .filter(|s| {
                    s.guid.as_ref().and_then(|(t, _)| Guid::parse(t).ok()).is_some_and(|g| patch.guids.contains(&g))
                })
                .map(|s| {
                    let guid = s.guid.as_ref().map(|(t, _)| t.as_str()).unwrap_or_default();
                    let pkey = s.pkey.as_deref().filter(|p| !p.is_empty()).unwrap_or("none");
                    format!("{} {} GUID {guid} pkey {pkey}", s.network, s.interface)
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    format!("InfiniBand configured: {networks}")
}
