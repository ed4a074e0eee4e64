//! Networks-annotation codec benchmarks: `cargo bench -p ib-model --bench annotation`.
//!
//! A planning round parses the annotation of every dirty pod (twice: once to record what is already
//! configured, once to plan the pod) and edits it once per pod it configures, so these are per-pod costs
//! of the planner.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use ib_model::annotation::{AnnotationError, MAX_ELEMENTS};
use ib_model::{Guid, NetworksAnnotation};

const NAMESPACE: &str = "default";
const SHORT: &str = "ib-a@net1,ib-a@net2";
const ONE_IB: &str = r#"[{"name":"ib-a","namespace":"default","interface":"net1"}]"#;
const TWO_IB: &str = r#"[{"name":"ib-a","namespace":"default","interface":"net1"},{"name":"ib-b","namespace":"default","interface":"net2"}]"#;
/// Partitions as NADs write them; the planner copies the NAD's text into `cni-args.pkey` unchanged.
const PKEYS: [&str; 4] = ["0x1", "0x2", "0x3", "0x4"];

/// A constant, so that GUID parsing stays out of the timed edit.
const FIRST_GUID: Guid = Guid::from_u64(0x0200_0000_0000_0000);

/// `n` InfiniBand interfaces in the JSON form users write, spread over four networks as a multi-rail pod's
/// are, so that the edit writes more than one pkey.
fn json_annotation(n: usize) -> String {
    let elements: Vec<String> = (0..n)
        .map(|i| {
            let network = ["ib-a", "ib-b", "ib-c", "ib-d"][i % 4];
            format!(r#"{{"name":"{network}","namespace":"default","interface":"net{}"}}"#, i + 1)
        })
        .collect();
    format!("[{}]", elements.join(","))
}

/// What the planner's patch does to a pod whose GUIDs were all generated and whose partitions are
/// joined: GUID into `cni-args`, the `configured` marker and pkey beside it, then the compact JSON.
fn configure(mut annotation: NetworksAnnotation) -> String {
    for index in 0..annotation.selections().len() {
        annotation.set_guid(index, Guid::from_u64(FIRST_GUID.as_u64() + index as u64), false);
        annotation.mark_configured(index, PKEYS[index % PKEYS.len()]);
    }
    annotation.to_json()
}

fn parse(c: &mut Criterion) {
    let two = json_annotation(2);
    // The cases must be the annotations named in their titles, or the numbers describe something else.
    assert_eq!(two, TWO_IB);
    assert_eq!(json_annotation(1), ONE_IB);
    assert_eq!(NetworksAnnotation::parse(SHORT, NAMESPACE).unwrap().selections().len(), 2);

    for (name, raw) in
        [("short form, 2 elements", SHORT), ("json, 1 IB selection", ONE_IB), ("json, 2 IB selections", TWO_IB)]
    {
        c.bench_function(&format!("parse {name}"), |b| {
            b.iter(|| NetworksAnnotation::parse(black_box(raw), black_box(NAMESPACE)).unwrap())
        });
    }
}

fn edit(c: &mut Criterion) {
    let one = configure(NetworksAnnotation::parse(ONE_IB, NAMESPACE).unwrap());
    // The edit must keep the user's keys first and in order, and add exactly what ib-sriov-cni reads.
    assert_eq!(
        one,
        r#"[{"name":"ib-a","namespace":"default","interface":"net1","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":"0x1"}}]"#
    );

    for n in [1, 2, 16] {
        let raw = json_annotation(n);
        let parsed = NetworksAnnotation::parse(&raw, NAMESPACE).unwrap();
        assert!(parsed.selections().iter().all(|s| !s.configured));
        assert!(
            NetworksAnnotation::parse(&configure(parsed.clone()), NAMESPACE)
                .unwrap()
                .selections()
                .iter()
                .all(|s| s.configured && s.guid.is_some())
        );

        // The planner parses once per pod anyway; this is what configuring adds on top of that.
        c.bench_function(&format!("edit+serialize, {n} interface(s)"), |b| {
            b.iter_batched(|| parsed.clone(), configure, BatchSize::SmallInput)
        });
        // From the raw annotation to the patch body: the codec's whole share of configuring one pod.
        c.bench_function(&format!("parse+edit+serialize, {n} interface(s)"), |b| {
            b.iter(|| configure(NetworksAnnotation::parse(black_box(&raw), NAMESPACE).unwrap()))
        });
    }
}

/// 240 KB, the size a hostile pod author can still store beside a few other annotations.
const HOSTILE_BYTES: usize = 240 * 1024;

/// Hostile and maximal annotations. Both 240 KB cases are refused by their element count (the codec
/// counts without building elements past the limit), so their cost is one pass over the text; the last
/// case is the largest annotation that is accepted, configured whole.
fn hostile(c: &mut Criterion) {
    let short = "a,".repeat(HOSTILE_BYTES / 2 - 1) + "a";
    let element = r#"{"name":"a"}"#;
    let json = format!("[{}]", vec![element; HOSTILE_BYTES / (element.len() + 1)].join(","));
    for raw in [&short, &json] {
        assert!(raw.len() > HOSTILE_BYTES - 16 && raw.len() <= HOSTILE_BYTES);
        assert!(matches!(
            NetworksAnnotation::parse(raw, NAMESPACE),
            Err(AnnotationError::TooManyElements { count, limit: MAX_ELEMENTS }) if count > 10_000
        ));
    }
    // MAX_ELEMENTS InfiniBand selections, each padded with a user field so the whole is 240 KB.
    let pad = "p".repeat(HOSTILE_BYTES / MAX_ELEMENTS - 50);
    let largest = format!(
        "[{}]",
        (0..MAX_ELEMENTS)
            .map(|i| format!(r#"{{"name":"ib-{}","interface":"net{i}","x-pad":"{pad}"}}"#, i % 4))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(largest.len() > HOSTILE_BYTES - 1024 && largest.len() <= HOSTILE_BYTES, "{}", largest.len());
    let configured = configure(NetworksAnnotation::parse(&largest, NAMESPACE).unwrap());
    let reparsed = NetworksAnnotation::parse(&configured, NAMESPACE).unwrap();
    assert!(reparsed.selections().len() == MAX_ELEMENTS && reparsed.selections().iter().all(|s| s.configured));

    let mut group = c.benchmark_group("hostile");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("parse 240 KB short form a,a,…", |b| {
        b.iter(|| NetworksAnnotation::parse(black_box(&short), NAMESPACE).map(|a| a.selections().len()))
    });
    group.bench_function("parse 240 KB JSON list", |b| {
        b.iter(|| NetworksAnnotation::parse(black_box(&json), NAMESPACE).map(|a| a.selections().len()))
    });
    group.bench_function("parse+edit+serialize 240 KB JSON, 64 elements", |b| {
        b.iter(|| configure(NetworksAnnotation::parse(black_box(&largest), NAMESPACE).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, parse, edit, hostile);
criterion_main!(benches);
