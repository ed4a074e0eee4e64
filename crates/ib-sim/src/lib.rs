//! Emulated InfiniBand cluster for ib-kubernetes tests, demo and benchmarks: the simulated kubelet,
//! the demo's workload and run, and the `sim` command. The emulators themselves are the
//! `kube-emulator` and `ufm-emulator` crates.
//!
//! Module map: `kubelet` (nodes: Pending → Running once ib-sriov-cni would succeed), `workload`
//! (seeded NADs and pods) with `rng`, `demo` (the whole system, verified), `fixture` (both emulators and the
//! controller environment pointing at them), `sim` (emulators for people and scripts) with `envfile` and `forward`, `logging` (for the two commands).
#![forbid(unsafe_code)]

pub mod binary;
pub mod demo;
pub mod envfile;
pub mod fixture;
pub mod forward;
pub mod kubelet;
pub mod logging;
pub mod rng;
pub mod sim;
pub mod workload;

pub use kubelet::{Kubelet, KubeletError, PodOutcome, Started};
pub use sim::{RunningSim, SimError, SimOptions};
