//! The state task fed inputs by hand.

use std::sync::Arc;
use std::time::Duration;

use ib_model::{Guid, GuidRange, PatchOutcome, PodPatch, PodPhase, PodUid, PodView, State};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

use super::{Dependencies, StateTask, TaskSettings};
use crate::config::LeaseTimings;
use crate::input::Input;
use crate::leader::LeaderElector;
use crate::metrics::Metrics;

/// A state task whose executors' calls go nowhere (nothing listens on the API address).
fn task() -> StateTask {
    let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
    let timings = LeaseTimings {
        duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };
    let (_, gate) = LeaderElector::new(client.clone(), "kube-system", "test".into(), timings).gate();
    let settings = TaskSettings {
        max_retry: Duration::from_secs(1),
        drift_grace: Duration::from_secs(15),
        sm_timeout: Duration::from_secs(5),
        api_timeout: Duration::from_secs(30),
        patch_concurrency: 1,
        watch_namespace: None,
    };
    let range = GuidRange::new(
        Guid::parse("02:00:00:00:00:00:00:00").unwrap(),
        Guid::parse("02:00:00:00:00:00:00:ff").unwrap(),
    )
    .unwrap();
    let deps = Dependencies {
        sm: Arc::new(ib_sm::Noop),
        client,
        gate,
        metrics: Arc::new(Metrics::register(&mut Registry::default())),
        event_instance: "test".into(),
        events_dropped: Counter::default(),
        ready: watch::channel(false).0,
        stop: watch::channel(false).1,
        settings,
    };
    StateTask::new(State::new(range), mpsc::channel(16), deps)
}

fn view(uid: &str, resource_version: &str) -> PodView {
    PodView {
        uid: PodUid::from(uid),
        namespace: "default".into(),
        name: uid.into(),
        resource_version: resource_version.into(),
        node_name: Some("node-1".into()),
        host_network: false,
        phase: PodPhase::Running,
        deleting: false,
        networks: Some("ib".into()),
        created: 0,
        network_status: Vec::new(),
    }
}

/// A fresh list, a patch's answer or a re-read that was read before a pod's deletion, and arrives after
/// the watch delivered it, must not bring the pod back: it would keep its GUIDs with nothing left to
/// release them.
#[tokio::test]
async fn a_view_read_before_a_deletion_does_not_bring_the_pod_back() {
    let mut task = task();
    let uid = PodUid::from("p");
    task.handle(Input::Leading(true));
    task.handle(Input::PodsReset { first: true, done: true, views: vec![view("p", "5")] });
    assert!(task.state.pod(&uid).is_some());
    task.handle(Input::PodDeleted(uid.clone()));
    assert!(task.state.pod(&uid).is_none());

    task.handle(Input::PodApplied(view("p", "6")));
    assert!(task.state.pod(&uid).is_none(), "a re-read brought the deleted pod back");

    let term = task.term;
    task.handle(Input::FreshPodsPage { term, views: vec![view("p", "6")], permit: None });
    task.handle(Input::FreshPodsEnd { term, result: Ok(Some("6".into())) });
    assert!(task.state.pod(&uid).is_none(), "a fresh list brought the deleted pod back");

    let patch = PodPatch {
        pod: view("p", "5").pod_ref(),
        resource_version: "5".into(),
        annotation: "ib".into(),
        guids: vec![],
    };
    task.handle(Input::PatchDone { term, patch, outcome: PatchOutcome::Applied(view("p", "6")) });
    assert!(task.state.pod(&uid).is_none(), "a patch's answer brought the deleted pod back");

    // Other pods are not affected.
    task.handle(Input::PodApplied(view("q", "7")));
    assert!(task.state.pod(&PodUid::from("q")).is_some());
}

/// The pages of a fresh list are taken only for the leadership it was read for, and the pods are read
/// for it only at the list's end.
#[tokio::test]
async fn a_fresh_list_counts_only_for_its_leadership_and_only_at_its_end() {
    let mut task = task();
    task.handle(Input::Leading(true));
    task.handle(Input::PodsReset { first: true, done: true, views: vec![view("gone", "3")] });
    task.handle(Input::Leading(false));
    task.handle(Input::Leading(true));
    let (old, term) = (task.term - 1, task.term);
    task.handle(Input::FreshPodsPage { term: old, views: vec![view("old", "4")], permit: None });
    task.handle(Input::FreshPodsEnd { term: old, result: Ok(Some("9".into())) });
    assert!(task.state.pod(&PodUid::from("old")).is_none(), "a page of an earlier leadership was taken");
    assert!(task.state.pod(&PodUid::from("gone")).is_some(), "the end of an earlier leadership's list was taken");

    task.handle(Input::FreshPodsPage { term, views: vec![view("new", "5")], permit: None });
    assert!(task.state.pod(&PodUid::from("new")).is_some());
    assert!(task.state.pod(&PodUid::from("gone")).is_some(), "a pod was dropped before the list ended");
    task.handle(Input::FreshPodsEnd { term, result: Ok(Some("9".into())) });
    assert!(task.state.pod(&PodUid::from("gone")).is_none(), "a pod missing from every page was kept");
    assert!(task.state.pod(&PodUid::from("new")).is_some());
}

fn record(pod: &str) -> ib_model::Record {
    ib_model::Record {
        owner: ib_model::InterfaceKey {
            pod: PodUid::from(pod),
            network: ib_model::NetworkRef::new("default", "ib"),
            interface: "idx_0".into(),
        },
        pod_namespace: "default".into(),
        pod_name: pod.into(),
        pkey: None,
        state: ib_model::RecordState::Member,
    }
}

/// The pages of the ownership records are taken only for the leadership they were read for, and the
/// records count as read only at the list's end; a failed list is read again.
#[tokio::test]
async fn records_count_only_for_their_leadership_and_only_at_their_end() {
    let mut task = task();
    task.handle(Input::Leading(true));
    task.handle(Input::Leading(false));
    task.handle(Input::Leading(true));
    let (old, term) = (task.term - 1, task.term);
    let g = |n| Guid::parse(&format!("02:00:00:00:00:00:00:{n:02x}")).unwrap();
    task.handle(Input::RecordsPage { term: old, records: vec![(g(1), record("old"))] });
    task.handle(Input::RecordsListed { term: old, result: Ok(true) });
    assert_eq!(task.state.record_count(), 0, "a page of an earlier leadership was taken");
    assert!(!task.state.records_known(), "the end of an earlier leadership's list was taken");

    task.handle(Input::RecordsPage { term, records: vec![(g(2), record("a"))] });
    assert_eq!(task.state.record_count(), 1);
    assert!(!task.state.records_known(), "records counted as read before their end");
    task.handle(Input::RecordsListed { term, result: Err(crate::records::RecordsError::NotLeader) });
    assert!(!task.state.records_known(), "a failed list counted as read");
    task.handle(Input::RecordsPage { term, records: vec![(g(2), record("a")), (g(3), record("b"))] });
    task.handle(Input::RecordsListed { term, result: Ok(true) });
    assert!(task.state.records_known());
    assert_eq!(task.state.record_count(), 2, "a record read twice counts once");
    assert_eq!(task.state.ledger().get(g(3)).map(|c| c.owner.pod.clone()), Some(PodUid::from("b")));
}
