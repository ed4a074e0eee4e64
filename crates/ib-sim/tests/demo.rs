//! The demo end to end with a small workload: the real controller against both emulators, checked
//! through the JSON summary a script would read.

use ib_sim::demo::progress::ProgressMode;
use ib_sim::demo::{DemoOptions, run};
use serde_json::Value;

/// The check of the summary whose name starts with `prefix`; it passed and looked at something.
fn passed_check<'a>(json: &'a Value, prefix: &str) -> &'a Value {
    let checks = json["verification"]["checks"].as_array().unwrap();
    let found: Vec<&Value> = checks.iter().filter(|c| c["name"].as_str().unwrap().starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "{prefix}: {checks:#?}");
    assert_eq!(found[0]["passed"], true, "{:#}", found[0]);
    assert!(found[0]["checked"].as_u64().unwrap() > 0, "the check looked at nothing: {:#}", found[0]);
    found[0]
}

/// The partition options of the workload were checked: some GUIDs are limited members of their own
/// partition, every configured GUID is a limited member of the default limited partition, and the QoS
/// partition was compared with its NAD.
fn partition_options_were_verified(json: &Value, membership: &str, qos: &str) {
    assert_eq!(json["settings"]["default_limited_partition"], "0x0e");
    let interfaces = passed_check(json, "every live InfiniBand pod is configured")["detail"].as_str().unwrap();
    let configured: u64 = interfaces.split(", ").nth(1).and_then(|i| i.split(' ').next()).unwrap().parse().unwrap();
    let bits = passed_check(json, membership);
    assert!(!bits["detail"].as_str().unwrap().contains(" 0 limited"), "no limited member was seen: {bits:#}");
    assert!(bits["detail"].as_str().unwrap().contains("on ib-storage"), "{bits:#}");
    let shared = passed_check(json, "every configured GUID");
    assert_eq!(shared["checked"].as_u64().unwrap(), configured, "every configured interface's GUID: {shared:#}");
    let qos = passed_check(json, qos);
    assert_eq!(qos["checked"], 1, "{qos:#}");
    assert!(qos["detail"].as_str().unwrap().starts_with("0x000d of ib-qos: "), "{qos:#}");
    passed_check(json, "deleted and finished pods left their PKeys and the default limited partition");
    let by_network = &json["interfaces"]["by_network"];
    assert_eq!(by_network["ib-storage"]["options"], "limited, not at index 0");
    assert_eq!(by_network["ib-qos"]["options"], "QoS mtu_limit 4, service_level 2, rate_limit 100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_demo_verifies_and_reports_the_bad_pods() {
    let demo =
        run(DemoOptions { pods: 40, rate: 400.0, seed: 7, progress: ProgressMode::Off, opensm: false }).await.unwrap();
    let table = demo.summary.render();
    println!("{table}");
    let json: Value = serde_json::from_str(&serde_json::to_string(&demo.summary).unwrap()).unwrap();

    assert_eq!(json["verification"]["passed"], true, "{table}");
    assert!(json["verification"]["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true));

    let pods = &json["pods"];
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(n(&pods["created"]), 40);
    assert_eq!(n(&pods["bad"]), 2);
    assert_eq!(n(&pods["configured"]), n(&pods["infiniband"]), "every valid InfiniBand pod configured");
    assert_eq!(n(&pods["running"]), n(&pods["created"]) - n(&pods["bad"]), "every valid pod ran");
    assert_eq!(n(&pods["deleted"]), 8);
    assert_eq!(n(&pods["finished"]), 4);
    assert_eq!(n(&pods["live_at_end"]), 40 - 8 - 4);

    let interfaces = &json["interfaces"];
    assert_eq!(n(&interfaces["configured"]), n(&interfaces["infiniband"]));
    let guids = &json["guids"];
    assert_eq!(n(&guids["requested_by_pods"]), 1);
    assert_eq!(n(&guids["allocated_from_pool"]) + 1, n(&interfaces["configured"]));

    partition_options_were_verified(
        &json,
        "each membership is full or limited, and at index 0 or not, as its NAD says",
        "partitions with QoS have their NAD's QoS in UFM",
    );
    let ufm = &json["ufm"];
    assert!(n(&ufm["add_requests"]) >= 1 && n(&ufm["remove_requests"]) >= 1);
    assert!(n(&ufm["by_endpoint"]["set_qos"]) >= 1, "the QoS partition's QoS was set: {ufm:#}");
    assert_eq!(n(&ufm["failed"]), 0);
    assert!(ufm["mean_guids_per_add"].as_f64().unwrap() >= 1.0);

    let latency = &json["latency"];
    assert_eq!(n(&latency["pod_to_configured"]["samples"]), n(&pods["configured"]));
    assert!(latency["floor"]["total_ms"].as_f64().unwrap() > 0.0);

    let bad = json["events"]["bad_pods"].as_array().unwrap();
    assert_eq!(bad.len(), 2, "{bad:?}");
    let quoted: Vec<String> = bad.iter().map(|e| format!("{} {}", e["reason"], e["note"])).collect();
    assert!(quoted.iter().any(|q| q.contains("InvalidNetwork") && q.contains("0x7fff")), "{quoted:?}");
    assert!(quoted.iter().any(|q| q.contains("InvalidNetworkAnnotation")), "{quoted:?}");
    assert!(table.contains("PASSED"));

    let kubeconfig = demo.kubeconfig_path();
    assert!(kubeconfig.is_file());
    demo.shutdown().await;
    assert!(!kubeconfig.exists(), "the temporary directory is removed on shutdown");
}

/// `--opensm`: the same workload against the opensm backend and a real OpenSM on a simulated fabric;
/// the verdict is drawn from the ports' P_Key tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_a_real_opensm_verifies_against_the_ports() {
    if let Some(missing) = ib_fabric::missing_tools() {
        println!("SKIP: {missing} (apt-get install ibsim-utils opensm infiniband-diags)");
        return;
    }
    let demo =
        run(DemoOptions { pods: 30, rate: 50.0, seed: 3, progress: ProgressMode::Off, opensm: true }).await.unwrap();
    let table = demo.summary.render();
    println!("{table}");
    let json: Value = serde_json::from_str(&serde_json::to_string(&demo.summary).unwrap()).unwrap();
    assert_eq!(json["verification"]["passed"], true, "{table}");
    partition_options_were_verified(
        &json,
        "each port's membership bit is full or limited as its NAD says",
        "partitions with QoS carry their NAD's mtu=, rate=, sl= in partitions.conf",
    );
    let n = |v: &Value| v.as_u64().unwrap();
    let osm = &json["opensm"];
    assert_eq!(n(&osm["fabric_ports"]), 240);
    assert_eq!(n(&osm["ports_read"]), 240, "every pool port's table was read");
    assert!(n(&osm["reloads"]) >= 1 && n(&osm["reloads"]) <= n(&osm["partitions_file_rewrites"]));
    assert_eq!(json["ufm"]["add_requests"], 0, "UFM kept no partition of the run");
    assert!(table.contains("P_Key tables"), "{table}");
    demo.shutdown().await;
}

#[tokio::test]
async fn the_opensm_demo_refuses_a_workload_larger_than_its_fabric() {
    if ib_fabric::missing_tools().is_some() {
        let err = run(DemoOptions { pods: 30, opensm: true, progress: ProgressMode::Off, ..DemoOptions::default() })
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("apt-get install ibsim-utils"), "{err}");
        return;
    }
    let err = run(DemoOptions { pods: 500, opensm: true, progress: ProgressMode::Off, ..DemoOptions::default() })
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("more than the 240 ports"), "{err}");
}
