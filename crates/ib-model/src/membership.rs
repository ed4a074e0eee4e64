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
}

/// Adds `p` to the sorted, duplicate-free `ps`.
fn insert_sorted(ps: &mut Vec<Partition>, p: Partition) {
    if let Err(at) = ps.binary_search(&p) {
        ps.insert(at, p);
    }
}

impl SmMembership {
    /// Builds from a listing of (partition name, GUID), keeping the GUIDs inside `range`.
    pub fn from_listing<'a, I>(listing: I, range: GuidRange) -> Self
    where
        I: IntoIterator<Item = (&'a str, Guid)>,
    {
        let mut by_guid: HashMap<Guid, Vec<Partition>> = HashMap::new();
        for (name, guid) in listing {
            if range.contains(guid) {
                insert_sorted(by_guid.entry(guid).or_default(), Partition::from_sm_name(name));
            }
        }
        SmMembership { by_guid }
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
        insert_sorted(self.by_guid.entry(guid).or_default(), Partition::Managed(pkey));
    }

    /// `guid` left `pkey`.
    pub fn remove(&mut self, guid: Guid, pkey: PKey) {
        if let Some(ps) = self.by_guid.get_mut(&guid) {
            if let Ok(at) = ps.binary_search(&Partition::Managed(pkey)) {
                ps.remove(at);
            }
            if ps.is_empty() {
                self.by_guid.remove(&guid);
            }
        }
    }

    /// Replaces what is known of one GUID.
    pub fn set(&mut self, guid: Guid, partitions: Option<&[Partition]>) {
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
