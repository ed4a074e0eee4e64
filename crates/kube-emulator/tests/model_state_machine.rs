//! Random sequences of create / label patch / finalizer patch / stale patch / delete over HTTP,
//! checked step by step against a small model: outcomes, stored state, the global
//! resourceVersion, and that replaying the watch history from any resourceVersion yields exactly
//! the model's event suffix (in-process and over an HTTP watch).

mod common;

use common::NetworkAttachmentDefinition;
use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use kube_emulator::{ChangeKind, KubeEmulator, Resource, RunningEmulator};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const NAMES: usize = 4;
const KEYS: [&str; 2] = ["app", "tier"];
const VALUES: [&str; 2] = ["a", "b"];
const FINALIZER: &str = "example.com/hold";

#[derive(Clone, Debug)]
enum Op {
    Create(usize),
    SetLabel(usize, usize, Option<usize>),
    SetFinalizer(usize, bool),
    StalePatch(usize),
    Delete(usize),
    CheckReplay(usize),
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Obj {
    labels: BTreeMap<String, String>,
    finalizer: bool,
    terminating: bool,
    rv: u64,
}

#[derive(Clone, Debug, Default)]
struct Model {
    objects: BTreeMap<usize, Obj>,
    rv: u64,
    events: Vec<(u64, &'static str, usize)>,
}

/// What the server must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Code(u16),
}

fn name(i: usize) -> String {
    format!("obj-{i}")
}

impl Model {
    fn record(&mut self, kind: &'static str, i: usize) -> u64 {
        self.rv += 1;
        self.events.push((self.rv, kind, i));
        self.rv
    }

    fn modify(&mut self, i: usize, new: Obj) {
        let rv = self.record("MODIFIED", i);
        self.objects.insert(i, Obj { rv, ..new });
    }

    fn remove(&mut self, i: usize) {
        self.record("DELETED", i);
        self.objects.remove(&i);
    }

    /// The apiserver semantics this test holds the emulator to.
    fn step(&self, op: &Op) -> (Model, Outcome) {
        let mut m = self.clone();
        let outcome = match *op {
            Op::Create(i) => {
                if m.objects.contains_key(&i) {
                    Outcome::Code(409)
                } else {
                    let rv = m.record("ADDED", i);
                    m.objects.insert(i, Obj { rv, ..Obj::default() });
                    Outcome::Ok
                }
            }
            Op::SetLabel(i, k, v) => match m.objects.get(&i).cloned() {
                None => Outcome::Code(404),
                Some(old) => {
                    let mut new = old.clone();
                    match v {
                        Some(v) => new.labels.insert(KEYS[k].into(), VALUES[v].into()),
                        None => new.labels.remove(KEYS[k]),
                    };
                    if new != old {
                        m.modify(i, new);
                    }
                    Outcome::Ok
                }
            },
            Op::SetFinalizer(i, on) => match m.objects.get(&i).cloned() {
                None => Outcome::Code(404),
                Some(old) if on && !old.finalizer && old.terminating => Outcome::Code(422),
                Some(old) if old.finalizer == on => Outcome::Ok,
                Some(old) if !on && old.terminating => {
                    m.remove(i);
                    Outcome::Ok
                }
                Some(old) => {
                    m.modify(i, Obj { finalizer: on, ..old });
                    Outcome::Ok
                }
            },
            Op::StalePatch(i) => match m.objects.get(&i) {
                None => Outcome::Code(404),
                Some(_) => Outcome::Code(409),
            },
            Op::Delete(i) => match m.objects.get(&i).cloned() {
                None => Outcome::Code(404),
                Some(old) if old.finalizer && old.terminating => Outcome::Ok,
                Some(old) if old.finalizer => {
                    m.modify(i, Obj { terminating: true, ..old });
                    Outcome::Ok
                }
                Some(_) => {
                    m.remove(i);
                    Outcome::Ok
                }
            },
            Op::CheckReplay(_) => Outcome::Ok,
        };
        (m, outcome)
    }

    /// The starting version a replay check uses: 0 or just before some recorded event.
    fn replay_from(&self, pick: usize) -> u64 {
        let candidates: Vec<u64> = std::iter::once(0)
            .chain(self.events.iter().map(|(rv, _, _)| rv - 1))
            .chain(std::iter::once(self.rv))
            .collect();
        candidates[pick % candidates.len()]
    }

    fn suffix(&self, from: u64) -> Vec<(u64, &'static str, String)> {
        self.events.iter().filter(|(rv, _, _)| *rv > from).map(|(rv, kind, i)| (*rv, *kind, name(*i))).collect()
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Op> {
        let n = 0..NAMES;
        prop_oneof![
            3 => n.clone().prop_map(Op::Create),
            4 => (n.clone(), 0..KEYS.len(), proptest::option::of(0..VALUES.len()))
                .prop_map(|(i, k, v)| Op::SetLabel(i, k, v)),
            2 => (n.clone(), any::<bool>()).prop_map(|(i, on)| Op::SetFinalizer(i, on)),
            1 => n.clone().prop_map(Op::StalePatch),
            2 => n.prop_map(Op::Delete),
            2 => any::<usize>().prop_map(Op::CheckReplay),
        ]
        .boxed()
    }

    fn apply(state: Model, op: &Op) -> Model {
        state.step(op).0
    }
}

struct Emulated {
    runtime: tokio::runtime::Runtime,
    emulator: RunningEmulator,
    api: Api<NetworkAttachmentDefinition>,
    model: Model,
}

impl Emulated {
    fn outcome<T>(result: Result<T, kube::Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(kube::Error::Api(status)) => Outcome::Code(status.code),
            Err(other) => panic!("transport error: {other:?}"),
        }
    }

