//! A real OpenSM on a simulated InfiniBand fabric: ibsim simulates one switch and a host port per
//! GUID asked for, OpenSM runs on it through `libumad2sim.so`, and the ports' P_Key tables are read
//! with `smpquery pkeys`, the way an administrator would. Used by the real-OpenSM integration test, the
//! demo's `--opensm` option and the `opensm-bench` benchmark.
//!
//! Needs the Debian packages `ibsim-utils`, `opensm` and `infiniband-diags`; [`missing_tools`] says
//! which are absent. Every process started here is killed and reaped when the [`Fabric`] is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const IBSIM: &str = "/usr/bin/ibsim";
pub const OPENSM: &str = "/usr/sbin/opensm";
pub const SMPQUERY: &str = "/usr/sbin/smpquery";
pub const IBNETDISCOVER: &str = "/usr/sbin/ibnetdiscover";
pub const UMAD2SIM: &str = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so";

/// One query of the simulated fabric (`smpquery`, `ibnetdiscover`) answers in milliseconds; a stuck
/// one is killed after this.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// Each simulated port reports room for this many P_Keys.
pub const PORT_PKEY_CAPACITY: usize = 64;
/// The host the SM and the query tools run on; its port is not one of the caller's.
const SM_HOST: &str = "H-sm";
const SM_NODE: u64 = 0x0300_0000_0000_0001;
const SM_PORT: u64 = 0x0300_0000_0000_0002;
/// One switch carries every host: a switch has at most 255 ports, three are kept for the SM's host
/// and spare.
pub const MAX_HOSTS: usize = 252;
const SWITCH: u64 = 0x0008_f104_0041_1a08;

#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    #[error("{0} (apt-get install ibsim-utils opensm infiniband-diags)")]
    MissingTools(String),
    #[error("a fabric needs between 1 and {MAX_HOSTS} host ports, got {0}")]
    PortCount(usize),
    #[error("port GUID {0:#018x} is listed twice or is the SM host's")]
    DuplicateGuid(u64),
    #[error("preparing the fabric's directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("starting {what}: {source}")]
    Spawn { what: &'static str, source: std::io::Error },
    #[error("{what} did not answer within {timeout:?}")]
    QueryTimeout { what: String, timeout: Duration },
    #[error("timed out after {deadline:?} waiting for {what}")]
    Timeout { what: String, deadline: Duration },
    #[error("port GUID {0:#018x} has no LID on this fabric")]
    UnknownPort(u64),
}

/// The absent tools, or `None` when everything the fabric needs is installed.
pub fn missing_tools() -> Option<String> {
    let missing: Vec<&str> =
        [IBSIM, OPENSM, SMPQUERY, IBNETDISCOVER, UMAD2SIM].into_iter().filter(|p| !Path::new(p).exists()).collect();
    (!missing.is_empty()).then(|| format!("{} not installed", missing.join(", ")))
}

/// A host port of the fabric.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub port_guid: u64,
}

impl Host {
    /// A host named after its port GUID.
    pub fn port(guid: u64) -> Host {
        Host { name: format!("H-{guid:016x}"), port_guid: guid }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct FabricSpec {
    pub hosts: Vec<Host>,
    /// The initial `partitions.conf` (the site's part).
    pub partitions: String,
    /// Bounds every wait: for the fabric to come up, and [`Fabric::wait`].
    pub deadline: Duration,
}

/// A process killed and reaped when dropped.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ibsim and OpenSM on a generated fabric, in a temporary directory.
pub struct Fabric {
    // Dropped in this order: OpenSM before the simulator it talks to, the directory last.
    opensm: Option<Running>,
    _ibsim: Running,
    lids: BTreeMap<u64, u16>,
    socket: String,
    deadline: Duration,
    dir: tempfile::TempDir,
}

/// One switch with a port per host, the SM's host last. ibsim gives a host's port 1 the node GUID plus
/// one, whatever port GUID is written after it, so node GUIDs are chosen for that.
pub fn topology(hosts: &[Host]) -> String {
    let mut all: Vec<(String, u64, u64)> =
        hosts.iter().map(|h| (h.name.clone(), h.port_guid.wrapping_sub(1), h.port_guid)).collect();
    all.push((SM_HOST.into(), SM_NODE, SM_PORT));
    let mut net = format!("switchguid=0x{SWITCH:016x}\nSwitch\t{} \"S-{SWITCH:016x}\"\n", all.len() + 2);
    for (i, (name, _, _)) in all.iter().enumerate() {
        let _ = writeln!(net, "[{}]\t\"{name}\"[1]", i + 1);
    }
    for (i, (name, node, port)) in all.iter().enumerate() {
        let _ = write!(
            net,
            "\ncaguid=0x{node:016x}\nCa\t1 \"{name}\"\n[1]({port:016x}) \t\"S-{SWITCH:016x}\"[{}]\n",
            i + 1
        );
    }
    net
}

/// Output of a command, killed if it runs longer than `timeout`.
fn output_within(mut command: Command, what: &str, timeout: Duration) -> Result<String, FabricError> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| FabricError::Spawn { what: "a fabric query", source })?;
    let Some(mut stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(FabricError::QueryTimeout { what: what.to_owned(), timeout });
    };
    // Read on a thread so that a full pipe cannot stall the wait below.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(FabricError::QueryTimeout { what: what.to_owned(), timeout });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = reader.join().unwrap_or_default();
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The non-zero entries of `smpquery pkeys` output, as (P_Key without the membership bit, full member).
pub fn parse_pkeys(out: &str) -> BTreeSet<(u16, bool)> {
    let mut table = BTreeSet::new();
    for line in out.lines() {
        let Some((_, values)) = line.split_once(':') else { continue };
        for v in values.split_whitespace() {
            if let Some(n) = v.strip_prefix("0x").and_then(|h| u16::from_str_radix(h, 16).ok())
                && n & 0x7fff != 0
            {
                table.insert((n & 0x7fff, n & 0x8000 != 0));
            }
        }
    }
    table
}

/// Port GUID → LID of every host port that has one, from `ibnetdiscover -p` output.
pub fn parse_lids(out: &str) -> BTreeMap<u64, u16> {
    let mut lids = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 3 && f[0] == "CA" {
            let guid = f[3].strip_prefix("0x").and_then(|g| u64::from_str_radix(g, 16).ok());
            // LID 0: not assigned yet.
            if let (Some(guid), Ok(lid @ 1..)) = (guid, f[1].parse::<u16>()) {
                lids.insert(guid, lid);
            }
        }
    }
    lids
}

