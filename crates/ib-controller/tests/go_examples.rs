//! The Go daemon's documented examples of what it writes into a pod's annotation, through the real controller: the annotations it writes read,
//! as Multus reads them, exactly as the Go daemon's do, every other field is kept, and UFM receives the
//! Go plugin's request bodies.

mod common;

use common::{Cluster, IB5, as_multus};
use serde_json::json;
use ufm_emulator::Endpoint;

fn add_bodies(cluster: &Cluster) -> Vec<String> {
    cluster.fabric().requests().into_iter().filter(|r| r.endpoint == Endpoint::AddGuids).map(|r| r.body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_one_to_five() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib-sriov-network", IB5);
    cluster.nad(
        "ml",
        "ib-net",
        r#"{"cniVersion":"0.3.1","name":"ib-net","plugins":[{"type":"ib-sriov","pkey":"0x00FF","capabilities":{"infinibandGUID":true}},{"type":"tuning"}]}"#,
    );
    cluster.nad("default", "guid-only", r#"{"type":"ib-sriov","cniVersion":"0.3.1"}"#);
    cluster.nad("other", "macvlan", r#"{"type":"macvlan","master":"eth0"}"#);
    let controller = cluster.controller("replica-a", &[]).await;

    // 1. Generated GUID in cni-args; the first GUID of the pool.
    cluster.pod("default", "ex1", r#"[{"name": "ib-sriov-network"}]"#);
    let nets = cluster.wait_configured("default", "ex1", 1).await;
    assert_eq!(
        as_multus(&nets, "default"),
        json!([{"name":"ib-sriov-network","namespace":"default","cni-args":{"guid":"02:00:00:00:00:00:00:00","mellanox.infiniband.app":"configured","pkey":"0x5"}}])
    );
    assert_eq!(
        add_bodies(&cluster),
        [
            r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000000"]}"#
        ]
    );

    // 2. Runtime-config capability and short form.
    cluster.pod("ml", "ex2", "ib-net@ib0");
    let nets = cluster.wait_configured("ml", "ex2", 1).await;
    assert_eq!(
        as_multus(&nets, "ml"),
        json!([{"name":"ib-net","namespace":"ml","interface":"ib0","infiniband-guid":"02:00:00:00:00:00:00:01","cni-args":{"mellanox.infiniband.app":"configured","pkey":"0x00FF"}}])
    );
    assert!(cluster.members(0xff).contains("0200000000000001"));

    // 3. A user GUID is used as written; other fields the user wrote stay.
    cluster.pod("default", "ex3", r#"[{"name":"ib-sriov-network","mac":"c2:b0:57:49:47:f1","cni-args":{"guid":"02:00:00:00:00:00:AB:CD","x":"y"}}]"#);
    let nets = cluster.wait_configured("default", "ex3", 1).await;
    assert_eq!(
        as_multus(&nets, "default"),
        json!([{"name":"ib-sriov-network","namespace":"default","mac":"c2:b0:57:49:47:f1","cni-args":{"guid":"02:00:00:00:00:00:AB:CD","x":"y","mellanox.infiniband.app":"configured","pkey":"0x5"}}])
    );
    assert!(cluster.members(5).contains("020000000000abcd"));

    // 4. Two interfaces on one network plus a non-IB network: one UFM request, both GUIDs.
    cluster.pod(
        "default",
        "ex4",
        r#"[{"name":"ib-sriov-network","interface":"ib0"},{"name":"ib-sriov-network"},{"name":"macvlan","namespace":"other"}]"#,
    );
    let nets = cluster.wait_configured("default", "ex4", 2).await;
    assert_eq!(nets[0]["cni-args"]["guid"], "02:00:00:00:00:00:00:02");
    assert_eq!(nets[1]["cni-args"]["guid"], "02:00:00:00:00:00:00:03");
    assert_eq!(nets[2], json!({"name":"macvlan","namespace":"other"}));
    assert_eq!(
        add_bodies(&cluster).last().map(String::as_str),
        Some(
            r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000002","0200000000000003"]}"#
        )
    );

    // 5. No pkey: GUID-only, no UFM request, `"pkey":""`.
    let before = cluster.fabric().requests().len();
    cluster.pod("default", "ex5", r#"[{"name": "guid-only"}]"#);
    let nets = cluster.wait_configured("default", "ex5", 1).await;
    assert_eq!(
        as_multus(&nets, "default"),
        json!([{"name":"guid-only","namespace":"default","cni-args":{"guid":"02:00:00:00:00:00:00:04","mellanox.infiniband.app":"configured","pkey":""}}])
    );
    let after: Vec<_> =
        cluster.fabric().requests().into_iter().skip(before).filter(|r| r.endpoint != Endpoint::Version).collect();
    assert!(after.iter().all(|r| r.endpoint != Endpoint::AddGuids), "{after:?}");

    // The other annotation of every pod is untouched.
    let pod = cluster.get_pod("default", "ex1").unwrap();
    assert_eq!(pod["metadata"]["annotations"]["team"], "ml");
    controller.shutdown().await;
}
