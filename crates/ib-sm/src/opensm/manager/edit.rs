//! The edit a batch makes to our block of `partitions.conf`: members added and removed, and the
//! flags (`indx0`, `ipoib`, QoS) each partition is written with.

use std::collections::BTreeSet;

use ib_model::partition::{PartitionOptions, Qos};
use ib_model::{Guid, PKey};

use super::Op;
use crate::opensm::config::OpenSmConfig;
use crate::opensm::partitions::Block;

/// Applies the batch's changes in order; returns the partitions a QoS change named that the block
/// does not define (those changes are refused, the others applied).
pub(super) fn apply(block: &mut Block, changes: &[(Op, PKey, Vec<Guid>)], config: &OpenSmConfig) -> BTreeSet<PKey> {
    let mut missing = BTreeSet::new();
    for (op, pkey, guids) in changes {
        match op {
            Op::Add(options) => {
                let partition = block.entry(*pkey).or_default();
                let membership = options.map_or(config.membership, |o| o.membership);
                partition.flags = match options {
                    None => config.flags.clone(),
                    Some(options) => option_flags(&config.flags, &partition.flags, options),
                };
                partition.members.extend(guids.iter().map(|g| (*g, membership)));
            }
            Op::Remove => {
                if let Some(partition) = block.get_mut(pkey) {
                    for guid in guids {
                        partition.members.remove(guid);
                    }
                }
            }
            Op::SetQos(qos) => match block.get_mut(pkey).filter(|p| !p.members.is_empty()) {
                Some(partition) => {
                    let mut flags: Vec<String> = partition.flags.iter().filter(|f| !is_qos_flag(f)).cloned().collect();
                    flags.extend(qos_flags(qos));
                    partition.flags = flags;
                }
                None => {
                    missing.insert(*pkey);
                }
            },
        }
    }
    // A partition whose last member left is not written: like UFM, OpenSM then forgets it and its QoS.
    block.retain(|_, p| !p.members.is_empty());
    missing
}

fn flag_key(flag: &str) -> &str {
    flag.split_once('=').map_or(flag, |(key, _)| key)
}

fn is_qos_flag(flag: &str) -> bool {
    matches!(flag_key(flag), "mtu" | "rate" | "sl")
}

/// OpenSM's QoS flags of the partition's IPoIB broadcast group, IBTA-encoded: `mtu=5,rate=16,sl=3`.
fn qos_flags(qos: &Qos) -> [String; 3] {
    [
        format!("mtu={}", qos.mtu_limit.ibta()),
        format!("rate={}", qos.rate_limit.ibta()),
        format!("sl={}", qos.service_level),
    ]
}

/// A partition's flags for an add with `options`: `indx0` and `ipoib` as the options say; the QoS
/// flags of the options, or else those the partition has, or else the configuration's; every other
/// configured flag as configured.
fn option_flags(configured: &[String], current: &[String], options: &PartitionOptions) -> Vec<String> {
    let mut flags = Vec::new();
    if options.index0 {
        flags.push("indx0".to_owned());
    }
    if options.ip_over_ib {
        flags.push("ipoib".to_owned());
    }
    flags.extend(configured.iter().filter(|f| !matches!(flag_key(f), "ipoib" | "indx0") && !is_qos_flag(f)).cloned());
    match &options.qos {
        Some(qos) => flags.extend(qos_flags(qos)),
        None if current.iter().any(|f| is_qos_flag(f)) => {
            flags.extend(current.iter().filter(|f| is_qos_flag(f)).cloned())
        }
        None => flags.extend(configured.iter().filter(|f| is_qos_flag(f)).cloned()),
    }
    flags
}
