//! The executors against an emulated API server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ib_model::{PatchOutcome, PodPatch, PodRef, PodUid};
use kube_emulator::{EmulatorConfig, KubeEmulator, RunningEmulator};
use tokio::sync::mpsc;

use super::*;
use crate::config::LeaseTimings;
use crate::leader::LeaderElector;

/// Generous: the wait for a condition, never a bet on timing.
const DEADLINE: Duration = Duration::from_secs(60);
const CONCURRENCY: usize = 4;

#[test]
fn retry_delays_double_up_to_the_cap() {
    let cap = Duration::from_secs(5);
    let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n, cap).as_millis() as u64).collect();
    assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
    assert_eq!(retry_delay(u32::MAX, cap), cap);
}

/// The lease renewal the gate reads; writes are allowed while it is kept.
type Renewal = tokio::sync::watch::Sender<Option<Instant>>;

/// Executors writing to `emulator` as the leader, reporting on a channel of `capacity`.
fn executors(emulator: &RunningEmulator, capacity: usize) -> (Executors, mpsc::Receiver<Input>, Renewal) {
    let client = Client::try_from(kube::Config::new(emulator.url().parse().expect("url"))).expect("client");
    // The lease stays valid for the whole test: the gate must not be what stops a patch.
    let timings = LeaseTimings {
        duration: Duration::from_secs(3600),
        renew_deadline: Duration::from_secs(3000),
        retry_period: Duration::from_secs(2),
    };
    let (renewed, gate) = LeaderElector::new(client.clone(), "kube-system", "test".into(), timings).gate();
    renewed.send_replace(Some(Instant::now()));
    let settings = TaskSettings {
        max_retry: Duration::from_secs(1),
        drift_grace: Duration::from_secs(15),
        sm_timeout: Duration::from_secs(5),
        api_timeout: Duration::from_secs(30),
        patch_concurrency: CONCURRENCY,
        watch_namespace: None,
    };
    let (tx, rx) = mpsc::channel(capacity);
    (Executors::new(tx, Arc::new(ib_sm::Noop), client, gate, settings), rx, renewed)
}

/// A patch for a pod that does not exist: the API server answers 404.
fn patch(i: usize) -> PodPatch {
    let name = format!("p{i}");
    PodPatch {
        pod: PodRef { uid: PodUid::from(format!("uid-{i}").as_str()), namespace: "default".into(), name },
        resource_version: "1".into(),
        annotation: format!(
            "[{{\"name\":\"ib\",\"cni-args\":{{\"guid\":\"02:00:00:00:00:00:{:02x}:{:02x}\"}}}}]",
            i >> 8,
            i & 0xff
        ),
        guids: vec![],
    }
}

/// Waits for the next outcome a patch reports.
async fn next_patch_done(rx: &mut mpsc::Receiver<Input>) -> (PodPatch, PatchOutcome) {
    match tokio::time::timeout(DEADLINE, rx.recv()).await {
        Ok(Some(Input::PatchDone { patch, outcome, .. })) => (patch, outcome),
        Ok(Some(other)) => panic!("expected a patch outcome, got {other:?}"),
        Ok(None) => panic!("the executors' channel closed"),
        Err(_) => panic!("no patch outcome within {DEADLINE:?}"),
    }
}

/// A burst of 1,000 patches queued at once is sent by at most `patch_concurrency` tasks: the task set
/// never holds more, whether they are waiting for the API server or for the state task to take their
/// outcome (the small channel), and every patch is sent exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_patches_never_run_more_tasks_than_the_patch_concurrency() {
    let emulator = KubeEmulator::start(EmulatorConfig::default()).await.expect("emulator");
    let (mut exec, mut rx, _renewed) = executors(&emulator, 8);
    const PATCHES: usize = 1_000;
    let mut most = 0;
    for i in 0..PATCHES {
        exec.patch(1, patch(i));
        most = most.max(exec.tasks.len());
        assert!(exec.tasks.len() <= CONCURRENCY, "{} tasks after queueing {} patches", exec.tasks.len(), i + 1);
    }
    let mut done = HashSet::new();
    while done.len() < PATCHES {
        let (patch, outcome) = next_patch_done(&mut rx).await;
        assert_eq!(outcome, PatchOutcome::NotFound, "{}", patch.pod);
        assert!(done.insert(patch.pod.name.clone()), "{} reported twice", patch.pod);
        exec.reap();
        most = most.max(exec.tasks.len());
        assert!(exec.tasks.len() <= CONCURRENCY, "{} tasks with {} patches done", exec.tasks.len(), done.len());
    }
    assert_eq!(most, CONCURRENCY, "the patches were sent {most} at a time, not {CONCURRENCY}");
    let patches = emulator.handle().requests().iter().filter(|r| r.method == "PATCH").count();
    assert_eq!(patches, PATCHES, "PATCH requests received");
}

