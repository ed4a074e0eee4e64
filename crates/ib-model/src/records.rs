//! Ownership records: who owns which GUID, in which partition, in what state, as stored in the cluster
//! in objects only the controller writes (`GuidBlock` custom resources, one per block of 64 GUIDs).
//!
//! What a pod author writes is a request; a record is the only proof of ownership. A record is written
//! before its GUID joins a partition, and the partition a record names is the only membership the
//! controller ever removes for that GUID, so a membership that no record explains (another cluster's,
//! a hand-made one) is reported and left alone.
//!
//! This module keeps what the controller knows the cluster holds: per GUID, a fingerprint of its stored
//! record (enough to tell whether it matches what the ledger wants), and per block whether a write is in
//! flight. Writes are merge patches of only the entries that change, so a burst of allocations in one
//! block costs one write, and a state change costs a few bytes.
//!
//! Merge patches of different entries commute (the API server applies each one to the object as it is
//! then), so a block may have several writes in flight as long as no GUID is in two of them: one GUID's
//! changes stay in the order they were decided, and a pod does not wait for another pod's write.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::guid::Guid;
use crate::marks::Marks;
use crate::pkey::PKey;
use crate::pod::{InterfaceKey, PodUid};

/// GUIDs per block: a burst of generated GUIDs (consecutive) shares few blocks, and a full block's
/// object (about 250 bytes per entry, 16 KB) stays small, since the API server stores the whole object
/// again at every write (blocks of 256 made each write four times as costly and churn latency
/// rose with it).
pub const BLOCK_SIZE: u64 = 64;

/// Writes in flight to one block at most. Consecutive pods usually get GUIDs of the same block, so one
/// write at a time would make each wait for the previous pod's; a few let them overlap, and beyond that
/// changes gather into the next write.
pub const WRITES_PER_BLOCK: usize = 4;

/// A block of [`BLOCK_SIZE`] GUIDs, named by its first GUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(u64);

impl BlockId {
    /// The block holding `guid`.
    pub fn of(guid: Guid) -> Self {
        BlockId(guid.as_u64() & !(BLOCK_SIZE - 1))
    }

    /// The block's first GUID.
    pub fn start(self) -> Guid {
        Guid::from_u64(self.0)
    }

    /// The object name: the first GUID as 16 lowercase hex digits (a valid DNS-1123 subdomain).
    pub fn name(self) -> String {
        format!("{:016x}", self.0)
    }

    /// Reads an object name written by [`name`](Self::name); anything else is not a block.
    pub fn from_name(name: &str) -> Option<Self> {
        if name.len() != 16 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let value = u64::from_str_radix(name, 16).ok()?;
        (value % BLOCK_SIZE == 0).then_some(BlockId(value))
    }
}

impl std::fmt::Display for BlockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Where a GUID's membership stands, as the record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordState {
    /// Owned; not (yet) known to be a member of its partition.
    Reserved,
    /// Owned and a member of its partition (or of none, for a GUID-only network).
    Member,
    /// A change was sent and its outcome is unknown (a timeout): held until a listing settles it.
    Unknown,
    /// The owner is gone; the GUID is leaving its partition.
    Releasing,
}

impl RecordState {
    /// The state as a record stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Reserved => "Reserved",
            RecordState::Member => "Member",
            RecordState::Unknown => "Unknown",
            RecordState::Releasing => "Releasing",
        }
    }

    /// Reads a stored state; `None` for text no version writes.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Reserved" => Some(RecordState::Reserved),
            "Member" => Some(RecordState::Member),
            "Unknown" => Some(RecordState::Unknown),
            "Releasing" => Some(RecordState::Releasing),
            _ => None,
        }
    }
}

/// One record, whole: what a block holds for one GUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The interface that owns the GUID.
    pub owner: InterfaceKey,
    /// The owning pod's namespace, for people reading the block.
    pub pod_namespace: String,
    /// The owning pod's name, for people reading the block.
    pub pod_name: String,
    /// `None`: a GUID-only network.
    pub pkey: Option<PKey>,
    /// Where the GUID's membership stands.
    pub state: RecordState,
}

/// One entry of a block write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordChange {
    /// Write the whole record (a new owner, or a new partition).
    Set(Record),
    /// Only the state changes; the owner fields stay as stored.
    State(RecordState),
    /// The GUID is free again.
    Delete,
}

impl RecordChange {
    /// A change that only brings a stored state up to date (`Member` after the add, `Releasing` before
    /// the remove). Nothing waits for it: a later leader learns the same from the subnet manager's
    /// listing. It goes with the block's next write, or with the caller's periodic flush
    /// ([`State::flush_records`](crate::State::flush_records)), so a pod's life costs two writes
    /// (reserve, delete) instead of four.
    pub fn can_wait(&self) -> bool {
        matches!(self, RecordChange::State(RecordState::Member | RecordState::Releasing))
    }
}

/// Make block `block` hold these changes (a merge patch; the block is created when missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordWrite {
    /// The block written.
    pub block: BlockId,
    /// Per GUID of the block, what its entry becomes.
    pub changes: BTreeMap<Guid, RecordChange>,
}

