//! `opensm-bench`: how long a user waits from creating a pod to its partition in the port's P_Key
//! table, with a real OpenSM on a simulated fabric (the SM's sweep included), at a steady rate and for
//! a burst; and what a burst costs in `partitions.conf` rewrites and OpenSM reloads.
//!
//! `cargo run --release -p ib-fabric --bin opensm-bench -- [--steady 20] [--rate 1] [--burst 200]`
//!
//! Exits with status 2 and the reason when ibsim, OpenSM or the diagnostics are not installed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ib_controller::{Config, Controller};
use ib_fabric::{Fabric, FabricSpec, Host, missing_tools};
use ib_sm::opensm::{OpenSmConfig, Reload};
use ib_sm::{EnvMap, OpenSm};
use kube_emulator::{EmulatorConfig, EmulatorHandle, KubeEmulator, Resource};
use serde_json::{Value, json};

const POOL_FIRST: u64 = 0x0200_0000_0000_0100;
const PKEYS: [u16; 4] = [0x21, 0x22, 0x23, 0x24];
const NS: &str = "bench";
/// Bounds every wait; a healthy run needs a small part of it.
const DEADLINE: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(20);
/// Ports read at once when checking many pods.
const QUERY_THREADS: usize = 8;
const SITE: &str = "Default=0x7fff, ipoib : ALL=full ;\n";

struct Args {
    steady: usize,
    rate: f64,
    burst: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { steady: 20, rate: 1.0, burst: 200 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: not a valid value: {value:?}");
        match flag.as_str() {
            "--steady" => args.steady = value.parse().map_err(|_| bad())?,
            "--rate" => args.rate = value.parse().ok().filter(|r: &f64| r.is_finite() && *r > 0.0).ok_or_else(bad)?,
            "--burst" => args.burst = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown option {flag}; options: --steady N --rate PODS_PER_S --burst N")),
        }
    }
    let most = ib_fabric::MAX_HOSTS;
    if args.steady.max(args.burst) > most || args.steady.max(args.burst) == 0 {
        return Err(format!("--steady and --burst must be between 1 and {most} (one fabric port per pod)"));
    }
    Ok(args)
}

fn pod(name: &str, network: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "annotations": {"k8s.v1.cni.cncf.io/networks": network}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    })
}

/// The pod's configured GUID, once the controller has written it.
fn configured_guid(api: &EmulatorHandle, name: &str) -> Option<u64> {
    let pod = api.get(Resource::Pods, NS, name)?;
    let raw = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str()?;
    let nets: Value = serde_json::from_str(raw).ok()?;
    let e = nets.as_array()?.first()?;
    if e["cni-args"]["mellanox.infiniband.app"] != "configured" {
        return None;
    }
    Some(ib_model::Guid::parse(e["cni-args"]["guid"].as_str()?).ok()?.as_u64())
}

/// Per pod: created → configured annotation, created → P_Key on its port.
#[derive(Default)]
struct Track {
    created: BTreeMap<String, (Instant, u16)>,
    guid: BTreeMap<String, u64>,
    configured: BTreeMap<String, Duration>,
    visible: BTreeMap<String, Duration>,
}

impl Track {
    fn pending(&self) -> usize {
        self.created.len() - self.visible.len()
    }

    /// One pass: the annotations of the pods not configured yet (cheap, read first so that a slow pass
    /// over the ports cannot delay them), then the ports of the configured pods not yet visible, read
    /// by a few threads at once.
    fn poll(&mut self, api: &EmulatorHandle, fabric: &Fabric) -> Result<(), String> {
        for (name, (at, _)) in &self.created {
            if !self.guid.contains_key(name)
                && let Some(g) = configured_guid(api, name)
            {
                self.configured.insert(name.clone(), at.elapsed());
                self.guid.insert(name.clone(), g);
            }
        }
        let todo: Vec<(&String, u64, u16, Instant)> = self
            .created
            .iter()
            .filter(|(name, _)| !self.visible.contains_key(*name))
            .filter_map(|(name, (at, pkey))| Some((name, *self.guid.get(name)?, *pkey, *at)))
            .collect();
        let seen: Vec<Result<Option<(String, Duration)>, String>> = std::thread::scope(|scope| {
            let chunks: Vec<_> = todo
                .chunks(todo.len().div_ceil(QUERY_THREADS).max(1))
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for (name, guid, pkey, at) in chunk {
                            out.push(match fabric.pkeys(*guid) {
                                Ok(t) => Ok(t.contains(&(*pkey, true)).then(|| ((*name).clone(), at.elapsed()))),
                                Err(e) => Err(e.to_string()),
                            });
                        }
                        out
                    })
                })
                .collect();
            chunks.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        for s in seen {
            if let Some((name, d)) = s? {
                self.visible.insert(name, d);
            }
        }
        Ok(())
    }
}

