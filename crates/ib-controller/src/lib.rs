//! The Kubernetes side of ib-kubernetes: watchers, state task, executors, leader election, admin HTTP.
#![forbid(unsafe_code)]
