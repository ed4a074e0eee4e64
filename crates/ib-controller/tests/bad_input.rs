//! Every kind of bad input gives a clear Event naming the problem, leaves other pods alone and loses
//! nothing already configured.

mod common;

use common::{Cluster, IB5, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_is_reported_and_harms_nobody() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    cluster.nad("default", "zero", r#"{"type":"ib-sriov","pkey":"0x0"}"#);
    cluster.nad("default", "mgmt", r#"{"type":"ib-sriov","pkey":"0x7fff"}"#);
    cluster.nad("default", "wide", r#"{"type":"ib-sriov","pkey":"0x8000"}"#);
    cluster.nad("default", "decimal", r#"{"type":"ib-sriov","pkey":"1234"}"#);
    cluster.nad("default", "broken", r#"{"type":"ib-sriov","pkey":"#);
    cluster.nad("default", "plain", r#"{"type":"macvlan"}"#);
    let controller = cluster.controller("a", &[]).await;
    cluster.pod("default", "good-before", "ib");
    cluster.wait_configured("default", "good-before", 1).await;

    let cases: [(&str, &str, &str, &str); 12] = [
        ("unparsable", "[{", "InvalidNetworkAnnotation", "not valid JSON"),
        ("bare-object", r#"{"name":"ib"}"#, "InvalidNetworkAnnotation", "JSON list"),
        ("non-string", r#"[{"name":"ib","cni-args":{"guid":7}}]"#, "InvalidNetworkAnnotation", "cni-args.guid"),
        (
            "out-of-range",
            r#"[{"name":"ib","cni-args":{"guid":"04:00:00:00:00:00:00:01"}}]"#,
            "GUIDOutOfRange",
            "04:00:00:00:00:00:00:01",
        ),
        ("malformed-guid", r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:00:01"}}]"#, "InvalidGUID", "6-byte"),
        ("pkey-zero", "zero", "InvalidNetwork", "0x0000"),
        ("pkey-7fff", "mgmt", "InvalidNetwork", "management"),
        ("pkey-8000", "wide", "InvalidNetwork", "15 bits"),
        ("pkey-decimal", "decimal", "InvalidNetwork", "\"1234\""),
        ("nad-missing", "nowhere", "NetworkNotFound", "default/nowhere"),
        ("nad-bad-json", "broken", "InvalidNetwork", "not valid JSON"),
        ("bad-name", "Upper_Case", "InvalidNetworkAnnotation", "Upper_Case"),
    ];
    for (name, networks, _, _) in &cases {
        cluster.pod("default", name, networks);
    }
    // A non-IB pod and a good pod created after the bad ones.
    cluster.pod("default", "not-ib", "plain");
    cluster.pod("default", "good-after", "ib");
    cluster.wait_configured("default", "good-after", 1).await;

    for (name, _, reason, words) in &cases {
        let events = wait_for(&format!("an Event on {name}"), || {
            let events = cluster.events_for(name);
            (!events.is_empty()).then_some(events)
        })
        .await;
        let (got_reason, note) = &events[0];
        assert_eq!(got_reason, reason, "{name}: {note}");
        assert!(note.contains(words), "{name}: {note}");
        let nets = cluster.networks("default", name);
        assert!(
            nets.as_array().is_none_or(|a| a.iter().all(|e| e["cni-args"].get("mellanox.infiniband.app").is_none())),
            "{name} must stay unconfigured"
        );
    }
    assert!(cluster.events_for("not-ib").iter().all(|(r, _)| r != "NetworkNotFound"));
    // The first pod kept its configuration and membership throughout.
    let converged = cluster.wait_converged().await;
    assert_eq!(converged.len(), 2);
    controller.shutdown().await;
}
