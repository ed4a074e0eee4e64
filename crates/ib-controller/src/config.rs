//! The daemon's configuration: every variable of the Go daemon (same names, defaults and
//! empty-means-default rule) plus the few this implementation adds, read from an [`EnvMap`] and
//! validated by one pure function. Nothing else reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ib_model::annotation::is_dns1123_label;
use ib_model::partition::PartitionPolicy;
use ib_model::pkey::PKeyRange;
use ib_model::{Guid, GuidRange, PKey, Policy};
use ib_sm::env::{EnvError, EnvErrors, EnvMap};
use ib_sm::opensm::OpenSmConfig;
use ib_sm::ufm::UfmConfig;

/// The Go daemon's period; here it bounds how long failed work waits before it is retried.
pub const DEFAULT_PERIODIC_UPDATE: Duration = Duration::from_secs(5);
/// Where `DAEMON_SM_PLUGIN` names are looked up unless `DAEMON_SM_PLUGIN_PATH` says otherwise.
pub const DEFAULT_PLUGIN_PATH: &str = "/plugins";
/// The Go daemon's default range: locally administered GUIDs 02:…, 2^56 of them.
pub const DEFAULT_RANGE_START: &str = "02:00:00:00:00:00:00:00";
/// The last GUID of the default pool.
pub const DEFAULT_RANGE_END: &str = "02:FF:FF:FF:FF:FF:FF:FF";
/// The namespace of the Lease and the records when `POD_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "kube-system";
/// Drift repair interval: frequent enough that a leak from a crash is repaired within minutes, rare
/// enough that listing every partition of a large fabric stays cheap.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);
/// Lease timings: a crashed leader is replaced within about 15 s instead of the Go daemon's ~104 s;
/// client-go's own defaults for controllers that must fail over fast.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long a leader keeps trying to renew before it steps down.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// The pause between attempts to acquire or renew the Lease.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// The admin port (metrics, health); distinct from anything the Go daemon used, which had none.
pub const DEFAULT_ADMIN_ADDRESS: &str = "0.0.0.0:9090";
/// Multus' default for `globalNamespaces`: NADs of `default` may be used from every namespace.
pub const DEFAULT_GLOBAL_NAMESPACES: &str = "default";

/// How log lines are written (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, the default.
    Plain,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Who this replica is, for the Lease (`<node>_<pod uid>`, the Go daemon's identity, so that Go and Rust
/// replicas never lead at the same time during a migration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The node this replica runs on, the first half of the Lease holder's name.
    pub node: String,
    /// `POD_UID`: makes the holder name unique when several replicas share a node.
    pub pod_uid: Option<String>,
    /// `POD_NAMESPACE`: where the Lease and the ownership records live.
    pub namespace: String,
}

impl Identity {
    /// The name this replica writes into the Lease as its holder.
    pub fn holder(&self) -> String {
        match &self.pod_uid {
            Some(uid) => format!("{}_{}", self.node, uid),
            None => self.node.clone(),
        }
    }
}

/// How the leader election paces itself (`LEADER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a Lease stays valid without renewal before another replica may take it.
    pub duration: Duration,
    /// How long the leader keeps trying to renew before it gives leadership up.
    pub renew_deadline: Duration,
    /// The pause between two attempts to acquire or renew.
    pub retry_period: Duration,
}

/// Which subnet manager to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmSelection {
    /// No subnet manager: GUIDs are handed out, partitions are left to whoever manages them.
    Noop,
    /// NVIDIA UFM over its REST API (`UFM_*`).
    Ufm(UfmConfig),
    /// OpenSM through its partitions file (`OPENSM_*`).
    OpenSm(OpenSmConfig),
    /// Any other name: resolved against `DAEMON_SM_PLUGIN_PATH` when plugins are loaded.
    External(String),
}

