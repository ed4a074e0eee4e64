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

    /// Every (partition name, GUID) membership, partition by partition.
    pub fn memberships(&self) -> impl Iterator<Item = (&str, Guid)> {
        self.partitions.iter().flat_map(|(name, guids)| guids.iter().map(move |g| (name.as_str(), *g)))
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
}
