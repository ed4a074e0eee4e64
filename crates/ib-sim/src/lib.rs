//! Emulated InfiniBand cluster for ib-kubernetes tests, demo and benchmarks: kubelet, workloads, sim command.
#![forbid(unsafe_code)]

pub mod kubelet;

pub use kubelet::{Kubelet, KubeletError, PodOutcome, Started};