/// Everything the controller reads from its environment at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `DAEMON_PERIODIC_UPDATE`: how long failed work waits before it is retried.
    pub periodic_update: Duration,
    /// `DAEMON_SM_PLUGIN`: which subnet manager carries out the memberships.
    pub sm: SmSelection,
    /// `DAEMON_SM_PLUGIN_PATH`: the directory external plugins are loaded from.
    pub sm_plugin_path: PathBuf,
    /// `GUID_POOL_RANGE_START`..`GUID_POOL_RANGE_END`: the GUIDs this controller may hand out.
    pub guid_range: GuidRange,
    /// Who this replica is, for the Lease and the namespace of its records.
    pub identity: Identity,
    /// `DAEMON_RESYNC_INTERVAL`: how often the subnet manager is re-read to repair drift.
    pub resync_interval: Duration,
    /// `LEADER_*`: the leader election's timings.
    pub lease: LeaseTimings,
    /// `ADMIN_ADDRESS`: where metrics and health endpoints are served.
    pub admin_address: SocketAddr,
    /// `LOG_FORMAT`: plain or JSON log lines.
    pub log_format: LogFormat,
    /// `NAMESPACE_ISOLATION`, `GLOBAL_NAMESPACES`, `REMOVE_UNRECORDED_MEMBERSHIPS`, and in
    /// `policy.partitions`: `ENABLE_IP_OVER_IB`, `ENABLE_INDEX0_FOR_PRIMARY_PKEY`,
    /// `DEFAULT_LIMITED_PARTITION`, `ALLOW_PARTITION_CREATE`, `PKEY_ALLOCATION_RANGE`.
    pub policy: Policy,
    /// `WATCH_NAMESPACE`: pods and NADs of this one namespace only; `None` (the default) watches all.
    pub watch_namespace: Option<String>,
}

/// Reads the partition rules; every bad variable is pushed to `errors`. The variable names are those of
/// the Go daemon's forks that introduced them, with the same meanings.
fn partition_policy(env: &EnvMap, errors: &mut Vec<EnvError>) -> PartitionPolicy {
    let mut defaults = PartitionPolicy::default();
    let mut flag = |key: &'static str, default: bool| {
        env.bool(key, default).unwrap_or_else(|e| {
            errors.push(e);
            default
        })
    };
    defaults.primary.ip_over_ib = flag("ENABLE_IP_OVER_IB", true);
    defaults.primary.index0 = flag("ENABLE_INDEX0_FOR_PRIMARY_PKEY", true);
    defaults.allow_create = flag("ALLOW_PARTITION_CREATE", true);
    if let Some(text) = env.get("DEFAULT_LIMITED_PARTITION") {
        let trimmed = text.trim();
        // The parser's error repeats the value: a long one is refused on its length alone.
        let parsed = if trimmed.len() > ib_model::nad::MAX_PKEY_BYTES {
            Err(format!("longer than {} bytes", ib_model::nad::MAX_PKEY_BYTES))
        } else {
            PKey::parse(trimmed).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(pkey) => defaults.default_limited = Some(pkey),
            Err(reason) => errors.push(EnvError::new(
                "DEFAULT_LIMITED_PARTITION",
                ib_model::text::shorten(text, ib_model::text::ECHO_CHARS),
                format!("must be a partition key such as 0x10: {reason}"),
            )),
        }
    }
    if let Some(text) = env.get("PKEY_ALLOCATION_RANGE").filter(|t| !t.trim().is_empty()) {
        match PKeyRange::parse(text) {
            Ok(range) => defaults.allocation_range = Some(range),
            Err(e) => errors.push(EnvError::new(
                "PKEY_ALLOCATION_RANGE",
                ib_model::text::shorten(text, ib_model::text::ECHO_CHARS),
                format!("must be a range of partition keys such as 0x1000-0x1FFF: {e}"),
            )),
        }
    }
    if let (Some(range), Some(shared)) = (defaults.allocation_range, defaults.default_limited)
        && range.contains(shared)
    {
        errors.push(EnvError::new(
            "DEFAULT_LIMITED_PARTITION",
            shared.to_string(),
            format!("lies inside PKEY_ALLOCATION_RANGE {range}, whose partitions are each given to one network"),
        ));
    }
    defaults
}

