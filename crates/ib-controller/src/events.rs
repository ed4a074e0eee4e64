//! Kubernetes Events on pods: why a pod waits, and when it is configured.
//!
//! Events are best effort. They go through a bounded queue that drops when full, so a burst of
//! thousands of pods never slows configuration; the planner already reports a waiting reason only when
//! it changes, which is what keeps a stuck pod from flooding.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info_span};

use ib_model::PodRef;

use crate::call::bounded;

/// Events waiting to be sent; beyond this they are dropped (and counted).
const QUEUE: usize = 4096;
/// Events sent at once: enough to keep up with a burst, few enough not to crowd out pod patches.
const CONCURRENCY: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends Kubernetes Events about pods in the background, dropping (and counting) them when the queue is full.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<(PodRef, Event)>,
    dropped: Counter,
}

impl EventSink {
    /// Starts the sender task in `tasks`: it ends when they are aborted or every sink is gone.
    pub fn start(client: Client, instance: String, dropped: Counter, tasks: &mut JoinSet<()>) -> Self {
        let (tx, rx) = mpsc::channel::<(PodRef, Event)>(QUEUE);
        let reporter = Reporter { controller: "ib-kubernetes".into(), instance: Some(instance) };
        tasks.spawn(
            tokio_stream_from(rx)
                .map(move |(pod, event)| {
                    // A recorder per event: kube-rs's Recorder keeps every event it sent for six minutes
                    // (to merge repeats into a series) and scans that whole cache on every publish. At 200
                    // pods/s that is 70,000 cached events, some 200 MiB and a scan per event that grows
                    // until it owns a core. The planner reports a reason only when it changes, so repeats
                    // are rare and need no series.
                    let recorder = Recorder::new(client.clone(), reporter.clone());
                    async move {
                        let reference = ObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Pod".into()),
                            name: Some(pod.name.clone()),
                            namespace: Some(pod.namespace.clone()),
                            uid: Some(pod.uid.to_string()),
                            ..ObjectReference::default()
                        };
                        let span = info_span!("event", pod = %pod, reason = %event.reason);
                        if let Err(e) = bounded(TIMEOUT, span, recorder.publish(&event, &reference)).await {
                            debug!(pod = %pod, reason = %event.reason, error = %e, "event not recorded");
                        }
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .for_each(|()| async {}),
        );
        EventSink { tx, dropped }
    }

    /// Queues a Warning Event on `pod`: something the pod's author has to fix or know about.
    pub fn warning(&self, pod: &PodRef, reason: &str, note: String) {
        self.send(pod, EventType::Warning, reason, note);
    }

    /// Queues a Normal Event on `pod`: progress worth showing in `kubectl describe`.
    pub fn normal(&self, pod: &PodRef, reason: &str, note: String) {
        self.send(pod, EventType::Normal, reason, note);
    }

    fn send(&self, pod: &PodRef, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            // The API refuses notes over 1 kB.
            note: Some(truncate(note, 1000)),
            action: "ConfigureInfiniBand".into(),
            secondary: None,
        };
        if self.tx.try_send((pod.clone(), event)).is_err() {
            self.dropped.inc();
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncation_respects_characters() {
        assert_eq!(super::truncate("ééé".into(), 3), "é");
        assert_eq!(super::truncate("abc".into(), 5), "abc");
    }
}
