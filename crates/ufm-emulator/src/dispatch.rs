//! The one request pipeline every call goes through: number it, buffer the body, apply an
//! injected fault, authenticate, route, apply, and record the outcome. Keeping it in one
//! place means the log and counters see every request, whatever answered it.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::api::{self, Reply, Settings};
use crate::control::Shared;
use crate::faults::FaultAction;
use crate::journal::RequestRecord;
use crate::routes::{self, Endpoint, RouteError};
use crate::service::ServiceSpan;

/// What the pipeline decided, before it is recorded and sent.
struct Outcome {
    status: StatusCode,
    body: Bytes,
    json: bool,
    www_authenticate: bool,
    fault: Option<String>,
    service: Option<ServiceSpan>,
}

impl Outcome {
    fn reply(reply: Reply) -> Self {
        Outcome {
            status: reply.status,
            body: Bytes::from(reply.body.to_string()),
            json: true,
            www_authenticate: false,
            fault: None,
            service: None,
        }
    }

    fn error(status: StatusCode, message: &str) -> Self {
        Outcome::reply(Reply::error(status, message))
    }
}

/// The axum handler for every path.
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let seq = shared.sequence.next();
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method;
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let endpoint = routes::route(&method, &path).map(|(_, r)| r.endpoint()).unwrap_or(Endpoint::Unknown);

    let (body, outcome) = match to_bytes(body, shared.max_body_bytes).await {
        Ok(body) => {
            let authorization = parts.headers.get(header::AUTHORIZATION);
            let outcome = answer(&shared, &method, &path, query.as_deref(), &body, authorization).await;
            (body, outcome)
        }
        Err(_) => (Bytes::new(), Outcome::error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large or unreadable")),
    };

    let done_seq = shared.sequence.next();
    tracing::debug!(
        seq,
        method = %method,
        path = %path,
        endpoint = %endpoint,
        status = outcome.status.as_u16(),
        fault = outcome.fault.as_deref(),
        "ufm-emulator request"
    );
    let record = RequestRecord {
        seq,
        done_seq,
        method: method.to_string(),
        path,
        query,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: outcome.status.as_u16(),
        endpoint,
        fault: outcome.fault.clone(),
        arrived,
        answered: Instant::now(),
        service: outcome.service,
    };
    shared.update(|inner| inner.journal.push(record));
    respond(outcome)
}

async fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    authorization: Option<&HeaderValue>,
) -> Outcome {
    let latency = shared.read(|inner| inner.latency);
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = shared.shutdown.cancelled() => return shutting_down(),
        }
    }
    let fault = shared.update(|inner| inner.faults.take(method, path));
    let fault_note = match fault {
        Some(FaultAction::Respond { status, body }) => {
            // An unrepresentable status in a rule is a test bug; 500 keeps it an outage.
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let json = serde_json::from_str::<serde_json::Value>(&body).is_ok();
            return Outcome {
                status,
                body: Bytes::from(body),
                json,
                www_authenticate: false,
                fault: Some(format!("respond {}", status.as_u16())),
                service: None,
            };
        }
        Some(FaultAction::Delay(latency)) => {
            tokio::select! {
                () = tokio::time::sleep(latency) => {}
                () = shared.shutdown.cancelled() => return shutting_down(),
            }
            Some(format!("delay {latency:?}"))
        }
        Some(FaultAction::Hang { max }) => {
            if !shared.hang(max).await {
                return shutting_down();
            }
            Some("hang".to_owned())
        }
        None => None,
    };
    // A slot and the service time, then the change and the answer while the slot is still held:
    // a request is applied at the end of its service, as UFM applies what it has worked through.
    let (instant, slots) = shared.read(|inner| (inner.service.model().is_instant(), inner.service.slots()));
    let mut service = None;
    let _slot = if instant {
        None
    } else {
        let queued = shared.queued();
        let permit = match slots {
            Some(slots) => tokio::select! {
                // The semaphore is never closed; an error would only mean no limit.
                permit = slots.acquire_owned() => permit.ok(),
                () = shared.shutdown.cancelled() => return shutting_down(),
            },
            None => None,
        };
        drop(queued);
        let serving = shared.serving();
        let start = Instant::now();
        let drawn = shared.update(|inner| inner.service.draw());
        tokio::select! {
            () = tokio::time::sleep(drawn) => {}
            () = shared.shutdown.cancelled() => return shutting_down(),
        }
        service = Some(ServiceSpan { start, end: Instant::now(), drawn });
        Some((permit, serving))
    };
    let mut outcome = authorized(shared, method, path, query, body, authorization);
    outcome.fault = fault_note;
    outcome.service = service;
    outcome
}

fn shutting_down() -> Outcome {
    Outcome::error(StatusCode::SERVICE_UNAVAILABLE, "ufm emulator is shutting down")
}

fn authorized(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    authorization: Option<&HeaderValue>,
) -> Outcome {
    let Some((prefix, _)) = routes::prefix_of(path) else {
        return Outcome::error(StatusCode::NOT_FOUND, &format!("no such resource: {path}"));
    };
    let settings = Settings { version: &shared.version, last_updated_format: shared.last_updated_format };
    shared.update(|inner| {
        if let Err(err) = inner.credentials.check(prefix, authorization) {
            let mut outcome = Outcome::error(StatusCode::UNAUTHORIZED, &err.to_string());
            outcome.www_authenticate = true;
            return outcome;
        }
        match routes::route(method, path) {
            Ok((_, route)) => Outcome::reply(api::handle(&route, query, body, inner, &settings)),
            Err(err) => {
                let status = match err {
                    RouteError::NotFound(_) => StatusCode::NOT_FOUND,
                    RouteError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
                    RouteError::BadEncoding(_) => StatusCode::BAD_REQUEST,
                };
                Outcome::error(status, &err.to_string())
            }
        }
    })
}

fn respond(outcome: Outcome) -> Response {
    let content_type = if outcome.json { "application/json" } else { "text/plain; charset=utf-8" };
    let mut response =
        (outcome.status, [(header::CONTENT_TYPE, content_type)], Body::from(outcome.body)).into_response();
    if outcome.www_authenticate {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"UFM\""));
    }
    response
}