/// Senders wait idle when the queue is empty: a patch queued later wakes one, also once all
/// `patch_concurrency` senders exist and no new one may start, so no patch is left waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_queued_while_the_senders_are_idle_is_sent() {
    let emulator = KubeEmulator::start(EmulatorConfig::default()).await.expect("emulator");
    let (mut exec, mut rx, _renewed) = executors(&emulator, 1);
    for round in 0..CONCURRENCY * 3 {
        exec.patch(1, patch(round));
        let (sent, outcome) = next_patch_done(&mut rx).await;
        assert_eq!(sent.pod.name, format!("p{round}"));
        assert_eq!(outcome, PatchOutcome::NotFound);
        exec.reap();
        assert!(exec.tasks.len() <= CONCURRENCY, "{} tasks after round {round}", exec.tasks.len());
    }
    assert_eq!(exec.patches.lock().senders, CONCURRENCY);
}

/// Aborted senders give their places back, so patches queued after a shutdown still find a sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_aborted_at_shutdown_give_their_places_back() {
    let emulator = KubeEmulator::start(EmulatorConfig::default()).await.expect("emulator");
    // Nobody reads the channel: the senders wait on it holding their places.
    let (mut exec, _rx, _renewed) = executors(&emulator, 1);
    for i in 0..20 {
        exec.patch(1, patch(i));
    }
    assert_eq!(exec.patches.lock().senders, CONCURRENCY);
    exec.shutdown().await;
    assert_eq!(exec.patches.lock().senders, 0);
}

#[test]
fn a_join_is_held_for_at_most_half_a_round_trip_and_only_while_more_are_coming() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    // UFM at 200 ms: up to 100 ms, while more joins wait for their record.
    assert_eq!(burst_hold(t0, t0, ms(200), true), Some(ms(100)));
    assert_eq!(burst_hold(t0, t0 + ms(60), ms(200), true), Some(ms(40)));
    assert_eq!(burst_hold(t0, t0 + ms(100), ms(200), true), None);
    assert_eq!(burst_hold(t0, t0 + ms(20), ms(200), false), None, "nothing else is coming: send now");
    // A fast subnet manager: no wait worth having.
    assert_eq!(burst_hold(t0, t0, Duration::ZERO, true), None);
    assert_eq!(burst_hold(t0, t0, ms(10), false), None);
    // However slow it is, never more than the cap.
    assert_eq!(burst_hold(t0, t0, ms(10_000), true), Some(MAX_BURST_HOLD));
}

#[test]
fn a_first_join_waits_a_sixteenth_of_a_round_trip_for_a_second() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    // UFM at 200 ms: 12.5 ms, then no longer.
    assert_eq!(burst_hold(t0, t0, ms(200), false), Some(Duration::from_micros(12_500)));
    assert_eq!(burst_hold(t0, t0 + ms(10), ms(200), false), Some(Duration::from_micros(2_500)));
    assert_eq!(burst_hold(t0, t0 + ms(13), ms(200), false), None);
    // A slow one: capped.
    assert_eq!(burst_hold(t0, t0, ms(10_000), false), Some(MAX_FIRST_WAIT));
}

/// A hold armed for a burst's window does not keep a shorter one from waking the lanes in time.
#[tokio::test]
async fn a_shorter_hold_arms_an_earlier_flush() {
    let emulator = KubeEmulator::start(EmulatorConfig::default()).await.expect("emulator");
    let (mut exec, _rx, _renewal) = executors(&emulator, 64);
    exec.round_trip = Duration::from_secs(10);
    let join = |guid: u64| SmRequest {
        op: SmOp::Add,
        pkey: ib_model::PKey::new(0x10).expect("pkey"),
        guids: vec![ib_model::Guid::from_u64(guid)],
        options: ib_model::partition::PartitionOptions::default(),
        must_exist: false,
        partition_name: None,
    };
    exec.submit_sm(join(1));
    // Records still being written: held for the window (capped at 250 ms).
    exec.flush_lanes(1, &|_| true);
    let window_due = exec.lanes_armed.expect("armed for the window");
    // Written: held only for the first moments, so the flush is armed again, earlier.
    let flushed = Instant::now();
    exec.flush_lanes(1, &|_| false);
    let first_due = exec.lanes_armed.expect("armed");
    assert!(first_due < window_due && first_due <= flushed + MAX_FIRST_WAIT, "{first_due:?} {window_due:?}");
    let lane = &exec.lanes[&ib_model::PKey::new(0x10).expect("pkey")];
    assert!(!lane.busy && lane.queued.len() == 1, "still held");
    exec.shutdown().await;
}

#[test]
fn the_round_trip_rises_at_once_and_falls_gradually() {
    let ms = Duration::from_millis;
    assert_eq!(next_round_trip(ms(1), ms(400)), ms(400));
    assert_eq!(next_round_trip(ms(400), ms(0)), ms(300));
    assert_eq!(next_round_trip(ms(300), ms(300)), ms(300));
}