impl Config {
    /// Reads and validates everything, reporting every bad variable at once. `hostname` stands in for
    /// `K8S_NODE` when that is unset, as in the Go daemon.
    pub fn from_env(env: &EnvMap, hostname: Option<&str>) -> Result<Self, EnvErrors> {
        let mut errors = Vec::new();
        let mut keep = |r: Result<Duration, EnvError>, default| {
            r.unwrap_or_else(|e| {
                errors.push(e);
                default
            })
        };
        let periodic_update =
            keep(seconds(env, "DAEMON_PERIODIC_UPDATE", DEFAULT_PERIODIC_UPDATE), DEFAULT_PERIODIC_UPDATE);
        let resync_interval = keep(seconds(env, "DAEMON_RESYNC_INTERVAL", DEFAULT_RESYNC), DEFAULT_RESYNC);
        let lease = LeaseTimings {
            duration: keep(seconds(env, "LEADER_LEASE_DURATION", DEFAULT_LEASE_DURATION), DEFAULT_LEASE_DURATION),
            renew_deadline: keep(seconds(env, "LEADER_RENEW_DEADLINE", DEFAULT_RENEW_DEADLINE), DEFAULT_RENEW_DEADLINE),
            retry_period: keep(seconds(env, "LEADER_RETRY_PERIOD", DEFAULT_RETRY_PERIOD), DEFAULT_RETRY_PERIOD),
        };
        // client-go's rules: a renewal must be able to fail and be retried before the lease runs out.
        if lease.renew_deadline >= lease.duration {
            errors.push(EnvError::new(
                "LEADER_RENEW_DEADLINE",
                lease.renew_deadline.as_secs().to_string(),
                format!("must be shorter than LEADER_LEASE_DURATION ({}s)", lease.duration.as_secs()),
            ));
        } else if lease.retry_period >= lease.renew_deadline {
            errors.push(EnvError::new(
                "LEADER_RETRY_PERIOD",
                lease.retry_period.as_secs().to_string(),
                format!("must be shorter than LEADER_RENEW_DEADLINE ({}s)", lease.renew_deadline.as_secs()),
            ));
        }

        let start = guid(env, "GUID_POOL_RANGE_START", DEFAULT_RANGE_START).map_err(|e| errors.push(e)).ok();
        let end = guid(env, "GUID_POOL_RANGE_END", DEFAULT_RANGE_END).map_err(|e| errors.push(e)).ok();
        let guid_range = match (start, end) {
            (Some(s), Some(e)) => GuidRange::new(s, e)
                .map_err(|err| {
                    errors.push(EnvError::new(
                        "GUID_POOL_RANGE_START",
                        env.get("GUID_POOL_RANGE_START").unwrap_or(DEFAULT_RANGE_START),
                        format!(
                            "with GUID_POOL_RANGE_END={:?}: {err}",
                            env.get("GUID_POOL_RANGE_END").unwrap_or(DEFAULT_RANGE_END)
                        ),
                    ))
                })
                .ok(),
            _ => None,
        };

        let sm = match env.get("DAEMON_SM_PLUGIN").map(str::trim) {
            None | Some("") => {
                errors.push(EnvError::new(
                    "DAEMON_SM_PLUGIN",
                    "",
                    "required: the subnet manager plugin, ufm, opensm or noop",
                ));
                None
            }
            Some("noop") => Some(SmSelection::Noop),
            Some("ufm") => UfmConfig::from_env(env).map(SmSelection::Ufm).map_err(|e| errors.extend(e.0)).ok(),
            Some("opensm") => OpenSmConfig::from_env(env).map(SmSelection::OpenSm).map_err(|e| errors.extend(e.0)).ok(),
            Some(name) if name.contains('/') || name.starts_with('.') => {
                errors.push(EnvError::new("DAEMON_SM_PLUGIN", name, "must be a plugin name, not a path"));
                None
            }
            Some(name) => Some(SmSelection::External(name.to_owned())),
        };
        let sm_plugin_path = PathBuf::from(env.get("DAEMON_SM_PLUGIN_PATH").unwrap_or(DEFAULT_PLUGIN_PATH));

        let node = env.get("K8S_NODE").or(hostname).map(str::to_owned);
        if node.is_none() {
            errors.push(EnvError::new("K8S_NODE", "", "required when the host name cannot be read"));
        }
        let identity = node.map(|node| Identity {
            node,
            pod_uid: env.get("POD_UID").map(str::to_owned),
            namespace: env.get("POD_NAMESPACE").unwrap_or(DEFAULT_NAMESPACE).to_owned(),
        });

        let admin = env.get("ADMIN_ADDRESS").unwrap_or(DEFAULT_ADMIN_ADDRESS);
        let admin_address = admin
            .parse()
            .map_err(|_| errors.push(EnvError::new("ADMIN_ADDRESS", admin, "must be an address like 0.0.0.0:9090")))
            .ok();

        let log_format = match env.get("LOG_FORMAT") {
            None | Some("plain") => LogFormat::Plain,
            Some("json") => LogFormat::Json,
            Some(other) => {
                errors.push(EnvError::new("LOG_FORMAT", other, "must be plain or json"));
                LogFormat::Plain
            }
        };

        let mut policy = Policy::default();
        match env.bool("NAMESPACE_ISOLATION", false) {
            Ok(on) => policy.namespace_isolation = on,
            Err(e) => errors.push(e),
        }
        match env.bool("REMOVE_UNRECORDED_MEMBERSHIPS", false) {
            Ok(on) => policy.remove_unrecorded = on,
            Err(e) => errors.push(e),
        }
        let globals = env.get("GLOBAL_NAMESPACES").unwrap_or(DEFAULT_GLOBAL_NAMESPACES);
        for ns in globals.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if is_dns1123_label(ns) {
                policy.global_namespaces.insert(ns.to_owned());
            } else {
                errors.push(EnvError::new(
                    "GLOBAL_NAMESPACES",
                    ns,
                    "each comma-separated entry must be a namespace name (a DNS-1123 label)",
                ));
            }
        }

