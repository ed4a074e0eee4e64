//! Partition options through the `opensm` backend, on a real OpenSM over a simulated fabric (the
//! `ib-fabric` harness): a limited member shows in its port's P_Key table with the membership bit
//! clear, a full member of the same partition with it set, and the partition's QoS is written into its
//! definition in `partitions.conf`, which OpenSM accepts.
//!
//! Needs the Debian packages `ibsim-utils`, `opensm` and `infiniband-diags` (`.ci/run` installs them);
//! without them the test prints `SKIP: <reason>` and does nothing else.

use std::collections::BTreeSet;
use std::time::Duration;

use ib_fabric::{Fabric, FabricSpec, Host, missing_tools};
use ib_model::partition::{Membership, MtuLimit, PartitionOptions, Qos, RateLimit};
use ib_model::{Guid, PKey};
use ib_sm::opensm::{OpenSmConfig, Reload};
use ib_sm::{OpenSm, SubnetManager};

/// OpenSM reprograms ports seconds after a reload; a loaded two-core machine can take much longer.
const DEADLINE: Duration = Duration::from_secs(180);
const FIRST: u64 = 0x0200_0000_0000_0200;
const PORTS: u64 = 4;
const SITE: &str = "Default=0x7fff, ipoib : ALL=full ;\n";

fn pkey(v: u32) -> PKey {
    PKey::new(v).expect("pkey")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_membership_and_qos_reach_a_real_opensm() {
    if let Some(reason) = missing_tools() {
        println!("SKIP: {reason} (apt-get install ibsim-utils opensm infiniband-diags)");
        return;
    }
    if std::env::var("DAEMON_SM_PLUGIN").is_ok_and(|p| p == "ufm") {
        println!("SKIP: this run selects the ufm exec plugin; the real-OpenSM test runs in the plain run");
        return;
    }
    let hosts: Vec<Host> = (0..PORTS).map(|i| Host::port(FIRST + i)).collect();
    let fabric = Fabric::start(FabricSpec { hosts, partitions: SITE.into(), deadline: DEADLINE })
        .await
        .expect("the simulated fabric starts");
    fabric
        .wait("OpenSM to program the default partition", || {
            Ok(fabric.pkeys(FIRST)?.contains(&(0x7fff, true)).then_some(()))
        })
        .await
        .expect("default partition");

    let mut config = OpenSmConfig::new(fabric.partitions_file(), Reload::PidFile(fabric.pid_file()));
    config.timeout = DEADLINE;
    let sm = OpenSm::new(config);
    sm.validate().await.expect("validate");
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| Guid::from_u64(FIRST + i));

    // A limited NAD with QoS, and a full member of the same partition next to it.
    let qos = Qos { mtu_limit: MtuLimit::Mtu4K, service_level: 2, rate_limit: RateLimit::from_gbps(100.0).unwrap() };
    let limited = PartitionOptions { membership: Membership::Limited, index0: false, ip_over_ib: true, qos: Some(qos) };
    sm.add_guids_with(pkey(0x30), &[a, b], &limited).await.expect("limited add");
    sm.add_guids_with(pkey(0x30), &[c], &PartitionOptions::default()).await.expect("full add");
    // The default limited partition of the cluster: every GUID joins it as a limited member, not at index 0.
    let shared = PartitionOptions { membership: Membership::Limited, index0: false, ..PartitionOptions::default() };
    sm.add_guids_with(pkey(0x31), &[a, b, c, d], &shared).await.expect("shared add");

    let want: BTreeSet<(u16, u64, bool)> = [
        (0x30, FIRST, false),
        (0x30, FIRST + 1, false),
        (0x30, FIRST + 2, true),
        (0x31, FIRST, false),
        (0x31, FIRST + 1, false),
        (0x31, FIRST + 2, false),
        (0x31, FIRST + 3, false),
    ]
    .into();
    let seen = fabric
        .wait("the memberships on the ports' P_Key tables", || {
            let now = fabric.memberships(FIRST..FIRST + PORTS, &[0x7fff])?;
            Ok((now == want).then_some(now))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; OpenSM log:\n{}", fabric.log()));
    assert_eq!(seen, want, "limited members have the membership bit clear, the full member has it set");

    let file = std::fs::read_to_string(fabric.partitions_file()).expect("read");
    // IBTA codes: mtu 5 is 4096 bytes, rate 15 is 100 Gb/s (4x EDR); the later full add set indx0.
    assert!(file.contains("ib-kubernetes-0x0030=0x0030,indx0,ipoib,mtu=5,rate=15,sl=2 :\n"), "{file}");
    assert!(
        file.contains("0x0200000000000200=limited, 0x0200000000000201=limited, 0x0200000000000202=full ;"),
        "{file}"
    );
    assert!(file.contains("ib-kubernetes-0x0031=0x0031,ipoib :\n"), "{file}");
    assert!(!fabric.log().contains("PARSE ERROR"), "OpenSM accepted the file:\n{}", fabric.log());

    // Everything leaves again, and the ports keep only the default partition.
    sm.remove_guids(pkey(0x30), &[a, b, c]).await.expect("remove");
    sm.remove_guids(pkey(0x31), &[a, b, c, d]).await.expect("remove");
    fabric
        .wait("the partitions to leave the ports", || {
            Ok(fabric.memberships(FIRST..FIRST + PORTS, &[0x7fff])?.is_empty().then_some(()))
        })
        .await
        .expect("removed");
}
