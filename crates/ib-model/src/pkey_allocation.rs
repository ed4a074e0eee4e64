//! Partitions allocated one per network: the ledger of which NAD holds which key of the allocation
//! range, and the decision of what to allocate and what to give back.
//!
//! The ledger is the only authority on allocations. It names each holder by namespace, name and UID,
//! so a NAD deleted and created again under the same name is a new holder: the old one keeps its key
//! until its pods are gone, and the new one gets a key of its own. Nothing a NAD author writes (an
//! annotation, a key in the config) is read back as an allocation.
//!
//! Invariant: one holder per key, one key per holder UID, and every key inside the range.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::annotation::NetworkRef;
use crate::pkey::{PKey, PKeyRange};
use crate::text::echo;

/// The NAD a key is allocated to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Holder {
    /// The NAD's namespace.
    pub namespace: String,
    /// The NAD's name.
    pub name: String,
    /// The NAD's UID: a NAD created again under the same name is another holder.
    pub uid: String,
}

impl Holder {
    /// A holder from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, uid: impl Into<String>) -> Self {
        Holder { namespace: namespace.into(), name: name.into(), uid: uid.into() }
    }

    /// The `namespace/name` pods use to refer to the NAD.
    pub fn network(&self) -> NetworkRef {
        NetworkRef::new(self.namespace.clone(), self.name.clone())
    }
}

/// Why a stored ledger entry was left out when the ledger was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "each variant's #[error] message is its documentation; its fields are the values the message names"
)]
pub enum AllocationError {
    #[error("ledger entry {key:?}: not a partition key")]
    Key { key: String },
    #[error("ledger entry {key}: outside the allocation range {range}; the allocation is dropped")]
    OutsideRange { key: PKey, range: PKeyRange },
    #[error("ledger entry {key}: the value is not a holder (namespace, name, uid): {reason}")]
    Value { key: PKey, reason: String },
    #[error("ledger entry {key}: the NAD with uid {uid:?} already holds {held}; the later entry is dropped")]
    SecondKey { key: PKey, uid: String, held: PKey },
}

/// Which NAD holds which key of the range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationLedger {
    range: PKeyRange,
    by_key: BTreeMap<PKey, Holder>,
    by_uid: HashMap<String, PKey>,
}

impl AllocationLedger {
    /// An empty ledger for `range`.
    pub fn new(range: PKeyRange) -> Self {
        AllocationLedger { range, by_key: BTreeMap::new(), by_uid: HashMap::new() }
    }

    /// The range keys are allocated from.
    pub fn range(&self) -> PKeyRange {
        self.range
    }

    /// Reads a stored ledger: one entry per key (`0x1001` → the holder as JSON). Entries that break the
    /// invariant are left out and reported; the rest is kept, in key order, so that the lower key of a
    /// holder named twice is the one it keeps.
    pub fn from_data<'a>(
        range: PKeyRange,
        data: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Self, Vec<AllocationError>) {
        let mut ledger = AllocationLedger::new(range);
        let mut problems = Vec::new();
        let mut parsed: BTreeMap<PKey, &str> = BTreeMap::new();
        for (key, value) in data {
            match PKey::parse(key) {
                Ok(pkey) if range.contains(pkey) => {
                    parsed.insert(pkey, value);
                }
                Ok(pkey) => problems.push(AllocationError::OutsideRange { key: pkey, range }),
                Err(_) => problems.push(AllocationError::Key { key: echo(key) }),
            }
        }
        for (key, value) in parsed {
            match serde_json::from_str::<Holder>(value) {
                Err(e) => problems.push(AllocationError::Value { key, reason: e.to_string() }),
                Ok(holder) => {
                    if let Err(e) = ledger.insert(key, holder) {
                        problems.push(e);
                    }
                }
            }
        }
        (ledger, problems)
    }

    /// The stored form: key text → holder as JSON.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        self.by_key
            .iter()
            .map(|(k, h)| (k.to_string(), serde_json::to_string(h).unwrap_or_else(|_| String::from("{}"))))
            .collect()
    }

    fn insert(&mut self, key: PKey, holder: Holder) -> Result<(), AllocationError> {
        if !self.range.contains(key) {
            return Err(AllocationError::OutsideRange { key, range: self.range });
        }
        if let Some(held) = self.by_uid.get(&holder.uid) {
            return Err(AllocationError::SecondKey { key, uid: holder.uid, held: *held });
        }
        self.by_uid.insert(holder.uid.clone(), key);
        self.by_key.insert(key, holder);
        Ok(())
    }

    fn remove(&mut self, key: PKey) -> Option<Holder> {
        let holder = self.by_key.remove(&key)?;
        self.by_uid.remove(&holder.uid);
        Some(holder)
    }

    /// The key the NAD with `uid` holds.
    pub fn key_of(&self, uid: &str) -> Option<PKey> {
        self.by_uid.get(uid).copied()
    }

    /// Who holds `key`.
    pub fn holder_of(&self, key: PKey) -> Option<&Holder> {
        self.by_key.get(&key)
    }

    /// Every allocation, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (PKey, &Holder)> {
        self.by_key.iter().map(|(k, h)| (*k, h))
    }

    /// How many keys are allocated.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key is allocated.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// What the planner is told: the key of each network whose NAD, as it exists now (`live` maps a
    /// network to its current UID), holds one. A key still held by an earlier NAD of the same name
    /// is not that network's key.
    pub fn published(&self, live: &HashMap<NetworkRef, String>) -> HashMap<NetworkRef, PKey> {
        self.by_key
            .iter()
            .filter_map(|(key, h)| {
                let network = h.network();
                (live.get(&network) == Some(&h.uid)).then_some((network, *key))
            })
            .collect()
    }

    /// Checks the invariant; for tests and debug assertions.
    pub fn check(&self) -> Result<(), String> {
        if self.by_key.len() != self.by_uid.len() {
            return Err(format!("{} keys but {} holders", self.by_key.len(), self.by_uid.len()));
        }
        for (key, h) in &self.by_key {
            if !self.range.contains(*key) {
                return Err(format!("{key} outside {}", self.range));
            }
            if self.by_uid.get(&h.uid) != Some(key) {
                return Err(format!("{key}: holder {} indexed elsewhere", h.uid));
            }
        }
        Ok(())
    }
}