    fn run(&self, op: &Op) -> Outcome {
        let api = &self.api;
        let merge = |i: usize, patch: Value| {
            Self::outcome(self.runtime.block_on(api.patch(&name(i), &PatchParams::default(), &Patch::Merge(patch))))
        };
        match *op {
            Op::Create(i) => {
                let nad = common::nad("default", &name(i), "{}");
                Self::outcome(self.runtime.block_on(api.create(&PostParams::default(), &nad)))
            }
            Op::SetLabel(i, k, v) => merge(i, json!({ "metadata": { "labels": { KEYS[k]: v.map(|v| VALUES[v]) } } })),
            Op::SetFinalizer(i, on) => {
                let finalizers = if on { json!([FINALIZER]) } else { Value::Null };
                merge(i, json!({ "metadata": { "finalizers": finalizers } }))
            }
            Op::StalePatch(i) => {
                let stale = self.model.objects.get(&i).map_or(1, |o| o.rv + 1);
                merge(i, json!({ "metadata": { "resourceVersion": stale.to_string(), "labels": { "x": "y" } } }))
            }
            Op::Delete(i) => Self::outcome(self.runtime.block_on(api.delete(&name(i), &DeleteParams::default()))),
            Op::CheckReplay(pick) => {
                self.check_replay(self.model.replay_from(pick));
                Outcome::Ok
            }
        }
    }

    fn check_replay(&self, from: u64) {
        let expected = self.model.suffix(from);
        let replayed: Vec<(u64, &'static str, String)> = self
            .emulator
            .handle()
            .changes_since(Resource::NetworkAttachmentDefinitions, from)
            .expect("history retained")
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    ChangeKind::Added => "ADDED",
                    ChangeKind::Modified => "MODIFIED",
                    ChangeKind::Deleted => "DELETED",
                };
                (c.resource_version, kind, c.object["metadata"]["name"].as_str().unwrap_or("").to_string())
            })
            .collect();
        assert_eq!(replayed, expected, "in-process replay from {from}");
        // Over HTTP, a watch from 0 means "current state", so replay starts at 1 at the lowest.
        if from == 0 || expected.is_empty() {
            return;
        }
        let params = WatchParams::default().disable_bookmarks();
        let watched = self.runtime.block_on(async {
            let stream = self.api.watch(&params, &from.to_string()).await.expect("watch starts");
            tokio::time::timeout(
                Duration::from_secs(30),
                stream
                    .take(expected.len())
                    .map(|e| match e.expect("watch event") {
                        WatchEvent::Added(n) => (n.resource_version(), "ADDED", n.name_any()),
                        WatchEvent::Modified(n) => (n.resource_version(), "MODIFIED", n.name_any()),
                        WatchEvent::Deleted(n) => (n.resource_version(), "DELETED", n.name_any()),
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect::<Vec<_>>(),
            )
            .await
            .expect("replay arrives")
        });
        let watched: Vec<(u64, &'static str, String)> =
            watched.into_iter().map(|(rv, kind, n)| (rv.and_then(|r| r.parse().ok()).unwrap_or(0), kind, n)).collect();
        assert_eq!(watched, expected, "HTTP watch replay from {from}");
    }
}

impl StateMachineTest for Emulated {
    type SystemUnderTest = Emulated;
    type Reference = Reference;

    fn init_test(_: &Model) -> Emulated {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let emulator = runtime.block_on(KubeEmulator::start(common::test_config())).expect("emulator starts");
        let api = {
            let _guard = runtime.enter();
            Api::namespaced(common::client_for(&emulator), "default")
        };
        Emulated { runtime, emulator, api, model: Model::default() }
    }

    fn apply(mut sut: Emulated, _after: &Model, op: Op) -> Emulated {
        let (next, expected) = sut.model.step(&op);
        let actual = sut.run(&op);
        assert_eq!(actual, expected, "outcome of {op:?}");
        sut.model = next;
        sut
    }

    fn check_invariants(sut: &Emulated, after: &Model) {
        let handle = sut.emulator.handle();
        assert_eq!(handle.resource_version(), after.rv, "global resourceVersion");
        let (_, stored) = handle.list(Resource::NetworkAttachmentDefinitions, None);
        assert_eq!(stored.len(), after.objects.len(), "object count");
        for (i, obj) in &after.objects {
            let stored = handle
                .get(Resource::NetworkAttachmentDefinitions, "default", &name(*i))
                .unwrap_or_else(|| panic!("{} missing", name(*i)));
            let meta = &stored["metadata"];
            assert_eq!(meta["resourceVersion"], obj.rv.to_string());
            let labels: BTreeMap<String, String> =
                serde_json::from_value(meta.get("labels").cloned().unwrap_or(json!({}))).unwrap();
            assert_eq!(labels, obj.labels);
            let has_finalizer = meta["finalizers"].as_array().is_some_and(|f| !f.is_empty());
            assert_eq!(has_finalizer, obj.finalizer);
            assert_eq!(meta["deletionTimestamp"].is_string(), obj.terminating);
        }
    }

    fn teardown(sut: Emulated, _: Model) {
        let Emulated { runtime, emulator, .. } = sut;
        runtime.block_on(emulator.shutdown());
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn emulator_matches_model(sequential 1..40 => Emulated);
}
