//! What the subnet manager is known to hold: for each GUID of the pool range, its partitions.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

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
    Other(Box<str>),
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
            _ => Partition::Other(name.into()),
        }
    }
}

/// A GUID's partitions, sorted and without duplicates. A GUID is nearly always in one partition, so
/// that one is held inline: a vector would be an allocation of its own for every GUID of the fabric,
/// and a B-tree set a whole node (hundreds of bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Partitions {
    One(Partition),
    /// Two or more.
    Many(Box<[Partition]>),
}

impl Partitions {
    /// `None` for no partition at all.
    fn from_sorted(mut ps: Vec<Partition>) -> Option<Self> {
        match ps.len() {
            0 => None,
            1 => ps.pop().map(Partitions::One),
            _ => Some(Partitions::Many(ps.into_boxed_slice())),
        }
    }

    fn as_slice(&self) -> &[Partition] {
        match self {
            Partitions::One(p) => std::slice::from_ref(p),
            Partitions::Many(ps) => ps,
        }
    }

    /// Adds `p`; whether it was not there yet.
    fn insert(&mut self, p: Partition) -> bool {
        let mut ps = self.as_slice().to_vec();
        match ps.binary_search(&p) {
            Ok(_) => false,
            Err(at) => {
                ps.insert(at, p);
                if let Some(new) = Partitions::from_sorted(ps) {
                    *self = new;
                }
                true
            }
        }
    }

    /// Removes `p`: `None` when it was not there, else what is left (`None` inside: nothing).
    fn without(&self, p: &Partition) -> Option<Option<Self>> {
        let mut ps = self.as_slice().to_vec();
        let at = ps.binary_search(p).ok()?;
        ps.remove(at);
        Some(Partitions::from_sorted(ps))
    }
}

/// A subnet manager's listing as the state takes it in: each GUID of the pool range with its
/// partitions, sorted by GUID. Built once per listing and only looked up, so it is a vector of exactly
/// its size, where a hash table would be twice that (its empty slots) beside the state's own table.
#[derive(Debug, Default)]
pub(crate) struct ListedMembership(Vec<(Guid, Partitions)>);

impl ListedMembership {
    /// The memberships of `listing` inside `range`; a GUID listed in a partition twice is in it once.
    pub(crate) fn from_listing<'a, I>(listing: I, range: GuidRange) -> Self
    where
        I: IntoIterator<Item = (&'a str, Guid)>,
    {
        let listing = listing.into_iter();
        let mut by_guid: Vec<(Guid, Partitions)> = Vec::with_capacity(listing.size_hint().0);
        // A listing names a partition for each of its GUIDs in a row: its name is read once per row.
        let mut last: Option<(&str, Partition)> = None;
        for (name, guid) in listing {
            if !range.contains(guid) {
                continue;
            }
            let p = match &last {
                Some((n, p)) if *n == name => p.clone(),
                _ => last.insert((name, Partition::from_sm_name(name))).1.clone(),
            };
            by_guid.push((guid, Partitions::One(p)));
        }
        by_guid.sort_unstable_by_key(|(guid, _)| *guid);
        by_guid.dedup_by(|later, earlier| {
            if later.0 != earlier.0 {
                return false;
            }
            for p in later.1.as_slice() {
                earlier.1.insert(p.clone());
            }
            true
        });
        ListedMembership(by_guid)
    }

    /// The partitions `guid` is listed in, sorted.
    pub(crate) fn partitions(&self, guid: Guid) -> Option<&[Partition]> {
        let at = self.0.binary_search_by_key(&guid, |(g, _)| *g).ok()?;
        self.0.get(at).map(|(_, ps)| ps.as_slice())
    }

    /// How many GUIDs are listed.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every GUID listed, in order.
    pub(crate) fn guids(&self) -> impl ExactSizeIterator<Item = Guid> + '_ {
        self.0.iter().map(|(g, _)| *g)
    }
}