/// What is known of one stored record: enough to compare, not a copy of its strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) pod: PodUid,
    pub(crate) owner_hash: u64,
    pub(crate) pkey: Option<PKey>,
    pub(crate) state: RecordState,
}

/// The identity of an owner as a number: records are compared by it, never by their strings.
pub(crate) fn owner_hash(owner: &InterfaceKey) -> u64 {
    // SipHash with fixed keys: the same owner gives the same number in every process.
    let mut h = std::hash::DefaultHasher::new();
    owner.hash(&mut h);
    h.finish()
}

/// The partitions the new records of `write` name, once per GUID.
fn joins(write: &RecordWrite) -> impl Iterator<Item = PKey> + '_ {
    write.changes.values().filter_map(|c| match c {
        RecordChange::Set(record) => record.pkey,
        _ => None,
    })
}

/// The stored records and the writes in flight.
#[derive(Clone, Debug, Default)]
pub(crate) struct Records {
    stored: HashMap<Guid, Stored>,
    /// Writes in flight per block (at most [`WRITES_PER_BLOCK`]).
    writing: HashMap<BlockId, usize>,
    /// GUIDs in a write in flight: nothing else is written for them until it ends, so one GUID's writes
    /// are applied in the order they were decided.
    in_flight: HashSet<Guid>,
    /// GUIDs whose record may differ from what is wanted; every one: every GUID with a stored record
    /// whose last write did not fail.
    dirty: Marks<Guid>,
    /// GUIDs whose last write failed: written again only after the caller's backoff (`retry`).
    failed: BTreeSet<Guid>,
    /// GUIDs whose only change [can wait](RecordChange::can_wait).
    waiting: BTreeSet<Guid>,
    /// The next plan writes waiting changes too.
    flush: bool,
    /// Per partition, GUIDs in a write in flight whose new record names it: joins that wait only for
    /// their record. `joining_total` counts them over every partition.
    joining: HashMap<PKey, usize>,
    joining_total: usize,
}

impl Records {
    pub(crate) fn clear(&mut self) {
        *self = Records::default();
    }

    pub(crate) fn get(&self, guid: Guid) -> Option<&Stored> {
        self.stored.get(&guid)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Guid, &Stored)> {
        self.stored.iter().map(|(g, s)| (*g, s))
    }

    pub(crate) fn len(&self) -> usize {
        self.stored.len()
    }

    /// A record read from the cluster.
    pub(crate) fn load(&mut self, guid: Guid, record: &Record) {
        self.stored.insert(
            guid,
            Stored {
                pod: record.owner.pod.clone(),
                owner_hash: owner_hash(&record.owner),
                pkey: record.pkey,
                state: record.state,
            },
        );
    }

    pub(crate) fn mark(&mut self, guid: Guid) {
        if !self.failed.contains(&guid) {
            self.dirty.insert(guid);
        }
    }

    /// Every GUID with a stored record is looked at again (a leader's start, which has just read them).
    pub(crate) fn mark_every_stored(&mut self) {
        self.dirty.mark_every();
    }

    pub(crate) fn take_dirty(&mut self) -> Vec<Guid> {
        let (stored, failed) = (&self.stored, &self.failed);
        self.dirty.take(|| stored.keys().copied().filter(|g| !failed.contains(g)))
    }

    /// Whether `block` takes no further write until one of its writes ends.
    pub(crate) fn is_full(&self, block: BlockId) -> bool {
        self.writing.get(&block).is_some_and(|n| *n >= WRITES_PER_BLOCK)
    }

    /// Whether a write in flight holds a change for `guid`.
    pub(crate) fn is_in_flight(&self, guid: Guid) -> bool {
        self.in_flight.contains(&guid)
    }

    /// Writes to `block` in flight.
    pub(crate) fn writes_to(&self, block: BlockId) -> usize {
        self.writing.get(&block).copied().unwrap_or(0)
    }

    /// `write` was handed to the executor.
    pub(crate) fn sent(&mut self, write: &RecordWrite) {
        *self.writing.entry(write.block).or_default() += 1;
        self.in_flight.extend(write.changes.keys().copied());
        for pkey in joins(write) {
            *self.joining.entry(pkey).or_default() += 1;
            self.joining_total += 1;
        }
    }

    /// Whether GUIDs whose next step is joining `pkey` wait for a record write in flight; with
    /// `any_partition`, joining any partition counts.
    pub(crate) fn joins_waiting(&self, pkey: PKey, any_partition: bool) -> bool {
        if any_partition { self.joining_total > 0 } else { self.joining.contains_key(&pkey) }
    }

