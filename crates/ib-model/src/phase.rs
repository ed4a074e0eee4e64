//! How far a leadership has come before it may decide anything.

/// What the reading of the ownership records found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordsRead {
    Unread,
    /// No block exists at all: the first start, when configured annotations are imported once.
    NoneExist,
    Found,
}

/// Nothing is decided before the pods, the NADs, the ownership records and the subnet manager have been
/// read; on the first start annotations are then imported, and nothing else is decided until the
/// anchor block that makes the import final is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartPhase {
    /// Which of the four have been read for this leadership.
    Reading { pods: bool, nads: bool, sm: bool, records: RecordsRead },
    /// The import is done and its anchor block not stored yet; `may_send`: the anchor write may be sent
    /// (again), at once after the import, then after each backoff.
    Anchoring { may_send: bool },
    /// Everything has been read: decisions are made.
    Running,
}

impl Default for StartPhase {
    fn default() -> Self {
        StartPhase::Reading { pods: false, nads: false, sm: false, records: RecordsRead::Unread }
    }
}

impl StartPhase {
    /// Both watches have delivered their initial lists (listings may be asked for).
    pub(crate) fn watches_synced(self) -> bool {
        match self {
            StartPhase::Reading { pods, nads, .. } => pods && nads,
            StartPhase::Anchoring { .. } | StartPhase::Running => true,
        }
    }

    pub(crate) fn pods_read(&mut self) {
        if let StartPhase::Reading { pods, .. } = self {
            *pods = true;
        }
    }

    pub(crate) fn nads_read(&mut self) {
        if let StartPhase::Reading { nads, .. } = self {
            *nads = true;
        }
    }

    /// The subnet manager was read; whether for the first time in this leadership.
    pub(crate) fn sm_read(&mut self) -> bool {
        match self {
            StartPhase::Reading { sm, .. } => !std::mem::replace(sm, true),
            StartPhase::Anchoring { .. } | StartPhase::Running => false,
        }
    }

    /// The records were read; `any_block`: whether any block exists at all. Finding none once reading
    /// is over starts the import again.
    pub(crate) fn records_read(&mut self, any_block: bool) {
        let found = if any_block { RecordsRead::Found } else { RecordsRead::NoneExist };
        match self {
            StartPhase::Reading { records, .. } => *records = found,
            StartPhase::Anchoring { .. } | StartPhase::Running if !any_block => {
                *self = StartPhase::Reading { pods: true, nads: true, sm: true, records: found }
            }
            StartPhase::Anchoring { .. } | StartPhase::Running => {}
        }
    }

    pub(crate) fn records_known(self) -> bool {
        !matches!(self, StartPhase::Reading { records: RecordsRead::Unread, .. })
    }

    /// A new leadership reads everything again except the NADs, whose watch keeps running.
    pub(crate) fn new_leadership(&mut self) {
        let nads = !matches!(self, StartPhase::Reading { nads: false, .. });
        *self = StartPhase::Reading { pods: false, nads, sm: false, records: RecordsRead::Unread };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_ends_only_when_all_four_are_read_in_any_order() {
        let mut p = StartPhase::default();
        p.records_read(true);
        assert!(p.sm_read(), "the first listing of the leadership");
        assert!(!p.sm_read());
        p.pods_read();
        assert!(!p.watches_synced());
        p.nads_read();
        assert!(p.watches_synced() && p.records_known());
        assert_eq!(p, StartPhase::Reading { pods: true, nads: true, sm: true, records: RecordsRead::Found });
    }

    #[test]
    fn a_new_leadership_reads_all_but_the_nads_again() {
        for mut p in [StartPhase::Running, StartPhase::Anchoring { may_send: false }] {
            p.new_leadership();
            assert_eq!(p, StartPhase::Reading { pods: false, nads: true, sm: false, records: RecordsRead::Unread });
            assert!(!p.records_known());
        }
        let mut p = StartPhase::default();
        p.new_leadership();
        assert_eq!(p, StartPhase::default(), "NADs not read yet stay unread");
    }

    #[test]
    fn finding_no_records_after_reading_imports_again_and_finding_some_changes_nothing() {
        let mut p = StartPhase::Running;
        p.records_read(true);
        assert_eq!(p, StartPhase::Running);
        p.records_read(false);
        assert_eq!(p, StartPhase::Reading { pods: true, nads: true, sm: true, records: RecordsRead::NoneExist });
        let mut p = StartPhase::Anchoring { may_send: true };
        p.pods_read();
        p.nads_read();
        assert!(!p.sm_read());
        assert_eq!(p, StartPhase::Anchoring { may_send: true });
    }
}
