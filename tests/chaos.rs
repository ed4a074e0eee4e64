//! The CI version of the chaos soak: a few seeds, a few dozen pods, controller processes SIGKILLed at
//! random, and hostile tenants (forged claims, oversized and duplicate-heavy annotations, requested
//! GUIDs, cross-namespace references) at a small size; the last seed runs on a pool of 8 GUIDs. The long
//! run is `cargo run --release -p ib-chaos -- --seeds 10 --pods 300` (RELIABILITY.md).

use std::time::Duration;

use ib_chaos::{HostileOptions, SoakOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_keeps_every_invariant() {
    let dir = std::env::temp_dir().join(format!("ib-chaos-ci-{}", std::process::id()));
    let mut failures = Vec::new();
    for (seed, small_pool) in [(1, None), (2, None), (3, None), (4, Some(8))] {
        let options = SoakOptions {
            seed,
            pods: 40,
            pkeys: 3,
            replicas: 2,
            fault_time: Duration::from_secs(8),
            converge_deadline: Duration::from_secs(90),
            controller: env!("CARGO_BIN_EXE_ib-kubernetes").into(),
            work_dir: dir.join(format!("seed-{seed}")),
            kills: true,
            hostile: Some(HostileOptions::small()),
            small_pool,
        };
        let report = run(&options).await.expect("soak runs");
        println!(
            "seed {seed}: pods {} live {} interfaces {} hostile {} (given {}) {:?} pool {:?} exhausted {} kills {} faults {:?} converged in {:?} s, violations {}",
            report.pods_created,
            report.pods_live,
            report.interfaces_configured,
            report.hostile_pods,
            report.hostile_interfaces_given,
            report.attacks,
            report.small_pool,
            report.pool_exhausted,
            report.kills,
            report.faults,
            report.converge_seconds,
            report.violations.len()
        );
        for line in ib_chaos::invariants::summary(&report.violations, 8) {
            println!("    {line}");
        }
        assert!(report.hostile_pods >= HostileOptions::small().pods, "seed {seed}: every hostile pod was created");
        if !report.violations.is_empty() || report.converge_seconds.is_none() {
            failures.push(format!(
                "seed {seed}: {} violations, converged {:?} (replica logs in {})",
                report.violations.len(),
                report.converge_seconds,
                options.work_dir.display()
            ));
            continue;
        }
        assert!(report.interfaces_configured > 0);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
