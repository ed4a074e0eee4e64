//! A bounded log of the HTTP requests the emulator served, for tests to assert on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Bodies are cut here: tests look at patches and small objects, not at bulk uploads.
const MAX_LOGGED_BODY: usize = 64 * 1024;

/// One served request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Strictly increasing sequence number, never reused (also across `clear`).
    pub seq: u64,
    /// Taken from the (possibly shared) sequence counter when the request arrived: comparable with
    /// the order numbers of other servers sharing the counter.
    pub order: u64,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (without `?`), empty when absent.
    pub query: String,
    /// `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Request body as UTF-8 (lossy), truncated to 64 KiB.
    pub body: String,
    /// Response code once known; a watch's code is recorded when its headers are sent.
    pub status: Option<u16>,
}

struct LogInner {
    records: VecDeque<RequestRecord>,
    next_seq: u64,
}

/// The request log, oldest entries dropped beyond `capacity`.
pub(crate) struct RequestLog {
    inner: Mutex<LogInner>,
    capacity: usize,
    order: Arc<AtomicU64>,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize, order: Option<Arc<AtomicU64>>) -> RequestLog {
        RequestLog {
            inner: Mutex::new(LogInner { records: VecDeque::new(), next_seq: 1 }),
            capacity,
            order: order.unwrap_or_default(),
        }
    }

    /// Records a request and returns its sequence number.
    pub(crate) fn record(&self, method: &str, path: &str, query: &str, content_type: Option<&str>, body: &[u8]) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = inner.next_seq;
        inner.next_seq += 1;
        // Taken under the log's lock, so order numbers also increase within this log.
        let order = self.order.fetch_add(1, Ordering::SeqCst) + 1;
        if self.capacity == 0 {
            return seq;
        }
        let body = String::from_utf8_lossy(&body[..body.len().min(MAX_LOGGED_BODY)]).into_owned();
        while inner.records.len() >= self.capacity {
            inner.records.pop_front();
        }
        inner.records.push_back(RequestRecord {
            seq,
            order,
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            content_type: content_type.map(str::to_string),
            body,
            status: None,
        });
        seq
    }

    pub(crate) fn set_status(&self, seq: u64, status: u16) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Records are in seq order, so the entry (if still retained) is found by offset.
        let Some(front) = inner.records.front().map(|r| r.seq) else {
            return;
        };
        let Some(offset) = seq.checked_sub(front).and_then(|o| usize::try_from(o).ok()) else {
            return;
        };
        if let Some(record) = inner.records.get_mut(offset)
            && record.seq == seq
        {
            record.status = Some(status);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.records.iter().cloned().collect()
    }

    /// How many requests were ever recorded, including those dropped beyond the capacity or cleared.
    pub(crate) fn count(&self) -> u64 {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).next_seq - 1
    }

    pub(crate) fn clear(&self) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_status_updates_by_seq() {
        let log = RequestLog::new(2, None);
        let a = log.record("GET", "/a", "", None, b"");
        let b = log.record("POST", "/b", "x=1", Some("application/json"), b"{}");
        let c = log.record("PATCH", "/c", "", None, b"[]");
        log.set_status(a, 200);
        log.set_status(c, 422);
        let records = log.snapshot();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![b, c]);
        assert_eq!(records[0].status, None);
        assert_eq!(records[1].status, Some(422));
        log.clear();
        assert!(log.snapshot().is_empty());
        assert!(log.record("GET", "/d", "", None, b"") > c);
        assert_eq!(log.count(), 4, "the count includes what the capacity dropped and what was cleared");
        let unlogged = RequestLog::new(0, None);
        unlogged.record("GET", "/e", "", None, b"");
        assert_eq!(unlogged.count(), 1, "a log that keeps nothing still counts");
    }
}
