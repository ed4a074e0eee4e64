//! What the state task is told: watch events, leadership, timers, and the outcomes of the work it
//! handed to its executors, each error with its type.

use std::time::Duration;

use ib_model::{Guid, NetworkRef, PatchOutcome, PodPatch, PodUid, PodView, RecordWrite, SmFailure, SmRequest};
use ib_sm::SmError;

use crate::call::CallError;
use crate::records::{Listed, RecordsError};

/// Everything that can change the state.
#[derive(Debug)]
pub enum Input {
    PodApplied(PodView),
    PodDeleted(PodUid),
    /// A complete re-list of pods (the watch's initial sync or a recovery from a gap).
    PodsReset(Vec<PodView>),
    NadApplied(NetworkRef, Option<String>),
    NadDeleted(NetworkRef),
    NadsReset(Vec<(NetworkRef, Option<String>)>),
    Leading(bool),
    Resync,
    /// The drift grace of the leadership `term` is over.
    DriftGraceOver(u64),
    /// Every pod, read afresh for the leadership `term`, with the list's resourceVersion.
    FreshPods {
        term: u64,
        result: Result<(Vec<PodView>, Option<String>), CallError<kube::Error>>,
    },
    SmDone {
        term: u64,
        request: SmRequest,
        result: Result<(), SmFailure>,
        elapsed: Duration,
    },
    SmListed {
        term: u64,
        result: Result<Vec<(String, Guid)>, CallError<SmError>>,
    },
    /// Every ownership record, read for the leadership `term`: whether any block exists, and the records.
    RecordsListed {
        term: u64,
        result: Result<Listed, RecordsError>,
    },
    RecordsWritten {
        term: u64,
        write: RecordWrite,
        result: Result<(), RecordsError>,
    },
    RetryRecords(u64),
    RetryRecordWrites,
    /// Write the record changes that waited for their block's next write.
    FlushRecords,
    PatchDone {
        term: u64,
        patch: PodPatch,
        outcome: PatchOutcome,
    },
    RetryGuids(Vec<Guid>),
    RetryPod(PodUid),
}
