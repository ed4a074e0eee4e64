//! Benchmarks of ib-kubernetes at scale. The controller runs as its own process (the real binary, with
//! only an environment, as a deployment starts it) against the emulated Kubernetes API server and UFM,
//! which run in the benchmark's process together with the load generator; the controller's memory and
//! CPU are read from /proc, so they are its own.

pub mod cluster;
pub mod compare;
pub mod controller_kind;
pub mod plot;
pub mod process;
pub mod rails;
pub mod report;
pub mod scenarios;
pub mod ufm_service;
pub mod watch_delay;
