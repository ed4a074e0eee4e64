//! Fault injection: the next N requests matching a rule fail, slow down or hang.
//!
//! Rules are checked in the order they were added and the first match with budget left applies,
//! before the request reaches the store. A failed request therefore changes nothing, exactly like
//! an apiserver that rejected it at the front door (rate limiting, overload, a timeout filter).

use crate::status::ApiError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// What happens to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 `TooManyRequests` with a `Retry-After` header.
    TooManyRequests {
        /// Value of `Retry-After` and `details.retryAfterSeconds`.
        retry_after_seconds: u32,
    },
    /// 500 `InternalError`.
    InternalError,
    /// 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// 504 `Timeout`, as the apiserver's request-timeout filter answers.
    GatewayTimeout,
    /// 422 `Invalid` with this message, as an admission policy's denial or the annotation size limit
    /// answers: the same request is refused every time it is sent.
    Unprocessable(String),
    /// Served normally after this extra delay.
    Latency(Duration),
    /// Held until `EmulatorHandle::release_hung` or until `max` elapses, then served normally.
    Hang {
        /// Upper bound on the hang, so a forgotten release cannot wedge a test forever.
        max: Duration,
    },
}

/// Which requests a fault applies to, and how many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive); `None` matches any.
    pub method: Option<String>,
    /// Path glob where `*` matches any run of characters, e.g. `/api/v1/namespaces/*/pods/*`.
    pub path: String,
    /// A substring the raw query must contain (e.g. `watch=true`); `None` matches any query.
    pub query_contains: Option<String>,
    /// How many matching requests to affect.
    pub times: usize,
    /// The fault.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule applying `fault` once to every method and path; narrow it with the builders.
    pub fn new(fault: Fault) -> FaultRule {
        FaultRule { method: None, path: "*".into(), query_contains: None, times: 1, fault }
    }

    /// Only requests with this method.
    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(method.to_string());
        self
    }

    /// Only paths matching this glob.
    pub fn path(mut self, glob: &str) -> FaultRule {
        self.path = glob.to_string();
        self
    }

    /// Only queries containing this substring.
    pub fn query_contains(mut self, needle: &str) -> FaultRule {
        self.query_contains = Some(needle.to_string());
        self
    }

    /// Apply to the next `n` matching requests.
    pub fn times(mut self, n: usize) -> FaultRule {
        self.times = n;
        self
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && glob_match(&self.path, path)
            && self.query_contains.as_deref().is_none_or(|q| query.contains(q))
    }
}

/// `*` matches any run of characters, everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The active rules and the hang release signal.
pub(crate) struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    release: watch::Sender<u64>,
    hung: AtomicUsize,
}

impl Faults {
    pub(crate) fn new() -> Faults {
        Faults { rules: Mutex::new(Vec::new()), release: watch::channel(0).0, hung: AtomicUsize::new(0) }
    }

    pub(crate) fn add(&self, rule: FaultRule) {
        if rule.times > 0 {
            self.rules.lock().unwrap_or_else(PoisonError::into_inner).push(rule);
        }
    }

    pub(crate) fn clear(&self) {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|r| r.times).sum()
    }

    pub(crate) fn release_hung(&self) {
        self.release.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn hung(&self) -> usize {
        self.hung.load(Ordering::SeqCst)
    }

    /// Takes one unit of the first matching rule's budget.
    fn take(&self, method: &str, path: &str, query: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let index = rules.iter().position(|r| r.matches(method, path, query))?;
        let fault = rules[index].fault.clone();
        rules[index].times -= 1;
        if rules[index].times == 0 {
            rules.remove(index);
        }
        Some(fault)
    }

    /// Applies a matching fault: `Some(error)` to answer instead of serving the request.
    pub(crate) async fn intercept(&self, method: &str, path: &str, query: &str) -> Option<ApiError> {
        match self.take(method, path, query)? {
            Fault::TooManyRequests { retry_after_seconds } => Some(ApiError::TooManyRequests { retry_after_seconds }),
            Fault::InternalError => Some(ApiError::Internal("injected fault".into())),
            Fault::ServiceUnavailable => {
                Some(ApiError::ServiceUnavailable("the server is currently unable to handle the request".into()))
            }
            Fault::GatewayTimeout => Some(ApiError::Timeout {
                message: "Timeout: request did not complete within requested timeout - \
                          context deadline exceeded"
                    .into(),
                retry_after_seconds: None,
            }),
            Fault::Unprocessable(message) => Some(ApiError::Unprocessable(message)),
            Fault::Latency(delay) => {
                tokio::time::sleep(delay).await;
                None
            }
            Fault::Hang { max } => {
                let mut release = self.release.subscribe();
                self.hung.fetch_add(1, Ordering::SeqCst);
                let _ = tokio::time::timeout(max, release.changed()).await;
                self.hung.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "/api/v1/pods"));
        assert!(glob_match("/api/v1/pods", "/api/v1/pods"));
        assert!(!glob_match("/api/v1/pods", "/api/v1/pods/x"));
        assert!(glob_match("/api/v1/namespaces/*/pods/*", "/api/v1/namespaces/a/pods/b"));
        assert!(!glob_match("/api/v1/namespaces/*/pods/*", "/api/v1/namespaces/a/leases/b"));
        assert!(glob_match("*/leases*", "/apis/coordination.k8s.io/v1/namespaces/x/leases/y"));
        assert!(!glob_match("a*a", "a"));
    }

    #[tokio::test]
    async fn budget_is_consumed_in_order() {
        let faults = Faults::new();
        faults.add(FaultRule::new(Fault::ServiceUnavailable).method("get").path("/api/v1/pods").times(2));
        faults.add(FaultRule::new(Fault::InternalError));
        assert_eq!(faults.remaining(), 3);
        let first = faults.intercept("GET", "/api/v1/pods", "").await;
        assert_eq!(first.map(|e| e.code()), Some(503));
        let other = faults.intercept("POST", "/api/v1/pods", "").await;
        assert_eq!(other.map(|e| e.code()), Some(500));
        faults.add(FaultRule::new(Fault::Unprocessable("denied".into())).method("PATCH"));
        let refused = faults.intercept("PATCH", "/api/v1/pods", "").await;
        assert_eq!(refused.map(|e| (e.code(), e.reason(), e.to_string())), Some((422, "Invalid", "denied".into())));
        assert_eq!(faults.intercept("GET", "/api/v1/pods", "").await.map(|e| e.code()), Some(503));
        assert!(faults.intercept("GET", "/api/v1/pods", "").await.is_none());
    }

    #[tokio::test]
    async fn hang_is_released() {
        let faults = std::sync::Arc::new(Faults::new());
        faults.add(FaultRule::new(Fault::Hang { max: Duration::from_secs(60) }));
        let task = {
            let faults = faults.clone();
            tokio::spawn(async move { faults.intercept("GET", "/x", "").await })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while faults.hung() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "request never hung");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        faults.release_hung();
        assert!(task.await.unwrap().is_none());
        assert_eq!(faults.hung(), 0);
    }
}
