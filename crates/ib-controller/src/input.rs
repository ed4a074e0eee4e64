//! What the state task is told: watch events, leadership, timers, and the outcomes of the work it
//! handed to its executors, each error with its type.

use std::time::Duration;

use ib_model::{
    Guid, NetworkRef, PatchOutcome, PodPatch, PodUid, PodView, Record, RecordWrite, SmFailure, SmListing, SmRequest,
};
use ib_sm::SmError;

use crate::call::CallError;
use crate::records::RecordsError;

/// Everything that can change the state.
#[derive(Debug)]
pub enum Input {
    /// A pod was created or changed.
    PodApplied(PodView),
    /// A pod is gone.
    PodDeleted(PodUid),
    /// A page of the pod watch's complete list (its initial sync or a recovery from a gap): `first`
    /// begins a list, `done` ends it (see `State::relist_pods_page`).
    PodsReset {
        /// The first page of a list: an earlier, unfinished list no longer counts.
        first: bool,
        /// The last page: pods no page of the list contained are gone.
        done: bool,
        /// The page's pods.
        views: Vec<PodView>,
    },
    /// A NAD was created or changed, with its CNI config (`None` when it has none).
    NadApplied(NetworkRef, Option<String>),
    /// A NAD is gone.
    NadDeleted(NetworkRef),
    /// A complete re-list of NADs, with their CNI configs.
    NadsReset(Vec<(NetworkRef, Option<String>)>),
    /// This replica gained (`true`) or lost (`false`) the leadership.
    Leading(bool),
    /// Time to re-read the subnet manager and repair drift.
    Resync,
    /// The drift grace of the leadership `term` is over.
    DriftGraceOver(u64),
    /// One page of the pods read afresh for the leadership `term`, handed over as it is read so that the
    /// whole list is never held at once.
    FreshPodsPage {
        /// The leadership the read was made for; pages of an older one are ignored.
        term: u64,
        /// The page's pods.
        views: Vec<PodView>,
        /// Held until the page is taken in: the list reads only a few pages ahead of the state task.
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// The fresh read of every pod for the leadership `term` has ended: every page has been sent before.
    FreshPodsEnd {
        /// The leadership the read was made for; the end of an older one is ignored.
        term: u64,
        /// The list's resourceVersion, or why the list failed (it is then read again whole).
        result: Result<Option<String>, CallError<kube::Error>>,
    },
    /// A subnet-manager request has ended.
    SmDone {
        /// The leadership the request was sent under.
        term: u64,
        /// The request that was sent.
        request: SmRequest,
        /// Whether it was applied, and if not whether it may have been.
        result: Result<(), SmFailure>,
        /// How long the call took, for the latency metric.
        elapsed: Duration,
    },
    /// The subnet manager's memberships were read, for drift repair.
    SmListed {
        /// The leadership the read was made for.
        term: u64,
        /// Every membership, partition by partition, or why the read failed.
        result: Result<SmListing, CallError<SmError>>,
    },
    /// One page of the ownership records read for the leadership `term`, handed over as it is read so
    /// that the whole list is never held at once.
    RecordsPage {
        /// The leadership the read was made for; pages of an older one are ignored.
        term: u64,
        /// The page's records.
        records: Vec<(Guid, Record)>,
    },
    /// Every ownership record has been read for the leadership `term`, every page sent before.
    RecordsListed {
        /// The leadership the read was made for.
        term: u64,
        /// Whether any block exists, or why the read failed (it is then read again whole).
        result: Result<bool, RecordsError>,
    },
    /// A write of ownership records has ended.
    RecordsWritten {
        /// The leadership the write was made under.
        term: u64,
        /// The write that was attempted.
        write: RecordWrite,
        /// Whether it was stored.
        result: Result<(), RecordsError>,
    },
    /// Read the ownership records again for the leadership `term`, after a failed read.
    RetryRecords(u64),
    /// Retry the record writes that failed.
    RetryRecordWrites,
    /// Write the record changes that waited for their block's next write.
    FlushRecords,
    /// A join held for the rest of its burst may go now.
    FlushLanes,
    /// A pod patch has ended.
    PatchDone {
        /// The leadership the patch was made under.
        term: u64,
        /// The patch that was attempted.
        patch: PodPatch,
        /// Whether it was applied, refused, or found the pod gone or changed.
        outcome: PatchOutcome,
    },
    /// Retry the subnet-manager work of these GUIDs after a failure.
    RetryGuids(Vec<Guid>),
    /// Retry the patch of this pod after a failure.
    RetryPod(PodUid),
    /// The partitions allocated to networks that asked for one, the whole ledger each time.
    PKeyAllocations(std::collections::HashMap<NetworkRef, ib_model::PKey>),
    /// Which keys of `range` anything in the state still names (`State::pkeys_claimed`), asked by the
    /// partition allocator before it gives a key back; `None` while the state cannot tell.
    PKeysClaimed {
        /// The allocation range.
        range: ib_model::pkey::PKeyRange,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<Option<std::collections::BTreeSet<ib_model::PKey>>>,
    },
}
