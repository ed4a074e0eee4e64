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
//! [`state::State`] owns all of it, in parts that each keep their own invariant; it is updated by `apply`/`delete`/`reset` of pods and NADs and by the
//! outcomes of the work it asked for, and [`State::plan`](state::State::plan) decides what to do next.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod annotation;
pub mod guid;
pub mod ledger;
pub mod listing;
pub mod membership;
pub mod nad;
pub mod partition;
pub mod pending;
pub mod pkey;
pub mod pkey_allocation;
pub mod planner;
pub mod pod;
pub mod pool;
pub mod records;
pub mod state;
pub mod text;

mod flight;
mod known;
mod marks;
mod names;
mod ownership;
mod phase;
mod requests;
mod shape;
mod waits;

pub use annotation::{NetworkRef, NetworksAnnotation, Selection};
pub use guid::Guid;
pub use listing::SmListing;
pub use pending::{Pending, PendingReason};
pub use pkey::PKey;
pub use pod::{InterfaceKey, PodPhase, PodRef, PodUid, PodView};
pub use pool::{GuidPool, GuidRange};
pub use records::{BlockId, Record, RecordChange, RecordState, RecordWrite};
pub use state::{Imported, Notice, PatchOutcome, Plan, PodPatch, Policy, SmFailure, SmOp, SmRequest, State};
