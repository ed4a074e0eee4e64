//! The subnet manager's view the verdict is drawn from, read the way an operator would read it: UFM's
//! partitions (each member's membership and index0, each partition's QoS), or, with a real OpenSM, the
//! ports' P_Key tables as `smpquery pkeys` reads them (the membership bit of each entry) and each
//! partition's QoS flags in `partitions.conf`.

use std::collections::BTreeMap;

use ib_model::partition::{Membership, MtuLimit, Qos, RateLimit};
use ib_sm::opensm::partitions;
use ufm_emulator::UfmHandle;

use super::verify::{Seen, SeenMemberships};

/// The management partition every port holds; not ib-kubernetes' business.
const MANAGEMENT_PKEY: u16 = 0x7fff;
/// The pool of the `--opensm` fabric's host ports: GUIDs whose upper half is this.
const POOL_HIGH: u64 = 0x0200_0000;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Fabric(#[from] ib_fabric::FabricError),
    #[error("reading {path}: {source}")]
    ReadPartitions { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Partitions { path: String, source: partitions::PartitionsError },
}

/// UFM's memberships and each partition's QoS.
pub fn ufm_view(ufm: &UfmHandle) -> (SeenMemberships, BTreeMap<u16, Option<Qos>>) {
    let mut memberships = SeenMemberships::new();
    let mut qos = BTreeMap::new();
    for (pkey, partition) in ufm.partitions() {
        for (guid, member) in &partition.members {
            // The controller only ever adds 8-byte GUIDs; a wider one is not a pool GUID.
            let Ok(guid) = u64::try_from(guid.value()) else { continue };
            let membership = match member.membership {
                ufm_emulator::Membership::Full => Membership::Full,
                ufm_emulator::Membership::Limited => Membership::Limited,
            };
            memberships.entry(guid).or_default().push(Seen { pkey, membership, index0: Some(member.index0) });
        }
        qos.insert(pkey, ufm_qos(&partition.qos));
    }
    (memberships, qos)
}

/// UFM's QoS fields as the model's type; `None` for a value UFM would not allow.
fn ufm_qos(q: &ufm_emulator::Qos) -> Option<Qos> {
    Some(Qos {
        mtu_limit: MtuLimit::from_ufm(u64::from(q.mtu_limit))?,
        service_level: q.service_level,
        rate_limit: RateLimit::from_gbps(q.rate_limit)?,
    })
}

/// Every pool port's partitions as the port's P_Key table holds them (the management partition left
/// out), and how many ports were read.
pub fn port_memberships(fabric: &ib_fabric::Fabric) -> Result<(SeenMemberships, usize), SourceError> {
    let ports: Vec<u64> = fabric.lids().keys().copied().filter(|g| *g >> 32 == POOL_HIGH).collect();
    // Reading the tables runs one short process per port; keep the runtime's other tasks going.
    let entries = tokio::task::block_in_place(|| fabric.memberships(ports.iter().copied(), &[MANAGEMENT_PKEY]))?;
    let mut by_guid = SeenMemberships::new();
    for (pkey, guid, full) in entries {
        let membership = if full { Membership::Full } else { Membership::Limited };
        by_guid.entry(guid).or_default().push(Seen { pkey, membership, index0: None });
    }
    Ok((by_guid, ports.len()))
}

/// Each partition of ib-kubernetes' block of `partitions.conf` with the QoS its flags give it.
pub fn opensm_qos(fabric: &ib_fabric::Fabric) -> Result<BTreeMap<u16, Option<Qos>>, SourceError> {
    let path = fabric.partitions_file();
    let shown = || path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| SourceError::ReadPartitions { path: shown(), source })?;
    let (_, block) =
        partitions::read_block_full(&bytes).map_err(|source| SourceError::Partitions { path: shown(), source })?;
    Ok(block.iter().map(|(pkey, p)| (pkey.get(), qos_from_flags(&p.flags))).collect())
}

/// `mtu=5`, `rate=15`, `sl=2` back to the QoS they encode; `None` unless all three are there and
/// each is a value ib-kubernetes could have written.
pub fn qos_from_flags(flags: &[String]) -> Option<Qos> {
    let value = |key: &str| {
        flags.iter().find_map(|f| f.split_once('=').filter(|(k, _)| *k == key).and_then(|(_, v)| v.parse::<u8>().ok()))
    };
    let mtu = value("mtu")?;
    let rate = value("rate")?;
    let service_level = value("sl")?;
    let mtu_limit = [MtuLimit::Mtu2K, MtuLimit::Mtu4K].into_iter().find(|m| m.ibta() == mtu)?;
    let rate_limit = RateLimit::allowed()
        .split(", ")
        .filter_map(|r| r.parse::<f64>().ok().and_then(RateLimit::from_gbps))
        .find(|r| r.ibta() == rate)?;
    (service_level <= ib_model::partition::MAX_SERVICE_LEVEL).then_some(Qos { mtu_limit, service_level, rate_limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(list: &[&str]) -> Vec<String> {
        list.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn opensm_flags_read_back_as_the_qos_they_encode() {
        let want = crate::workload::demo_qos();
        assert_eq!(qos_from_flags(&flags(&["indx0", "ipoib", "mtu=5", "rate=15", "sl=2"])), Some(want));
        assert_eq!(
            qos_from_flags(&flags(&["ipoib", "mtu=4", "rate=2", "sl=0"])),
            Some(Qos::default()),
            "UFM's default QoS in OpenSM's codes"
        );
        // Missing, unknown or out-of-range values are no QoS, so the check cannot mistake them for one.
        for bad in [
            &["ipoib"][..],
            &["mtu=5", "rate=15"],
            &["mtu=3", "rate=15", "sl=2"],
            &["mtu=5", "rate=1", "sl=2"],
            &["mtu=5", "rate=15", "sl=16"],
            &["mtu=5", "rate=15", "sl=x"],
            &["mtu=5", "rate=0x0f", "sl=2"],
        ] {
            assert_eq!(qos_from_flags(&flags(bad)), None, "{bad:?}");
        }
    }
}