/// Counts one member more or fewer of `pkey`; a partition with none is not kept.
fn count(members: &mut HashMap<PKey, usize>, pkey: PKey, add: bool) {
    if add {
        *members.entry(pkey).or_default() += 1;
    } else if let Some(n) = members.get_mut(&pkey) {
        *n -= 1;
        if *n == 0 {
            members.remove(&pkey);
        }
    }
}

/// Known membership of the GUIDs inside the pool range (the rest of the fabric is not ours).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmMembership {
    by_guid: HashMap<Guid, Partitions>,
    /// How many GUIDs of `by_guid` each managed partition has, kept in step by every change.
    members: HashMap<PKey, usize>,
}

impl SmMembership {
    /// Builds from a listing of (partition name, GUID), keeping the GUIDs inside `range`.
    pub fn from_listing<'a, I>(listing: I, range: GuidRange) -> Self
    where
        I: IntoIterator<Item = (&'a str, Guid)>,
    {
        let by_guid: HashMap<Guid, Partitions> = ListedMembership::from_listing(listing, range).0.into_iter().collect();
        let mut members: HashMap<PKey, usize> = HashMap::new();
        for pk in by_guid.values().flat_map(Partitions::as_slice).filter_map(Partition::managed) {
            *members.entry(pk).or_default() += 1;
        }
        SmMembership { by_guid, members }
    }

    /// Whether any GUID of the pool range is known to be in `pkey`.
    pub fn has_members(&self, pkey: PKey) -> bool {
        self.members.contains_key(&pkey)
    }

    fn count(&mut self, pkey: PKey, add: bool) {
        count(&mut self.members, pkey, add);
    }

    /// Whether `guid` is known to be a member of partition `pkey`.
    pub fn has(&self, guid: Guid, pkey: PKey) -> bool {
        self.by_guid.get(&guid).is_some_and(|ps| ps.as_slice().binary_search(&Partition::Managed(pkey)).is_ok())
    }

    /// Whether `guid` is known to be in any partition (managed or not): then it is in use.
    pub fn holds(&self, guid: Guid) -> bool {
        self.by_guid.contains_key(&guid)
    }

    /// The GUID's partitions, sorted.
    pub fn partitions(&self, guid: Guid) -> Option<&[Partition]> {
        self.by_guid.get(&guid).map(Partitions::as_slice)
    }

    /// The managed partitions `guid` is known to be in.
    pub fn managed(&self, guid: Guid) -> impl Iterator<Item = PKey> + '_ {
        self.by_guid.get(&guid).into_iter().flat_map(Partitions::as_slice).filter_map(|p| match p {
            Partition::Managed(pk) => Some(*pk),
            Partition::Other(_) => None,
        })
    }

    /// `guid` joined `pkey`.
    pub fn add(&mut self, guid: Guid, pkey: PKey) {
        let added = match self.by_guid.entry(guid) {
            Entry::Occupied(mut ps) => ps.get_mut().insert(Partition::Managed(pkey)),
            Entry::Vacant(v) => {
                v.insert(Partitions::One(Partition::Managed(pkey)));
                true
            }
        };
        if added {
            self.count(pkey, true);
        }
    }

    /// `guid` left `pkey`.
    pub fn remove(&mut self, guid: Guid, pkey: PKey) {
        let Some(left) = self.by_guid.get(&guid).and_then(|ps| ps.without(&Partition::Managed(pkey))) else {
            return;
        };
        match left {
            Some(ps) => self.by_guid.insert(guid, ps),
            None => self.by_guid.remove(&guid),
        };
        self.count(pkey, false);
    }

    /// Replaces what is known of one GUID.
    pub fn set(&mut self, guid: Guid, partitions: Option<&[Partition]>) {
        // Every GUID of a listing passes through here, nearly all in one partition: that one is held
        // without building a vector first.
        let new = match partitions.unwrap_or_default() {
            [] => None,
            [one] => Some(Partitions::One(one.clone())),
            many => {
                let mut ps = many.to_vec();
                ps.sort();
                ps.dedup();
                Partitions::from_sorted(ps)
            }
        };
        let old = match new {
            Some(ps) => self.by_guid.insert(guid, ps),
            None => self.by_guid.remove(&guid),
        };
        for pk in old.iter().flat_map(Partitions::as_slice).filter_map(Partition::managed) {
            count(&mut self.members, pk, false);
        }
        for pk in self.by_guid.get(&guid).into_iter().flat_map(Partitions::as_slice).filter_map(Partition::managed) {
            count(&mut self.members, pk, true);
        }
    }

