//! How a GUID joins a partition, and the partition's quality of service: the values UFM's REST API
//! accepts (`membership`, `index0`, `ip_over_ib`, `mtu_limit`, `service_level`, `rate_limit`), as
//! types that cannot hold anything UFM would refuse.
//!
//! The same values map onto OpenSM's `partitions.conf` (`=full`/`=limited`, `indx0`, `ipoib`, `mtu=`,
//! `sl=`, `rate=`) and onto the exec-plugin protocol, so every backend reads them from here.

use std::fmt;

use crate::pkey::{PKey, PKeyRange};

/// Whether a member may talk to every member of the partition (full) or only to full members
/// (limited: two limited members cannot reach each other).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Membership {
    /// Reaches every member of the partition.
    #[default]
    Full,
    /// Reaches only full members.
    Limited,
}

impl Membership {
    /// UFM's and OpenSM's word for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Membership::Full => "full",
            Membership::Limited => "limited",
        }
    }

    /// `full` or `limited`, exactly (UFM and OpenSM spell them in lower case only).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "full" => Some(Membership::Full),
            "limited" => Some(Membership::Limited),
            _ => None,
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// UFM's `mtu_limit`: 2 (2048-byte MTU) or 4 (4096-byte MTU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MtuLimit {
    /// A 2048-byte MTU.
    #[default]
    Mtu2K,
    /// A 4096-byte MTU.
    Mtu4K,
}

impl MtuLimit {
    /// The number UFM takes and returns (2 or 4).
    pub const fn ufm(self) -> u8 {
        match self {
            MtuLimit::Mtu2K => 2,
            MtuLimit::Mtu4K => 4,
        }
    }

    /// The IBTA MTU code OpenSM's `mtu=` takes: 4 is 2048 bytes, 5 is 4096 bytes.
    pub const fn ibta(self) -> u8 {
        match self {
            MtuLimit::Mtu2K => 4,
            MtuLimit::Mtu4K => 5,
        }
    }

    /// The limit UFM's number stands for; `None` for any number UFM does not allow.
    pub fn from_ufm(value: u64) -> Option<Self> {
        match value {
            2 => Some(MtuLimit::Mtu2K),
            4 => Some(MtuLimit::Mtu4K),
            _ => None,
        }
    }
}

/// UFM's `rate_limit` in Gb/s, one of the values its REST API allows; kept in tenths of a Gb/s so the
/// type stays exact (2.5 is 25).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit(u16);

/// Every rate UFM accepts, in tenths of a Gb/s, with the IBTA rate code OpenSM's `rate=` takes for it.
const RATES: [(u16, u8); 17] = [
    (25, 2),    // 2.5 Gb/s: 1x SDR
    (50, 5),    // 5: 1x DDR
    (100, 3),   // 10: 4x SDR
    (140, 17),  // 14: 1x FDR
    (200, 6),   // 20: 4x DDR
    (250, 21),  // 25: 1x EDR
    (300, 4),   // 30: 12x SDR
    (400, 7),   // 40: 4x QDR
    (560, 11),  // 56: 4x FDR
    (600, 8),   // 60: 12x DDR
    (800, 9),   // 80: 8x QDR
    (1000, 15), // 100: 4x EDR
    (1120, 12), // 112: 8x FDR
    (1200, 10), // 120: 12x QDR
    (1680, 13), // 168: 12x FDR
    (2000, 16), // 200: 8x EDR
    (3000, 18), // 300: 12x EDR
];

impl RateLimit {
    /// UFM's default for a partition created without a rate.
    pub const DEFAULT: RateLimit = RateLimit(25);

    /// The allowed rate equal to `gbps`, if there is one.
    pub fn from_gbps(gbps: f64) -> Option<Self> {
        if !gbps.is_finite() || gbps <= 0.0 || gbps > 1000.0 {
            return None;
        }
        let tenths = (gbps * 10.0).round();
        if (tenths / 10.0 - gbps).abs() > 1e-9 {
            return None;
        }
        let tenths = tenths as u16;
        RATES.iter().any(|(t, _)| *t == tenths).then_some(RateLimit(tenths))
    }

    /// The rates UFM allows, for error messages: `2.5, 5, 10, …, 300`.
    pub fn allowed() -> String {
        RATES.iter().map(|(t, _)| RateLimit(*t).to_string()).collect::<Vec<_>>().join(", ")
    }

    /// The rate in tenths of a Gb/s (25 is 2.5 Gb/s).
    pub const fn tenths_gbps(self) -> u16 {
        self.0
    }

    /// The IBTA rate code OpenSM's `rate=` takes.
    pub fn ibta(self) -> u8 {
        RATES.iter().find(|(t, _)| *t == self.0).map_or(2, |(_, code)| *code)
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::DEFAULT
    }
}

/// As UFM's JSON writes it: `2.5`, `200`.
impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(10) {
            write!(f, "{}", self.0 / 10)
        } else {
            write!(f, "{}.{}", self.0 / 10, self.0 % 10)
        }
    }
}