impl Fabric {
    /// Starts ibsim and OpenSM and waits until every host port has a LID.
    pub async fn start(spec: FabricSpec) -> Result<Fabric, FabricError> {
        if spec.hosts.is_empty() || spec.hosts.len() > MAX_HOSTS {
            return Err(FabricError::PortCount(spec.hosts.len()));
        }
        let mut seen = BTreeSet::from([SM_PORT]);
        for h in &spec.hosts {
            if !seen.insert(h.port_guid) {
                return Err(FabricError::DuplicateGuid(h.port_guid));
            }
        }
        if let Some(missing) = missing_tools() {
            return Err(FabricError::MissingTools(missing));
        }
        let dir = tempfile::Builder::new().prefix("ib-fabric-").tempdir()?;
        // Unique per fabric: several fabrics of one process must not share ibsim's socket.
        let socket =
            format!("ibk{}-{}", std::process::id(), dir.path().file_name().unwrap_or_default().to_string_lossy());
        std::fs::write(dir.path().join("net"), topology(&spec.hosts))?;
        std::fs::write(dir.path().join("partitions.conf"), &spec.partitions)?;
        for sub in ["tmp", "cache"] {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        let ibsim_out = std::fs::File::create(dir.path().join("ibsim.log"))?;
        // ibsim keeps a console on stdin and ends at its end of file: the pipe stays open with the child.
        let ibsim = Command::new(IBSIM)
            .arg("-s")
            .arg(dir.path().join("net"))
            .env("IBSIM_SOCKNAME", &socket)
            .stdin(Stdio::piped())
            .stdout(ibsim_out.try_clone()?)
            .stderr(ibsim_out)
            .spawn()
            .map_err(|source| FabricError::Spawn { what: "ibsim", source })?;
        let ibsim = Running { child: ibsim };
        let mut fabric =
            Fabric { dir, socket, opensm: None, _ibsim: ibsim, lids: BTreeMap::new(), deadline: spec.deadline };
        let log = fabric.dir.path().join("ibsim.log");
        fabric
            .wait("ibsim to listen", || {
                Ok(std::fs::read_to_string(&log).unwrap_or_default().contains("sim>").then_some(()))
            })
            .await?;
        fabric.start_opensm()?;
        let want = spec.hosts.len() + 1;
        fabric.lids = fabric
            .wait("every host port to have a LID", || {
                let lids = fabric.discover()?;
                Ok((lids.len() == want).then_some(lids))
            })
            .await?;
        if let Some(h) = spec.hosts.iter().find(|h| !fabric.lids.contains_key(&h.port_guid)) {
            return Err(FabricError::UnknownPort(h.port_guid));
        }
        Ok(fabric)
    }

    fn start_opensm(&mut self) -> Result<(), FabricError> {
        let d = self.dir.path();
        let child = self
            .sim(OPENSM)
            .arg("-P")
            .arg(d.join("partitions.conf"))
            .arg("-f")
            .arg(d.join("osm.log"))
            .args(["-s", "0"])
            .env("OSM_TMP_DIR", d.join("tmp"))
            .env("OSM_CACHE_DIR", d.join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| FabricError::Spawn { what: "opensm", source })?;
        let running = Running { child };
        std::fs::write(self.pid_file(), format!("{}\n", running.child.id()))?;
        self.opensm = Some(running);
        Ok(())
    }

    /// A command of the simulated fabric: talks to ibsim through `libumad2sim.so` from the SM's host.
    pub fn sim(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("LD_PRELOAD", UMAD2SIM)
            .env("IBSIM_SOCKNAME", &self.socket)
            .env("SIM_HOST", SM_HOST)
            // libumad2sim keeps a sys-<pid> directory in the working directory of each process.
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    /// The `partitions.conf` OpenSM reads.
    pub fn partitions_file(&self) -> PathBuf {
        self.dir.path().join("partitions.conf")
    }

    /// OpenSM's pid, for the backend's reload signal.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("opensm.pid")
    }

    /// OpenSM's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("osm.log")).unwrap_or_default()
    }

