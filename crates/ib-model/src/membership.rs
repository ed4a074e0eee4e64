//! What the subnet manager is known to hold: for each GUID of the pool range, its partitions.

use std::collections::HashMap;

use crate::guid::Guid;
use crate::pkey::{self, PKey};
use crate::pool::GuidRange;

/// A partition as the subnet manager names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Partition {
    /// One ib-kubernetes may add pods to and remove them from.
    Managed(PKey),
    /// The default partition or a name that is not a usable pkey: a GUID in it is in use, but
    /// ib-kubernetes never changes that membership.
    Other(String),
}

impl Partition {
    /// The partition key, for a managed partition.
    pub fn managed(&self) -> Option<PKey> {
        match self {
            Partition::Managed(pk) => Some(*pk),
            Partition::Other(_) => None,
        }
    }

    /// Reads a subnet manager's partition name (`0x5`, `0x7fff`, …).
    pub fn from_sm_name(name: &str) -> Self {
        match pkey::parse_number(name).map(PKey::new) {
            Some(Ok(p)) => Partition::Managed(p),
            _ => Partition::Other(name.to_owned()),
        }
    }
}

/// Known membership of the GUIDs inside the pool range (the rest of the fabric is not ours).
///
/// A GUID is nearly always in one partition, so each GUID's partitions are a small sorted vector: a
/// B-tree set would allocate a whole node (hundreds of bytes) for that one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmMembership {
    by_guid: HashMap<Guid, Vec<Partition>>,
    /// How many GUIDs of `by_guid` each managed partition has, kept in step by every change.
    members: HashMap<PKey, usize>,
}

/// Adds `p` to the sorted, duplicate-free `ps`; whether it was not there yet.
fn insert_sorted(ps: &mut Vec<Partition>, p: Partition) -> bool {
    match ps.binary_search(&p) {
        Ok(_) => false,
        Err(at) => {
            ps.insert(at, p);
            true
        }
    }
}

impl SmMembership {
    /// Builds from a listing of (partition name, GUID), keeping the GUIDs inside `range`.
    pub fn from_listing<'a, I>(listing: I, range: GuidRange) -> Self
    where
        I: IntoIterator<Item = (&'a str, Guid)>,
    {
        let mut by_guid: HashMap<Guid, Vec<Partition>> = HashMap::new();
        // A listing names a partition for each of its GUIDs in a row: its name is read once per row.
        let mut last: Option<(&str, Partition)> = None;
        for (name, guid) in listing {
            if !range.contains(guid) {
                continue;
            }
            let partition = match &last {
                Some((n, p)) if *n == name => p.clone(),
                _ => last.insert((name, Partition::from_sm_name(name))).1.clone(),
            };
            insert_sorted(by_guid.entry(guid).or_default(), partition);
        }
        let mut members: HashMap<PKey, usize> = HashMap::new();
        for pk in by_guid.values().flatten().filter_map(Partition::managed) {
            *members.entry(pk).or_default() += 1;
        }
        SmMembership { by_guid, members }
    }

    /// Whether any GUID of the pool range is known to be in `pkey`.
    pub fn has_members(&self, pkey: PKey) -> bool {
        self.members.contains_key(&pkey)
    }

    fn count(&mut self, pkey: PKey, add: bool) {
        if add {
            *self.members.entry(pkey).or_default() += 1;
        } else if let Some(n) = self.members.get_mut(&pkey) {
            *n -= 1;
            if *n == 0 {
                self.members.remove(&pkey);
            }
        }
    }

    /// Whether `guid` is known to be a member of partition `pkey`.
    pub fn has(&self, guid: Guid, pkey: PKey) -> bool {
        self.by_guid.get(&guid).is_some_and(|ps| ps.binary_search(&Partition::Managed(pkey)).is_ok())
    }

    /// Whether `guid` is known to be in any partition (managed or not): then it is in use.
    pub fn holds(&self, guid: Guid) -> bool {
        self.by_guid.contains_key(&guid)
    }

    /// The GUID's partitions, sorted.
    pub fn partitions(&self, guid: Guid) -> Option<&[Partition]> {
        self.by_guid.get(&guid).map(Vec::as_slice)
    }

    /// The managed partitions `guid` is known to be in.
    pub fn managed(&self, guid: Guid) -> impl Iterator<Item = PKey> + '_ {
        self.by_guid.get(&guid).into_iter().flatten().filter_map(|p| match p {
            Partition::Managed(pk) => Some(*pk),
            Partition::Other(_) => None,
        })
    }

    /// `guid` joined `pkey`.
    pub fn add(&mut self, guid: Guid, pkey: PKey) {
        if insert_sorted(self.by_guid.entry(guid).or_default(), Partition::Managed(pkey)) {
            self.count(pkey, true);
        }
    }

    /// `guid` left `pkey`.
    pub fn remove(&mut self, guid: Guid, pkey: PKey) {
        let Some(ps) = self.by_guid.get_mut(&guid) else { return };
        let Ok(at) = ps.binary_search(&Partition::Managed(pkey)) else { return };
        ps.remove(at);
        if ps.is_empty() {
            self.by_guid.remove(&guid);
        }
        self.count(pkey, false);
    }

    /// Replaces what is known of one GUID.
    pub fn set(&mut self, guid: Guid, partitions: Option<&[Partition]>) {
        for pk in self.by_guid.get(&guid).into_iter().flatten().filter_map(Partition::managed).collect::<Vec<_>>() {
            self.count(pk, false);
        }
        for pk in
            partitions.into_iter().flatten().filter_map(Partition::managed).collect::<std::collections::BTreeSet<_>>()
        {
            self.count(pk, true);
        }
        match partitions {
            Some(ps) if !ps.is_empty() => {
                let mut ps = ps.to_vec();
                ps.sort();
                ps.dedup();
                self.by_guid.insert(guid, ps);
            }
            _ => {
                self.by_guid.remove(&guid);
            }
        }
    }

    /// Every GUID known to be in some partition.
    pub fn guids(&self) -> impl Iterator<Item = Guid> + '_ {
        self.by_guid.keys().copied()
    }

    /// How many GUIDs are known to be in some partition.
    pub fn len(&self) -> usize {
        self.by_guid.len()
    }

    /// Whether no GUID is known to be in any partition.
    pub fn is_empty(&self) -> bool {
        self.by_guid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `has_members` agrees with a scan of every GUID after any sequence of changes.
        #[test]
        fn partition_member_counts_stay_in_step(ops in proptest::collection::vec((0u8..3, 1u64..6, 1u32..4), 0..60)) {
            let range = GuidRange::new(Guid::from_u64(1), Guid::from_u64(100)).unwrap();
            let mut m = SmMembership::from_listing([("0x1", Guid::from_u64(1)), ("0x2", Guid::from_u64(1)), ("0x1", Guid::from_u64(1))], range);
            for (op, g, p) in ops {
                let (g, p) = (Guid::from_u64(g), PKey::new(p).unwrap());
                match op {
                    0 => m.add(g, p),
                    1 => m.remove(g, p),
                    _ => m.set(g, Some(&[Partition::Managed(p), Partition::Managed(p), Partition::Other("x".into())])),
                }
                for pk in 1..4 {
                    let pk = PKey::new(pk).unwrap();
                    prop_assert_eq!(m.has_members(pk), m.guids().any(|g| m.has(g, pk)));
                }
            }
        }
    }
}
