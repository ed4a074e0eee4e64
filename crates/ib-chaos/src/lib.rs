//! Chaos soak for ib-kubernetes: pods churn over several PKeys on the emulated cluster while UFM
//! fails and hangs, the API server fails, conflicts, drops watches and compacts history, and controller
//! replicas (real processes) are SIGKILLed and restarted. Once the faults stop, the invariants of
//! [`invariants`] are checked from the emulators' state and request logs.
#![forbid(unsafe_code)]

pub mod invariants;
pub mod replicas;
pub mod soak;

pub use soak::{SoakError, SoakOptions, SoakReport, run};
