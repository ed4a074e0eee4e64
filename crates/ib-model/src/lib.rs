//! The pure domain core of ib-kubernetes. No I/O, no clocks, no environment: everything here is decided
//! from values, so it is tested without a cluster.
//!
//! ```text
//!  Pod ──annotation k8s.v1.cni.cncf.io/networks──► Selection (namespace/name, interface)
//!                                                      │ names
//!                                                      ▼
//!                                            NetworkAttachmentDefinition ──spec.config──► IbSriovSpec
//!                                                      │                                  (pkey, infinibandGUID)
//!  InterfaceKey = (pod uid, network, interface) ◄──────┘
//!        │ owns (Ledger)                              SM membership: PKey ──► {Guid}
//!        ▼                                                   ▲
//!      Guid ◄── GuidPool (free intervals of the range) ──────┘ pool = owned ∪ SM-held ∪ in flight
//! ```
//!
//! [`state::State`] owns all of it; it is updated by `apply`/`delete`/`reset` of pods and NADs and by the
//! outcomes of the work it asked for, and [`State::plan`](state::State::plan) decides what to do next.
#![forbid(unsafe_code)]

pub mod annotation;
pub mod guid;
pub mod nad;
pub mod partition;
pub mod pkey;
pub mod pool;
pub mod text;

pub use annotation::{NetworkRef, NetworksAnnotation, Selection};
pub use guid::Guid;
pub use pkey::PKey;
pub use pool::{GuidPool, GuidRange};
pub mod ledger;
pub mod membership;
pub mod pending;
pub mod planner;
pub mod pod;
pub mod records;
pub mod state;

pub use pending::{Pending, PendingReason};
pub use pod::{InterfaceKey, PodPhase, PodRef, PodUid, PodView};
pub use records::{BlockId, Record, RecordChange, RecordState, RecordWrite};
pub use state::{Imported, Notice, PatchOutcome, Plan, PodPatch, Policy, SmFailure, SmOp, SmRequest, State};
