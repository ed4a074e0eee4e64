//! The record of every request the emulator answered, and per-endpoint counters, so tests
//! can assert on exactly what a client sent and in which order.
//!
//! Sequence numbers come from an `AtomicU64` that may be shared with other emulators in the
//! same process (the Kubernetes one), so a test can tell whether a UFM add was answered before
//! a pod patch arrived.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::routes::Endpoint;
use crate::service::ServiceSpan;

/// The counter used when a config brings none: one per process, so every emulator that uses
/// it orders against every other.
pub fn global_sequence() -> Arc<AtomicU64> {
    static GLOBAL: OnceLock<Arc<AtomicU64>> = OnceLock::new();
    Arc::clone(GLOBAL.get_or_init(|| Arc::new(AtomicU64::new(0))))
}

/// Hands out strictly increasing numbers, starting at 1.
#[derive(Debug, Clone)]
pub struct Sequence(Arc<AtomicU64>);

impl Sequence {
    pub fn new(counter: Option<Arc<AtomicU64>>) -> Self {
        Sequence(counter.unwrap_or_else(global_sequence))
    }

    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// One answered request. The body is kept as text (lossily, should a client send non-UTF-8)
/// because every UFM body is JSON; credentials are never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Taken when the request arrived.
    pub seq: u64,
    /// Taken when the response was ready, from the same counter: anything with a higher `seq`
    /// elsewhere started after this client could have seen the answer.
    pub done_seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    pub status: u16,
    pub endpoint: Endpoint,
    /// The injected fault that decided the answer, if any.
    pub fault: Option<String>,
    /// When the request arrived and when its answer was ready, by the emulator's clock.
    pub arrived: Instant,
    pub answered: Instant,
    /// When it held a service slot, under a service model that is not instant.
    pub service: Option<ServiceSpan>,
}

/// The log plus counters. Counters count every request, answered by a handler or by a fault.
#[derive(Debug, Default)]
pub struct Journal {
    records: Vec<RequestRecord>,
    counts: BTreeMap<Endpoint, u64>,
}

impl Journal {
    pub fn push(&mut self, record: RequestRecord) {
        *self.counts.entry(record.endpoint).or_default() += 1;
        self.records.push(record);
    }

    pub fn records(&self) -> &[RequestRecord] {
        &self.records
    }

    pub fn count(&self, endpoint: Endpoint) -> u64 {
        self.counts.get(&endpoint).copied().unwrap_or(0)
    }

    pub fn counts(&self) -> &BTreeMap<Endpoint, u64> {
        &self.counts
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_sequences_interleave() {
        let shared = Arc::new(AtomicU64::new(0));
        let a = Sequence::new(Some(Arc::clone(&shared)));
        let b = Sequence::new(Some(Arc::clone(&shared)));
        assert_eq!(a.next(), 1);
        assert_eq!(b.next(), 2);
        assert_eq!(shared.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_global_sequence_is_one_counter() {
        let a = Sequence::new(None);
        let b = Sequence::new(None);
        let first = a.next();
        assert!(b.next() > first);
    }

    #[test]
    fn counts_follow_pushes() {
        let mut j = Journal::default();
        let record = RequestRecord {
            seq: 1,
            done_seq: 2,
            method: "GET".into(),
            path: "/ufmRest/app/ufm_version".into(),
            query: None,
            content_type: None,
            body: String::new(),
            status: 200,
            endpoint: Endpoint::Version,
            fault: None,
            arrived: Instant::now(),
            answered: Instant::now(),
            service: None,
        };
        j.push(record.clone());
        j.push(record);
        assert_eq!(j.count(Endpoint::Version), 2);
        assert_eq!(j.count(Endpoint::AddGuids), 0);
        j.clear();
        assert!(j.records().is_empty());
    }
}