    /// Makes room for `additional` more GUIDs at once, so that taking in a listing of a known size does
    /// not grow the table step by step, each step holding the old table beside the new.
    pub fn reserve(&mut self, additional: usize) {
        self.by_guid.reserve(additional);
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

    #[test]
    fn one_partition_is_held_inline_and_more_are_boxed() {
        let range = GuidRange::new(Guid::from_u64(1), Guid::from_u64(100)).unwrap();
        let (g, p) = (Guid::from_u64(7), |v: u32| PKey::new(v).unwrap());
        let mut m = SmMembership::from_listing([("0x2", g), ("0x2", g)], range);
        assert!(matches!(m.by_guid.get(&g), Some(Partitions::One(_))));
        m.add(g, p(1));
        assert_eq!(m.partitions(g), Some(&[Partition::Managed(p(1)), Partition::Managed(p(2))][..]));
        assert!(matches!(m.by_guid.get(&g), Some(Partitions::Many(_))));
        m.remove(g, p(2));
        assert!(matches!(m.by_guid.get(&g), Some(Partitions::One(Partition::Managed(k))) if *k == p(1)));
        m.remove(g, p(1));
        assert!(!m.holds(g) && !m.has_members(p(1)) && !m.has_members(p(2)));
        // On 64-bit targets a GUID's entry is no larger than a vector's header was.
        assert!(std::mem::size_of::<Partitions>() <= 24, "{}", std::mem::size_of::<Partitions>());
    }

    proptest! {
        /// A listing taken in as sorted runs, and the table built from them, read back every GUID of the
        /// range listed with each partition it is listed in once, sorted, whatever the order, repeats
        /// and names listed.
        #[test]
        fn a_listing_reads_back_each_guid_with_its_partitions(
            pairs in proptest::collection::vec((0usize..5, 0u64..40), 0..120),
        ) {
            let names = ["0x1", "0x2", "0x7fff", "0x2", "default"];
            let range = GuidRange::new(Guid::from_u64(1), Guid::from_u64(30)).unwrap();
            let listing: Vec<(&str, Guid)> = pairs.iter().map(|(n, g)| (names[*n], Guid::from_u64(*g))).collect();
            let mut expected: std::collections::BTreeMap<Guid, std::collections::BTreeSet<Partition>> =
                Default::default();
            for (name, g) in &listing {
                if range.contains(*g) {
                    expected.entry(*g).or_default().insert(Partition::from_sm_name(name));
                }
            }
            let runs = ListedMembership::from_listing(listing.iter().copied(), range);
            let table = SmMembership::from_listing(listing.iter().copied(), range);
            prop_assert_eq!(runs.guids().collect::<Vec<_>>(), expected.keys().copied().collect::<Vec<_>>());
            prop_assert_eq!(table.len(), expected.len());
            for g in 0..45 {
                let g = Guid::from_u64(g);
                let want: Option<Vec<Partition>> = expected.get(&g).map(|ps| ps.iter().cloned().collect());
                prop_assert_eq!(runs.partitions(g).map(<[Partition]>::to_vec), want.clone());
                prop_assert_eq!(table.partitions(g).map(<[Partition]>::to_vec), want);
            }
        }

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
                // Whether held inline or boxed, a GUID's partitions read back sorted and once each.
                for g in m.guids().collect::<Vec<_>>() {
                    let ps = m.partitions(g).unwrap_or_default();
                    prop_assert!(!ps.is_empty() && ps.windows(2).all(|w| w[0] < w[1]), "{:?}", ps);
                    prop_assert_eq!(m.managed(g).count(), ps.iter().filter(|p| p.managed().is_some()).count());
                }
            }
        }
    }
}
