//! Emulated InfiniBand cluster for ib-kubernetes tests, demo and benchmarks: kubelet, workloads, sim command.
#![forbid(unsafe_code)]

pub mod envfile;
pub mod forward;
pub mod kubelet;
pub mod sim;

pub use kubelet::{Kubelet, KubeletError, PodOutcome, Started};
pub use sim::{RunningSim, SimError, SimOptions};
pub mod demo;
pub mod rng;
pub mod workload;