    /// A write ended. On success the stored records are what it wrote.
    pub(crate) fn written(&mut self, write: &RecordWrite, ok: bool) {
        if let Some(n) = self.writing.get_mut(&write.block) {
            *n -= 1;
            if *n == 0 {
                self.writing.remove(&write.block);
            }
        }
        for guid in write.changes.keys() {
            self.in_flight.remove(guid);
        }
        for pkey in joins(write) {
            if let Some(n) = self.joining.get_mut(&pkey) {
                *n -= 1;
                if *n == 0 {
                    self.joining.remove(&pkey);
                }
            }
            self.joining_total = self.joining_total.saturating_sub(1);
        }
        for (guid, change) in &write.changes {
            if ok {
                match change {
                    RecordChange::Set(record) => self.load(*guid, record),
                    RecordChange::State(state) => {
                        if let Some(s) = self.stored.get_mut(guid) {
                            s.state = *state;
                        }
                    }
                    RecordChange::Delete => {
                        self.stored.remove(guid);
                    }
                }
            }
            if ok {
                // Its next step may now be allowed.
                self.dirty.insert(*guid);
            } else {
                self.failed.insert(*guid);
            }
        }
    }

    /// Failed writes may be planned again.
    pub(crate) fn retry(&mut self) {
        self.dirty.append(&mut self.failed);
    }

    /// `guid`'s change can wait for the block's next write.
    pub(crate) fn wait(&mut self, guid: Guid) {
        self.waiting.insert(guid);
    }

    /// `guid` is being planned again: whatever waited for it is decided anew.
    pub(crate) fn stop_waiting(&mut self, guid: Guid) {
        self.waiting.remove(&guid);
    }

    /// The waiting GUIDs of `block`, taken to go with a write to it.
    pub(crate) fn take_waiting_in(&mut self, block: BlockId) -> Vec<Guid> {
        let end = Guid::from_u64(block.start().as_u64().saturating_add(BLOCK_SIZE - 1));
        let taken: Vec<Guid> = self.waiting.range(block.start()..=end).copied().collect();
        for g in &taken {
            self.waiting.remove(g);
        }
        taken
    }

    pub(crate) fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Everything waiting is planned, and written, in the next plan.
    pub(crate) fn flush(&mut self) {
        if !self.waiting.is_empty() {
            self.dirty.append(&mut self.waiting);
            self.flush = true;
        }
    }

    pub(crate) fn take_flush(&mut self) -> bool {
        std::mem::take(&mut self.flush)
    }

    pub(crate) fn is_settled(&self) -> bool {
        self.writing.is_empty() && self.dirty.is_empty() && self.failed.is_empty() && self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_names_round_trip_and_align() {
        let g = Guid::parse("02:00:00:00:00:00:01:05").unwrap();
        let b = BlockId::of(g);
        assert_eq!(b.name(), "0200000000000100");
        assert_eq!(b.start(), Guid::parse("02:00:00:00:00:00:01:00").unwrap());
        assert_eq!(BlockId::from_name(&b.name()), Some(b));
        // Not a block: unaligned, upper case, wrong length, not hex.
        for bad in ["0200000000000101", "0200000000000A00", "02000000000001", "020000000000010g", ""] {
            assert_eq!(BlockId::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn owner_hash_tells_owners_apart() {
        use crate::annotation::NetworkRef;
        let a = InterfaceKey { pod: "uid-a".into(), network: NetworkRef::new("ns", "net"), interface: "net1".into() };
        let mut b = a.clone();
        b.interface = "net2".into();
        assert_eq!(owner_hash(&a), owner_hash(&a.clone()));
        assert_ne!(owner_hash(&a), owner_hash(&b));
    }

    #[test]
    fn states_round_trip() {
        for s in [RecordState::Reserved, RecordState::Member, RecordState::Unknown, RecordState::Releasing] {
            assert_eq!(RecordState::parse(s.as_str()), Some(s));
        }
        assert_eq!(RecordState::parse("member"), None);
    }

    #[test]
    fn joins_waiting_for_their_record_are_counted_per_partition_until_the_write_ends() {
        use crate::annotation::NetworkRef;
        let owner =
            InterfaceKey { pod: "uid-a".into(), network: NetworkRef::new("ns", "net"), interface: "net1".into() };
        let record = |pkey: u32| Record {
            owner: owner.clone(),
            pod_namespace: "ns".into(),
            pod_name: "a".into(),
            pkey: Some(PKey::new(pkey).unwrap()),
            state: RecordState::Reserved,
        };
        let g = |n: u64| Guid::from_u64(0x0200_0000_0000_0000 + n);
        let write = RecordWrite {
            block: BlockId::of(g(1)),
            changes: [
                (g(1), RecordChange::Set(record(5))),
                (g(2), RecordChange::Set(record(5))),
                (g(3), RecordChange::Delete),
            ]
            .into(),
        };
        let (p5, p6) = (PKey::new(5).unwrap(), PKey::new(6).unwrap());
        let mut records = Records::default();
        records.sent(&write);
        assert!(records.joins_waiting(p5, false) && !records.joins_waiting(p6, false));
        assert!(records.joins_waiting(p6, true), "any join counts for the shared partition");
        records.written(&write, false);
        assert!(
            !records.joins_waiting(p5, false) && !records.joins_waiting(p6, true),
            "a failed write ends the wait too"
        );
    }
}
