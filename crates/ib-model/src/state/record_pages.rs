//! The ownership records read at a leader's start, taken in page by page as they are read instead of
//! gathered whole: [`State::records_listed`] is one page and its end.

use super::State;
use crate::guid::Guid;
use crate::records::{Record, RecordState};

impl State {
    /// One page of the ownership records read for this leadership, `(GUID, record)` of each of its blocks,
    /// loaded at once. Records of GUIDs outside the pool range are left alone (the range may have been
    /// changed). Nothing is decided before [`records_end`](Self::records_end); a read that fails after
    /// some pages is read again whole, and a record taken in before is kept as it was.
    pub fn records_page<I: IntoIterator<Item = (Guid, Record)>>(&mut self, records: I) {
        // Every record read is looked at again; the marks are one flag each, not one per GUID.
        self.records.mark_every_stored();
        self.dirty.guids.mark_every();
        for (guid, mut record) in records {
            if !self.owners.range().contains(guid) || self.owners.ledger().contains(guid) {
                continue;
            }
            // Each record names its pod in a string of its own: the one copy the state already has is
            // kept instead (a pod with 8 rails has 8 records).
            let shared =
                self.known.shared_uid(&record.owner.pod).or_else(|| self.owners.ledger().shared_pod(&record.owner.pod));
            if let Some(uid) = shared {
                record.owner.pod = uid.clone();
            }
            self.records.load(guid, &record);
            if record.state != RecordState::Releasing && self.owners.ledger().guid_of(&record.owner).is_none() {
                // A recorded claim lasts until its pod is gone or finished, whatever its annotation says
                // now: its VF may carry the GUID.
                self.dirty.pods.insert(record.owner.pod.clone());
                self.planner().restore(guid, record.owner, record.pkey);
            }
        }
    }

    /// Every page of the ownership records has been read: whether any block exists at all (none: the
    /// first start, when annotations are imported once).
    pub fn records_end(&mut self, any_block: bool) {
        self.phase.records_read(any_block);
    }
}
