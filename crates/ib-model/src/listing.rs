//! A subnet manager's listing of partition memberships, partition by partition: each partition's name
//! once, then its GUIDs. A fabric's listing is a few partitions of many GUIDs each; a pair of name and
//! GUID per membership would repeat the name (an allocation each) hundreds of thousands of times.

use std::collections::HashMap;

use crate::guid::Guid;

/// See the module documentation. A partition listed twice is kept as listed, twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmListing {
    partitions: Vec<(String, Vec<Guid>)>,
}

impl SmListing {
    /// An empty listing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a partition, named exactly as the subnet manager writes it, with its members.
    pub fn push(&mut self, name: String, guids: Vec<Guid>) {
        self.partitions.push((name, guids));
    }

    /// Every partition with its members, in the order listed.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, &[Guid])> {
        self.partitions.iter().map(|(name, guids)| (name.as_str(), guids.as_slice()))
    }

    /// Every (partition name, GUID) membership, partition by partition; it knows how many are left, so
    /// what is built from it is allocated at its size once.
    pub fn memberships(&self) -> Memberships<'_> {
        Memberships { rest: self.partitions.iter(), name: "", guids: [].iter(), left: self.len() }
    }

    /// How many memberships are listed.
    pub fn len(&self) -> usize {
        self.partitions.iter().map(|(_, guids)| guids.len()).sum()
    }

    /// Whether no membership is listed.
    pub fn is_empty(&self) -> bool {
        self.partitions.iter().all(|(_, guids)| guids.is_empty())
    }

    /// Every (partition name, GUID) membership as owned pairs, partition by partition.
    pub fn into_pairs(self) -> Vec<(String, Guid)> {
        let mut out = Vec::with_capacity(self.len());
        for (name, guids) in self.partitions {
            out.extend(guids.into_iter().map(|g| (name.clone(), g)));
        }
        out
    }
}

/// The memberships of a [`SmListing`], partition by partition.
#[derive(Clone, Debug)]
pub struct Memberships<'a> {
    rest: std::slice::Iter<'a, (String, Vec<Guid>)>,
    name: &'a str,
    guids: std::slice::Iter<'a, Guid>,
    left: usize,
}

impl<'a> Iterator for Memberships<'a> {
    type Item = (&'a str, Guid);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(guid) = self.guids.next() {
                self.left -= 1;
                return Some((self.name, *guid));
            }
            let (name, guids) = self.rest.next()?;
            self.name = name;
            self.guids = guids.iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Memberships<'_> {}

/// Groups (partition name, GUID) pairs by partition, in the order each partition is first named.
impl FromIterator<(String, Guid)> for SmListing {
    fn from_iter<I: IntoIterator<Item = (String, Guid)>>(pairs: I) -> Self {
        let mut listing = SmListing::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (name, guid) in pairs {
            match index.get(&name) {
                Some(&at) => listing.partitions[at].1.push(guid),
                None => {
                    index.insert(name.clone(), listing.partitions.len());
                    listing.partitions.push((name, vec![guid]));
                }
            }
        }
        listing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_grouped_by_partition_and_given_back_in_that_order() {
        let g = Guid::from_u64;
        let pairs = vec![("0x5".to_owned(), g(1)), ("0x7fff".to_owned(), g(1)), ("0x5".to_owned(), g(2))];
        let listing: SmListing = pairs.into_iter().collect();
        let grouped: Vec<(&str, &[Guid])> = listing.partitions().collect();
        assert_eq!(grouped, vec![("0x5", &[g(1), g(2)][..]), ("0x7fff", &[g(1)][..])]);
        assert_eq!(listing.len(), 3);
        assert_eq!(listing.memberships().collect::<Vec<_>>(), vec![("0x5", g(1)), ("0x5", g(2)), ("0x7fff", g(1))]);
        assert_eq!(
            listing.into_pairs(),
            vec![("0x5".to_owned(), g(1)), ("0x5".to_owned(), g(2)), ("0x7fff".to_owned(), g(1))]
        );
        assert!(SmListing::new().is_empty());
    }

    #[test]
    fn the_memberships_know_how_many_are_left() {
        let g = Guid::from_u64;
        let mut listing = SmListing::new();
        listing.push("0x5".into(), vec![g(1), g(2)]);
        listing.push("empty".into(), Vec::new());
        listing.push("0x6".into(), vec![g(3)]);
        let mut memberships = listing.memberships();
        assert_eq!(memberships.len(), 3);
        assert_eq!(memberships.next(), Some(("0x5", g(1))));
        assert_eq!(memberships.size_hint(), (2, Some(2)));
        assert_eq!(memberships.by_ref().collect::<Vec<_>>(), vec![("0x5", g(2)), ("0x6", g(3))]);
        assert_eq!(memberships.len(), 0);
        assert_eq!(SmListing::new().memberships().next(), None);
    }
}
