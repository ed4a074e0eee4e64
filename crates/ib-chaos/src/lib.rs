//! Chaos soak for ib-kubernetes: pods churn over several PKeys on the emulated cluster while UFM
//! fails and hangs, the API server fails, conflicts, drops watches and compacts history, controller
//! replicas (real processes) are SIGKILLed and restarted, and hostile tenants ([`hostile`]) write
//! forged, oversized and cross-namespace annotations. Once the faults stop, the invariants of
//! [`invariants`] are checked from the emulators' state and request logs.
#![forbid(unsafe_code)]

pub mod hostile;
pub mod invariants;
pub mod reading;
pub mod replicas;
pub mod soak;

pub use hostile::HostileOptions;
pub use soak::{SoakError, SoakOptions, SoakReport, run};