fn percentiles(d: &BTreeMap<String, Duration>) -> String {
    let mut ms: Vec<f64> = d.values().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return "none".into();
    }
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    format!("p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms", at(0.5), at(0.9), at(0.99), at(1.0))
}

async fn wait(what: &str, mut check: impl FnMut() -> Result<bool, String>) -> Result<Duration, String> {
    let start = Instant::now();
    while !check()? {
        if start.elapsed() > DEADLINE {
            return Err(format!("timed out after {DEADLINE:?} waiting for {what}"));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(start.elapsed())
}

/// Deletes the pods and waits until none of their ports holds one of the bench's P_Keys.
async fn delete_all(api: &EmulatorHandle, fabric: &Fabric, track: &Track) -> Result<Duration, String> {
    let start = Instant::now();
    for name in track.created.keys() {
        api.delete_with_grace(Resource::Pods, NS, name, Some(0)).map_err(|e| format!("deleting {name}: {e}"))?;
    }
    let mut left: Vec<u64> = track.guid.values().copied().collect();
    wait("the deleted pods' P_Keys to leave their ports", || {
        let mut still = Vec::new();
        for g in &left {
            if fabric.pkeys(*g).map_err(|e| e.to_string())?.iter().any(|(p, _)| PKEYS.contains(p)) {
                still.push(*g);
            }
        }
        left = still;
        Ok(left.is_empty())
    })
    .await?;
    Ok(start.elapsed())
}

async fn run(args: Args) -> Result<(), String> {
    let ports = args.steady.max(args.burst);
    let hosts: Vec<Host> = (0..ports as u64).map(|i| Host::port(POOL_FIRST + i)).collect();
    let fabric_start = Instant::now();
    let fabric = Fabric::start(FabricSpec { hosts, partitions: SITE.into(), deadline: DEADLINE })
        .await
        .map_err(|e| format!("the simulated fabric: {e}"))?;
    println!(
        "fabric: 1 switch, {ports} pool ports + the SM's host, up in {:.1} s",
        fabric_start.elapsed().as_secs_f64()
    );

    let kube = KubeEmulator::start(EmulatorConfig::default()).await.map_err(|e| format!("kube emulator: {e}"))?;
    let api = kube.handle();
    for pkey in PKEYS {
        let config = format!(
            r#"{{"type":"ib-sriov","cniVersion":"0.3.1","name":"ib-{pkey:02x}","pkey":"{pkey:#x}","link_state":"enable","ipam":{{}}}}"#
        );
        let nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                         "metadata": {"name": format!("ib-{pkey:02x}"), "namespace": NS}, "spec": {"config": config}});
        api.create(Resource::NetworkAttachmentDefinitions, nad).map_err(|e| format!("NAD: {e}"))?;
    }
    let last = ib_model::Guid::from_u64(POOL_FIRST + ports as u64 - 1).to_string();
    let first = ib_model::Guid::from_u64(POOL_FIRST).to_string();
    let file = fabric.partitions_file().display().to_string();
    let pid = fabric.pid_file().display().to_string();
    let env: EnvMap = [
        ("DAEMON_SM_PLUGIN", "opensm"),
        ("OPENSM_PARTITIONS_FILE", file.as_str()),
        ("OPENSM_PID_FILE", pid.as_str()),
        ("GUID_POOL_RANGE_START", first.as_str()),
        ("GUID_POOL_RANGE_END", last.as_str()),
        ("ADMIN_ADDRESS", "127.0.0.1:0"),
        ("K8S_NODE", "bench"),
        ("POD_UID", "opensm-bench"),
        ("POD_NAMESPACE", "kube-system"),
    ]
    .into_iter()
    .collect();
    let config = Config::from_env(&env, None).map_err(|e| format!("controller configuration: {e}"))?;
    let sm = Arc::new(OpenSm::new(OpenSmConfig::new(fabric.partitions_file(), Reload::PidFile(fabric.pid_file()))));
    let client = kube::Client::try_from(kube::Config::new(kube.url().parse().map_err(|e| format!("url: {e}"))?))
        .map_err(|e| format!("kube client: {e}"))?;
    let controller = Controller::start(config, client, sm.clone()).await.map_err(|e| format!("controller: {e}"))?;
    let mut leading = controller.leading();
    tokio::time::timeout(DEADLINE, leading.wait_for(|l| *l))
        .await
        .map_err(|_| "the controller did not lead".to_owned())?
        .map_err(|_| "the controller stopped".to_owned())?;

    // Steady: one pod every 1/rate s, each visible on its port before the figures are taken.
    let before = sm.stats();
    let mut steady = Track::default();
    let started = tokio::time::Instant::now();
    for i in 0..args.steady {
        let pkey = PKEYS[i % PKEYS.len()];
        let name = format!("steady-{i}");
        let due = started + Duration::from_secs_f64(i as f64 / args.rate);
        while tokio::time::Instant::now() < due {
            steady.poll(&api, &fabric)?;
            tokio::time::sleep(POLL.min(due.saturating_duration_since(tokio::time::Instant::now()))).await;
        }
        api.create(Resource::Pods, pod(&name, &format!("ib-{pkey:02x}"))).map_err(|e| format!("pod: {e}"))?;
        steady.created.insert(name, (Instant::now(), pkey));
    }
    wait("the steady pods on their ports", || {
        steady.poll(&api, &fabric)?;
        Ok(steady.pending() == 0)
    })
    .await?;
    let after = sm.stats();
    println!("\nsteady: {} pods at {}/s on {} P_Keys", args.steady, args.rate, PKEYS.len());
    println!("  created -> configured annotation: {}", percentiles(&steady.configured));
    println!("  created -> P_Key in the port's table: {}", percentiles(&steady.visible));
    println!(
        "  {} batches, {} rewrites, {} reloads",
        after.batches - before.batches,
        after.rewrites - before.rewrites,
        after.reloads - before.reloads
    );
    let removed = delete_all(&api, &fabric, &steady).await?;
    println!("  deleted all: gone from the ports after {:.0} ms", removed.as_secs_f64() * 1000.0);

    // Burst: every pod at once, spread over the four P_Keys.
    let before = sm.stats();
    let mut burst = Track::default();
    let started = Instant::now();
    for i in 0..args.burst {
        let pkey = PKEYS[i % PKEYS.len()];
        let name = format!("burst-{i}");
        api.create(Resource::Pods, pod(&name, &format!("ib-{pkey:02x}"))).map_err(|e| format!("pod: {e}"))?;
        burst.created.insert(name, (Instant::now(), pkey));
    }
    let create_ms = started.elapsed().as_secs_f64() * 1000.0;
    wait("the burst's pods on their ports", || {
        burst.poll(&api, &fabric)?;
        Ok(burst.pending() == 0)
    })
    .await?;
    let all_visible = started.elapsed();
    let after = sm.stats();
    let all_configured = burst.configured.values().max().copied().unwrap_or_default();
    println!(
        "\nburst: {} pods created at once ({create_ms:.0} ms of create calls) on {} P_Keys",
        args.burst,
        PKEYS.len()
    );
    println!("  created -> configured annotation: {}", percentiles(&burst.configured));
    println!("  created -> P_Key in the port's table: {}", percentiles(&burst.visible));
    println!(
        "  all configured after {:.0} ms, all on their ports after {:.0} ms",
        all_configured.as_secs_f64() * 1000.0,
        all_visible.as_secs_f64() * 1000.0
    );
    println!(
        "  cost: {} batches, {} partitions.conf rewrites, {} OpenSM reloads",
        after.batches - before.batches,
        after.rewrites - before.rewrites,
        after.reloads - before.reloads
    );
    let before = sm.stats();
    let removed = delete_all(&api, &fabric, &burst).await?;
    let after = sm.stats();
    println!(
        "  deleted all: gone from the ports after {:.0} ms; {} rewrites, {} reloads",
        removed.as_secs_f64() * 1000.0,
        after.rewrites - before.rewrites,
        after.reloads - before.reloads
    );
    if fabric.log().contains("PARSE ERROR") {
        return Err("OpenSM refused the partitions file; see its log".into());
    }
    controller.shutdown().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("opensm-bench: {e}");
            std::process::exit(64);
        }
    };
    if let Some(missing) = missing_tools() {
        eprintln!("opensm-bench: cannot run: {missing} (apt-get install ibsim-utils opensm infiniband-diags)");
        std::process::exit(2);
    }
    if let Err(e) = run(args).await {
        eprintln!("opensm-bench: {e}");
        std::process::exit(1);
    }
}
