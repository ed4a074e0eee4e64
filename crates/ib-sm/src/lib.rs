//! Subnet managers for ib-kubernetes: the SubnetManager trait, built-in ufm and noop.
#![forbid(unsafe_code)]