/// A NAD as the allocator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NadState {
    /// Its namespace, name and UID.
    pub holder: Holder,
    /// Whether its config asks for a partition (`allocate_pkey: true`, and the config is valid).
    pub asks: bool,
    /// Whether it is being deleted (it has a deletionTimestamp).
    pub deleting: bool,
}

/// What the allocator knows of the world besides the ledger.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Every NAD that exists now (at least every one that asks or holds a key).
    pub nads: Vec<NadState>,
    /// Keys in use outside the ledger: partitions the subnet manager has.
    pub taken: BTreeSet<PKey>,
    /// Keys that pods still use (an ownership record names them): such a key is never given back.
    pub in_use: BTreeSet<PKey>,
    /// Keys withdrawn from the planner long enough ago that no pod can still be joining them: only
    /// these are given back. A key found unused is first withdrawn (the planner stops placing new
    /// pods in it), and given back only when found unused again after that.
    pub settled: BTreeSet<PKey>,
}

/// What changed, and the ledger after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The ledger to store and publish.
    pub ledger: AllocationLedger,
    /// Keys newly allocated, to the NAD named.
    pub allocated: Vec<(PKey, Holder)>,
    /// Keys given back, from the NAD named.
    pub released: Vec<(PKey, Holder)>,
    /// Keys found unused whose holder no longer wants them, still in the ledger: to be withdrawn from
    /// the planner, and given back once settled.
    pub withdrawing: Vec<(PKey, Holder)>,
    /// NADs that ask but found no free key.
    pub exhausted: Vec<Holder>,
}

impl Decision {
    /// Whether the ledger changed.
    pub fn changed(&self) -> bool {
        !self.allocated.is_empty() || !self.released.is_empty()
    }
}

/// Decides what to allocate and what to give back:
/// - a key stays with its holder while the holder exists (same UID), asks and is not being deleted;
/// - otherwise (the NAD is gone, deleting, re-created under a new UID, or no longer asks) it is
///   withdrawn once no pod uses it, and given back once it is settled and still unused;
/// - every NAD that asks, is not being deleted and holds nothing gets the lowest key of the range that
///   is neither allocated nor taken; when none is left, it is reported as exhausted.
pub fn decide(ledger: &AllocationLedger, world: &World) -> Decision {
    let mut next = ledger.clone();
    let live: HashMap<&str, &NadState> = world.nads.iter().map(|n| (n.holder.uid.as_str(), n)).collect();
    let mut released = Vec::new();
    let mut withdrawing = Vec::new();
    let held: Vec<(PKey, Holder)> = ledger.entries().map(|(k, h)| (k, h.clone())).collect();
    for (key, holder) in held {
        let wanted = live.get(holder.uid.as_str()).is_some_and(|n| n.asks && !n.deleting);
        if wanted || world.in_use.contains(&key) {
            continue;
        }
        if world.settled.contains(&key) {
            next.remove(key);
            released.push((key, holder));
        } else {
            withdrawing.push((key, holder));
        }
    }

    let mut asking: Vec<&NadState> = world
        .nads
        .iter()
        .filter(|n| n.asks && !n.deleting && !n.holder.uid.is_empty() && next.key_of(&n.holder.uid).is_none())
        .collect();
    asking.sort_by(|a, b| a.holder.cmp(&b.holder));
    let mut seen = HashSet::new();
    asking.retain(|n| seen.insert(n.holder.uid.as_str()));

    let range = ledger.range();
    let mut cursor = Some(range.first());
    let mut allocated = Vec::new();
    let mut exhausted = Vec::new();
    for nad in asking {
        // Keys below the cursor were free-checked already: one pass over the range for every NAD.
        let mut found = None;
        while let Some(key) = cursor {
            cursor = following(key, range);
            if next.holder_of(key).is_none() && !world.taken.contains(&key) && !world.in_use.contains(&key) {
                found = Some(key);
                break;
            }
        }
        match found {
            // The key is free in `next` and the holder's UID holds nothing: the insert cannot fail.
            Some(key) if next.insert(key, nad.holder.clone()).is_ok() => allocated.push((key, nad.holder.clone())),
            _ => exhausted.push(nad.holder.clone()),
        }
    }
    Decision { ledger: next, allocated, released, withdrawing, exhausted }
}

/// The key after `key` in `range`, if any.
fn following(key: PKey, range: PKeyRange) -> Option<PKey> {
    PKey::new(u32::from(key.get()) + 1).ok().filter(|k| range.contains(*k))
}

#[cfg(test)]
mod tests;