    /// Port GUID → LID of the caller's host ports and the SM's.
    pub fn lids(&self) -> &BTreeMap<u64, u16> {
        &self.lids
    }

    /// Port GUID → LID of every host port that has one, asked of the fabric now.
    pub fn discover(&self) -> Result<BTreeMap<u64, u16>, FabricError> {
        let mut command = self.sim(IBNETDISCOVER);
        command.arg("-p");
        Ok(parse_lids(&output_within(command, "ibnetdiscover", QUERY_TIMEOUT)?))
    }

    /// The port's P_Key table: each non-zero entry as (P_Key without the membership bit, full member).
    pub fn pkeys(&self, guid: u64) -> Result<BTreeSet<(u16, bool)>, FabricError> {
        let lid = *self.lids.get(&guid).ok_or(FabricError::UnknownPort(guid))?;
        let mut command = self.sim(SMPQUERY);
        command.args(["pkeys", &lid.to_string()]);
        Ok(parse_pkeys(&output_within(command, &format!("smpquery pkeys {lid}"), QUERY_TIMEOUT)?))
    }

    /// (P_Key, GUID, full) of every port of `guids`, leaving out the P_Keys of `except`.
    pub fn memberships(
        &self,
        guids: impl IntoIterator<Item = u64>,
        except: &[u16],
    ) -> Result<BTreeSet<(u16, u64, bool)>, FabricError> {
        let mut all = BTreeSet::new();
        for g in guids {
            for (p, full) in self.pkeys(g)? {
                if !except.contains(&p) {
                    all.insert((p, g, full));
                }
            }
        }
        Ok(all)
    }

    /// Polls `check` until it gives a value, for at most the fabric's deadline.
    pub async fn wait<T>(
        &self,
        what: &str,
        mut check: impl FnMut() -> Result<Option<T>, FabricError>,
    ) -> Result<T, FabricError> {
        let start = Instant::now();
        loop {
            if let Some(v) = check()? {
                return Ok(v);
            }
            if start.elapsed() > self.deadline {
                return Err(FabricError::Timeout { what: what.to_owned(), deadline: self.deadline });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkeys_parse_membership_bits() {
        let out = "# Port pkeys: Lid 3 port 1\n   0: 0xffff 0x8005 0x0006 0x0000\n   4: 0x0000 0x0000\n";
        assert_eq!(parse_pkeys(out), BTreeSet::from([(0x7fff, true), (0x5, true), (0x6, false)]));
        assert!(parse_pkeys("garbage: 0xzz 12 0x\n").is_empty());
    }

    #[test]
    fn lids_of_assigned_host_ports_only() {
        let out = "CA     3 1 0x0200000000000100 4x SDR - SW 1 1 ( 'x' - 'y' )\n\
                   CA     0 1 0x0200000000000101 4x SDR\n\
                   SW     1 1 0x0008f10400411a08 4x SDR\n";
        assert_eq!(parse_lids(out), BTreeMap::from([(0x0200_0000_0000_0100, 3)]));
    }

    #[test]
    fn topology_names_every_port_with_its_guid() {
        let net = topology(&[Host::port(0x0200_0000_0000_0100)]);
        assert!(net.contains("caguid=0x02000000000000ff\nCa\t1 \"H-0200000000000100\"\n[1](0200000000000100)"));
        assert!(net.contains("Switch\t4 "));
        assert!(net.contains("\"H-sm\""));
    }

    #[tokio::test]
    async fn bad_specs_are_refused_before_anything_starts() {
        let spec = |hosts| FabricSpec { hosts, partitions: String::new(), deadline: Duration::from_secs(1) };
        assert!(matches!(Fabric::start(spec(vec![])).await, Err(FabricError::PortCount(0))));
        let many = (0..=MAX_HOSTS as u64).map(|g| Host::port(g + 0x100)).collect();
        assert!(matches!(Fabric::start(spec(many)).await, Err(FabricError::PortCount(n)) if n == MAX_HOSTS + 1));
        let twice = vec![Host::port(7), Host::port(7)];
        assert!(matches!(Fabric::start(spec(twice)).await, Err(FabricError::DuplicateGuid(7))));
        let sm = vec![Host::port(SM_PORT)];
        assert!(matches!(Fabric::start(spec(sm)).await, Err(FabricError::DuplicateGuid(_))));
    }
}