        policy.partitions = partition_policy(env, &mut errors);
        let watch_namespace = watch_namespace(env, guid_range.as_ref()).map_err(|e| errors.push(e)).ok().flatten();

        match (sm, guid_range, identity, admin_address) {
            (Some(sm), Some(guid_range), Some(identity), Some(admin_address)) if errors.is_empty() => Ok(Config {
                periodic_update,
                sm,
                sm_plugin_path,
                guid_range,
                identity,
                resync_interval,
                lease,
                admin_address,
                log_format,
                policy,
                watch_namespace,
            }),
            _ => Err(EnvErrors(errors)),
        }
    }
}

/// `WATCH_NAMESPACE`: unset or empty watches every namespace. A controller restricted to one namespace
/// must also have a GUID range of its own, never the default one: the ownership records (`GuidBlock`s)
/// are cluster-wide, and a leader treats every record in its range whose pod it cannot see as a pod
/// that is gone, so sharing the range with a controller of other namespaces would release that one's
/// GUIDs and memberships.
fn watch_namespace(env: &EnvMap, range: Option<&GuidRange>) -> Result<Option<String>, EnvError> {
    let Some(namespace) = env.get("WATCH_NAMESPACE").map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if !is_dns1123_label(namespace) {
        return Err(EnvError::new("WATCH_NAMESPACE", namespace, "must be a namespace name (a DNS-1123 label)"));
    }
    let default = match (Guid::parse(DEFAULT_RANGE_START), Guid::parse(DEFAULT_RANGE_END)) {
        (Ok(start), Ok(end)) => GuidRange::new(start, end).ok(),
        _ => None,
    };
    if range.is_some() && range == default.as_ref() {
        return Err(EnvError::new(
            "WATCH_NAMESPACE",
            namespace,
            "needs GUID_POOL_RANGE_START and GUID_POOL_RANGE_END set to a range of its own that no other \
             controller uses, not the default one (the ownership records are cluster-wide)",
        ));
    }
    Ok(Some(namespace.to_owned()))
}

/// A positive whole number of seconds.
fn seconds(env: &EnvMap, key: &'static str, default: Duration) -> Result<Duration, EnvError> {
    match env.u64(key, default.as_secs())? {
        0 => Err(EnvError::new(key, "0", "must be a whole number of seconds greater than 0")),
        s => Ok(Duration::from_secs(s)),
    }
}

fn guid(env: &EnvMap, key: &'static str, default: &str) -> Result<Guid, EnvError> {
    let text = env.get(key).unwrap_or(default);
    Guid::parse(text.trim()).map_err(|e| EnvError::new(key, text, e.to_string()))
}

#[cfg(test)]
mod tests;
