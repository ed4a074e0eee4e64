//! A subnet manager that cannot be listed when a leader starts: the listing is retried after a growing
//! wait (capped at `DAEMON_PERIODIC_UPDATE`), not every 250 ms for as long as it is down, and pods are
//! configured once it answers again.

mod common;

use common::{Cluster, IB5, wait_for};
use ufm_emulator::{Endpoint, FaultRule as UfmFault, Method};

fn listings(cluster: &Cluster) -> usize {
    cluster.fabric().requests_to(Endpoint::ListPkeys).len()
}

/// Lease renewals: the harness renews every second, so they count time on the controller's own clock
/// without the test measuring any.
fn renewals(cluster: &Cluster) -> usize {
    cluster.api().requests().iter().filter(|r| r.method == "PUT" && r.path.contains("/leases/")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_listing_is_retried_with_backoff() {
    let cluster = Cluster::start().await;
    cluster.nad("default", "ib", IB5);
    let down = cluster.fabric().inject(UfmFault::respond(
        Some(Method::GET),
        "/ufmRest/resources/pkeys*",
        503,
        "{\"error\":\"maintenance\"}",
    ));
    let controller = cluster.controller("a", &[("DAEMON_PERIODIC_UPDATE", "8")]).await;
    cluster.pod("default", "p", "ib");

    wait_for("the first listing", || (listings(&cluster) >= 1).then_some(())).await;
    let from = renewals(&cluster);
    wait_for("eight lease renewals", || (renewals(&cluster) >= from + 8).then_some(())).await;
    let tried = listings(&cluster);
    // Waits of 0.25, 0.5, 1, 2, 4 and 8 s fit about six attempts into eight seconds; retrying every
    // 250 ms would make about thirty.
    assert!(tried >= 3, "the listing was not retried: {tried} attempts");
    assert!(tried <= 9, "{tried} listings while the lease was renewed eight times: no backoff");
    assert!(
        cluster.networks("default", "p")[0]["cni-args"]["mellanox.infiniband.app"].is_null(),
        "nothing is configured before the subnet manager is read"
    );

    assert!(cluster.fabric().remove_fault(down));
    cluster.wait_configured("default", "p", 1).await;
    controller.shutdown().await;
}
