//! One way to make an outside call: bounded by a timeout, inside a tracing span, and ending in a result
//! whose error carries a short fixed label for the metrics.

use std::future::Future;
use std::time::Duration;

use tracing::{Instrument, Span};

/// A short fixed word naming the kind of an error, for a metric label: bounded, never a message.
pub trait Labelled {
    /// The label for this error's kind, as it appears on a metric.
    fn label(&self) -> &'static str;
}

/// Why a bounded call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The call answered with an error.
    #[error(transparent)]
    Failed(E),
    /// No answer within the bound; the call was dropped.
    #[error("no answer within {}s", .0.as_secs_f64())]
    TimedOut(Duration),
}

impl<E: Labelled> Labelled for CallError<E> {
    fn label(&self) -> &'static str {
        match self {
            CallError::Failed(e) => e.label(),
            CallError::TimedOut(_) => "timeout",
        }
    }
}

impl<E> CallError<E> {
    /// The call's own error type, with `timed_out` standing for the bound running out.
    pub fn into_inner(self, timed_out: impl FnOnce(Duration) -> E) -> E {
        match self {
            CallError::Failed(e) => e,
            CallError::TimedOut(limit) => timed_out(limit),
        }
    }
}

/// Runs `call` inside `span`, cut off after `limit`.
pub async fn bounded<T, E>(
    limit: Duration,
    span: Span,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, CallError<E>> {
    match tokio::time::timeout(limit, call).instrument(span).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(CallError::Failed(e)),
        Err(_) => Err(CallError::TimedOut(limit)),
    }
}

impl Labelled for ib_sm::SmError {
    fn label(&self) -> &'static str {
        ib_sm::SmError::label(self)
    }
}

impl Labelled for kube::Error {
    fn label(&self) -> &'static str {
        match self {
            kube::Error::Api(status) => match status.code {
                400 => "bad_request",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                409 => "conflict",
                422 => "invalid",
                429 => "throttled",
                500..=599 => "server_error",
                _ => "status",
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => "transport",
            kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => "decode",
            _ => "client",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("refused")]
    struct Refused;

    impl Labelled for Refused {
        fn label(&self) -> &'static str {
            "refused"
        }
    }

    #[tokio::test]
    async fn a_call_ends_in_its_value_its_error_or_a_timeout() {
        let limit = Duration::from_secs(60);
        let ok = bounded(limit, Span::none(), async { Ok::<_, Refused>(7) }).await;
        assert_eq!(ok.ok(), Some(7));
        let refused = bounded(limit, Span::none(), async { Err::<(), _>(Refused) }).await.unwrap_err();
        assert_eq!(refused.label(), "refused");
        assert_eq!(refused.to_string(), "refused");
        // A call that never answers is cut off at its bound.
        let short = Duration::from_millis(20);
        let slow = bounded(short, Span::none(), std::future::pending::<Result<(), Refused>>()).await.unwrap_err();
        assert_eq!(slow.label(), "timeout");
        assert_eq!(slow.to_string(), "no answer within 0.02s");
        assert_eq!(slow.into_inner(|_| Refused), Refused);
    }

    #[test]
    fn api_errors_are_labelled_by_status() {
        let status = |code| kube::Error::Api(Box::new(kube::core::Status { code, ..kube::core::Status::default() }));
        let labels: Vec<_> = [403, 409, 422, 503, 418].into_iter().map(|c| status(c).label()).collect();
        assert_eq!(labels, ["forbidden", "conflict", "invalid", "server_error", "status"]);
    }
}
