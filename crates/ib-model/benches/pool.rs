//! GUID pool benchmarks: `cargo bench -p ib-model --bench pool`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ib_model::{Guid, GuidPool, GuidRange};

fn default_range() -> GuidRange {
    GuidRange::new(Guid::parse("02:00:00:00:00:00:00:00").unwrap(), Guid::parse("02:ff:ff:ff:ff:ff:ff:ff").unwrap())
        .unwrap()
}

/// 1,000,000 GUIDs allocated, contiguous or every other one (1,000,000 free fragments).
fn with_million(fragmented: bool) -> GuidPool {
    let range = default_range();
    let step = if fragmented { 2 } else { 1 };
    let start = range.start().as_u64();
    let mut pool = GuidPool::new(range);
    for i in 0..1_000_000u64 {
        pool.allocate(Guid::from_u64(start + i * step)).unwrap();
    }
    pool
}

fn generate_release(c: &mut Criterion) {
    for (name, fragmented) in [("contiguous", false), ("fragmented", true)] {
        let mut pool = with_million(fragmented);
        c.bench_function(&format!("generate+release, 1M allocated, {name}"), |b| {
            b.iter(|| {
                let g = pool.generate().unwrap();
                pool.release(black_box(g)).unwrap();
            })
        });
        let mut pool = with_million(fragmented);
        let probe = Guid::from_u64(default_range().start().as_u64() + 777_777);
        c.bench_function(&format!("allocate+release specific, 1M allocated, {name}"), |b| {
            b.iter(|| {
                if pool.allocate(black_box(probe)).is_ok() {
                    pool.release(probe).unwrap();
                }
            })
        });
    }
}

/// The Go daemon's worst case (its allocation cursor scans one GUID at a time): after a restart 50,000 GUIDs from the range start are in
/// use and the cursor is back at the start; then 50,000 new interfaces need GUIDs. Go's scan needs about
/// 2.5·10^9 map lookups for this.
fn go_worst_case(c: &mut Criterion) {
    let range = default_range();
    let start = range.start().as_u64();
    c.bench_function("restart: 50k in use from range start, then 50k generations", |b| {
        b.iter_batched(
            || {
                let mut pool = GuidPool::new(range);
                for i in 0..50_000u64 {
                    pool.allocate(Guid::from_u64(start + i)).unwrap();
                }
                pool
            },
            |mut pool| {
                for _ in 0..50_000 {
                    black_box(pool.generate().unwrap());
                }
                pool
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, generate_release, go_worst_case);
criterion_main!(benches);