/// Highest service level (4 bits).
pub const MAX_SERVICE_LEVEL: u8 = 15;

/// A partition's quality of service as UFM sets it (`mtu_limit`, `service_level`, `rate_limit`). Its
/// default is UFM's default for a partition created without QoS: 2K MTU, SL 0, 2.5 Gb/s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Qos {
    /// The partition's MTU limit.
    pub mtu_limit: MtuLimit,
    /// 0–15; the constructor of a parsed value checks it.
    pub service_level: u8,
    /// The partition's rate limit.
    pub rate_limit: RateLimit,
}

/// How one GUID joins one partition, and the QoS the partition should have. The default is what the
/// Go daemon always sent: a full member, at index 0 of the port's P_Key table, with IPoIB, and no QoS
/// set (the partition keeps whatever it has, UFM's default for a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PartitionOptions {
    /// Full or limited member.
    pub membership: Membership,
    /// The partition's P_Key goes at index 0 of the port's P_Key table.
    pub index0: bool,
    /// The partition carries IPoIB.
    pub ip_over_ib: bool,
    /// `None`: QoS is not ib-kubernetes' business for this partition.
    pub qos: Option<Qos>,
}

impl Default for PartitionOptions {
    fn default() -> Self {
        PartitionOptions { membership: Membership::Full, index0: true, ip_over_ib: true, qos: None }
    }
}

/// The cluster's rules for partitions, from the controller's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionPolicy {
    /// How a GUID joins its network's partition where the NAD does not say.
    pub primary: PartitionOptions,
    /// A partition every GUID handed out also joins, as a limited member (a shared storage network,
    /// say): joined before its pod is marked configured, left when the pod ends.
    pub default_limited: Option<PKey>,
    /// Whether a partition the subnet manager does not have may be created by adding the first member.
    /// `false`: a pod of a missing partition waits, with an Event naming it.
    pub allow_create: bool,
    /// The partitions ib-kubernetes allocates to networks that ask for one (`allocate_pkey`); a NAD may
    /// not name one of them itself.
    pub allocation_range: Option<PKeyRange>,
}

impl Default for PartitionPolicy {
    /// What ib-kubernetes (and the Go daemon) always did.
    fn default() -> Self {
        PartitionPolicy {
            primary: PartitionOptions::default(),
            default_limited: None,
            allow_create: true,
            allocation_range: None,
        }
    }
}

impl PartitionPolicy {
    /// How a GUID joins the default limited partition: limited, never at index 0 (that place is its own
    /// network's), IPoIB as the cluster's default says, and no QoS (the partition is the operator's).
    pub fn default_limited_options(&self) -> PartitionOptions {
        PartitionOptions {
            membership: Membership::Limited,
            index0: false,
            ip_over_ib: self.primary.ip_over_ib,
            qos: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_what_the_go_daemon_sent() {
        let d = PartitionOptions::default();
        assert_eq!((d.membership, d.index0, d.ip_over_ib, d.qos), (Membership::Full, true, true, None));
        assert_eq!(Qos::default(), Qos { mtu_limit: MtuLimit::Mtu2K, service_level: 0, rate_limit: RateLimit(25) });
    }

    #[test]
    fn every_ufm_rate_and_nothing_else() {
        let ufm =
            [2.5, 5.0, 10.0, 14.0, 20.0, 25.0, 30.0, 40.0, 56.0, 60.0, 80.0, 100.0, 112.0, 120.0, 168.0, 200.0, 300.0];
        for gbps in ufm {
            let rate = RateLimit::from_gbps(gbps).unwrap_or_else(|| panic!("{gbps}"));
            assert_eq!(rate.to_string().parse::<f64>().unwrap(), gbps);
        }
        for gbps in [0.0, -2.5, 2.0, 2.4, 2.55, 7.0, 301.0, 1e300, f64::NAN, f64::INFINITY, 2.500_000_1] {
            assert_eq!(RateLimit::from_gbps(gbps), None, "{gbps}");
        }
        assert_eq!(RateLimit::DEFAULT.to_string(), "2.5");
        assert!(RateLimit::allowed().starts_with("2.5, 5, 10,") && RateLimit::allowed().ends_with(", 300"));
        // Distinct IBTA codes: OpenSM could not tell two rates apart otherwise.
        let codes: std::collections::BTreeSet<u8> = RATES.iter().map(|(_, c)| *c).collect();
        assert_eq!(codes.len(), RATES.len());
    }

    #[test]
    fn mtu_and_membership_words() {
        assert_eq!(MtuLimit::from_ufm(4).map(MtuLimit::ibta), Some(5));
        assert_eq!(MtuLimit::from_ufm(2).map(MtuLimit::ibta), Some(4));
        assert_eq!(MtuLimit::from_ufm(3), None);
        assert_eq!(Membership::parse("limited"), Some(Membership::Limited));
        assert_eq!(Membership::parse("Full"), None);
        assert_eq!(Membership::Limited.to_string(), "limited");
    }
}
