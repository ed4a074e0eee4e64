//! The CI version of the chaos soak: a few seeds, a few dozen pods, controller processes SIGKILLed at
//! random. The long run is `cargo run --release -p ib-chaos -- --seeds 20 --pods 500` (RELIABILITY.md).

use std::time::Duration;

use ib_chaos::{SoakOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_keeps_every_invariant() {
    let dir = std::env::temp_dir().join(format!("ib-chaos-ci-{}", std::process::id()));
    for seed in [1, 2, 3] {
        let options = SoakOptions {
            seed,
            pods: 40,
            pkeys: 3,
            replicas: 2,
            fault_time: Duration::from_secs(6),
            converge_deadline: Duration::from_secs(90),
            controller: env!("CARGO_BIN_EXE_ib-kubernetes").into(),
            work_dir: dir.join(format!("seed-{seed}")),
            kills: true,
        };
        let report = run(&options).await.expect("soak runs");
        println!(
            "seed {seed}: pods {} live {} interfaces {} kills {} faults {:?} converged in {:?} s, violations {}",
            report.pods_created,
            report.pods_live,
            report.interfaces_configured,
            report.kills,
            report.faults,
            report.converge_seconds,
            report.violations.len()
        );
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:#?} (replica logs in {})",
            report.violations,
            options.work_dir.display()
        );
        assert!(report.converge_seconds.is_some());
        assert!(report.interfaces_configured > 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
