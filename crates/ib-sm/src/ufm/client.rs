//! The built-in UFM subnet manager: the Go plugin's four REST calls over one pooled client, each with a
//! timeout, a span and an outcome, and no credential in any of them.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ib_model::partition::{PartitionOptions, Qos};
use ib_model::{Guid, PKey, SmListing};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use tracing::Instrument;

use super::config::{Auth, Scheme, TlsTrust, UfmConfig};
use super::http::{build_client, classify};
use super::wire;
use crate::manager::{BODY_EXCERPT_BYTES, BoxFuture, SmCall, SmError, SubnetManager, excerpt};
use crate::redact::Redactor;

/// Sent on every request, GETs included, exactly as the Go plugin did.
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

const VERSION_PATH: &str = "/app/ufm_version";
const ADD_PATH: &str = "/resources/pkeys";
const REMOVE_PATH: &str = "/actions/remove_guids_from_pkey";
/// With the trailing slash the Go plugin used; `guids_data` is what makes UFM include members (without
/// any flag UFM answers a different shape).
const LIST_PATH: &str = "/resources/pkeys/";
const LIST_QUERY: &str = "guids_data=true";
const QOS_PATH: &str = "/resources/pkeys/qos_conf";
const LAST_UPDATED_PATH: &str = "/resources/pkeys/last_updated";

/// Largest response body read from UFM; a larger one fails the call instead of being buffered. The
/// largest answer is the partition listing, at about 65 bytes per membership as UFM writes it
/// (`{"guid": "946dae03005985c8", "membership": "full", "index0": true}, `) and up to about 130 when
/// pretty-printed: a fabric of 100,000 GUIDs, each a member of two partitions, lists in at most 26 MB.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Added to a refused certificate when `UFM_CERTIFICATE` is set: what was checked.
const PIN_HINT: &str = "the server's certificate is neither a certificate of UFM_CERTIFICATE nor issued by one of them";

/// A UFM reached over REST. Cheap to share: one client with a connection pool.
pub struct Ufm {
    client: reqwest::Client,
    /// `scheme://host:port` plus the API prefix for the authentication kind.
    api: String,
    prefix: &'static str,
    auth: Credentials,
    redactor: Redactor,
    timeout: Duration,
    tls: TlsMode,
    /// Added to certificate errors.
    tls_hint: Option<&'static str>,
    /// `UFM_CONFIRM_APPLIED`.
    confirm_applied: bool,
}

/// What goes into the `Authorization` header.
enum Credentials {
    Basic {
        username: String,
        password: crate::Secret,
    },
    /// `Basic <token>`, built once; marked sensitive so HTTP/2 never indexes it.
    Token(HeaderValue),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    Plaintext,
    Verified,
    Insecure,
}

impl Ufm {
    /// A client for `config`; fails when its TLS settings cannot be used (a certificate that does not parse).
    pub fn new(config: UfmConfig) -> Result<Ufm, SmError> {
        let client = build_client(&config)?;
        let auth = match &config.auth {
            Auth::Basic { username, password } => {
                Credentials::Basic { username: username.clone(), password: password.clone() }
            }
            Auth::Token(token) => {
                let mut value = HeaderValue::from_str(&format!("Basic {}", token.expose())).map_err(|_| {
                    SmError::Config("UFM_TOKEN holds characters that cannot be sent in an HTTP header".into())
                })?;
                value.set_sensitive(true);
                Credentials::Token(value)
            }
        };
        let tls = match (config.scheme, &config.tls) {
            (Scheme::Http, _) => TlsMode::Plaintext,
            (Scheme::Https, TlsTrust::InsecureSkipVerify) => TlsMode::Insecure,
            (Scheme::Https, _) => TlsMode::Verified,
        };
        let tls_hint = matches!((config.scheme, &config.tls), (Scheme::Https, TlsTrust::Pinned(_))).then_some(PIN_HINT);
        Ok(Ufm {
            tls_hint,
            client,
            api: format!("{}{}", config.base_url(), config.api_prefix()),
            prefix: config.api_prefix(),
            redactor: Redactor::new(&config.auth),
            auth,
            timeout: config.request_timeout,
            tls,
            confirm_applied: config.confirm_applied,
        })
    }

    fn request(&self, method: Method, path: &str, query: Option<&str>) -> RequestBuilder {
        let url = match query {
            Some(q) => format!("{}{path}?{q}", self.api),
            None => format!("{}{path}", self.api),
        };
        let builder = self.client.request(method, url).header(CONTENT_TYPE, JSON_CONTENT_TYPE);
        match &self.auth {
            Credentials::Basic { username, password } => builder.basic_auth(username, Some(password.expose())),
            Credentials::Token(value) => builder.header(AUTHORIZATION, value.clone()),
        }
    }

    /// A membership change of `guids` in `pkey`, the body built by `body`; no request for no GUIDs.
    async fn post_guids(
        &self,
        path: &'static str,
        pkey: PKey,
        guids: &[Guid],
        body: fn(PKey, &[Guid]) -> String,
    ) -> Result<(), SmError> {
        if guids.is_empty() {
            return Ok(());
        }
        self.exchange(Call::post(path, pkey, guids.len(), body(pkey, guids))).await.map(drop)
    }

    /// One request: success is exactly 200, whose body is returned; anything else is an [`SmError`].
    async fn exchange(&self, call: Call) -> Result<Bytes, SmError> {
        let name = call.name(self.prefix);
        let span = tracing::info_span!(
            "ufm_request",
            method = %call.method,
            endpoint = call.path,
            pkey = tracing::field::Empty,
            guids = call.guids,
        );
        if let Some(pkey) = call.pkey {
            span.record("pkey", tracing::field::display(pkey));
        }
        async {
            let started = Instant::now();
            let outcome = self.send(&name, call).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match &outcome {
                Ok(body) => tracing::debug!(elapsed_ms, bytes = body.len(), "ufm request succeeded"),
                Err(err) => tracing::debug!(elapsed_ms, outcome = err.label(), error = %err, "ufm request failed"),
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn send(&self, name: &str, call: Call) -> Result<Bytes, SmError> {
        let path = call.full_path();
        let mut request = self.request(call.method, &path, call.query);
        if let Some(body) = call.body {
            request = request.body(body);
        }
        let fail = |err: reqwest::Error| classify(name, self.timeout, &err, &self.redactor, self.tls_hint);
        let mut response = request.send().await.map_err(fail)?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = read_excerpt(response, &self.redactor).await;
            return Err(SmError::Status { call: name.to_owned(), status: status.as_u16(), body });
        }
        let too_large = || SmError::Decode {
            call: name.to_owned(),
            reason: format!("the response body is larger than {MAX_RESPONSE_BYTES} bytes; it was not read further"),
        };
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fail)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }
}

/// At most [`BODY_EXCERPT_BYTES`] of an error body, however large it is, with our credentials scrubbed.
/// Reading stops a credential's length past the limit, so that a credential straddling the cut is still
/// seen whole and replaced, and a credential cut by where reading stopped is dropped. A body that fails
/// midway still yields what arrived: the status is what matters.
async fn read_excerpt(mut response: reqwest::Response, redactor: &Redactor) -> String {
    let enough = BODY_EXCERPT_BYTES + redactor.longest();
    let mut buf = Vec::new();
    let mut cut = false;
    while let Ok(Some(chunk)) = response.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() > enough {
            cut = true;
            break;
        }
    }
    let text = redactor.scrub_bytes(&buf, false, cut);
    excerpt(&text, BODY_EXCERPT_BYTES)
}

/// What a request is, for the span, the error text and the wire.
struct Call {
    method: Method,
    path: &'static str,
    /// A partition key appended to `path` (`/resources/pkeys/0x0005`).
    tail: Option<PKey>,
    query: Option<&'static str>,
    body: Option<String>,
    pkey: Option<PKey>,
    guids: usize,
}

impl Call {
    fn get(path: &'static str, query: Option<&'static str>) -> Self {
        Call { method: Method::GET, path, tail: None, query, body: None, pkey: None, guids: 0 }
    }

    fn post(path: &'static str, pkey: PKey, guids: usize, body: String) -> Self {
        Call { method: Method::POST, path, tail: None, query: None, body: Some(body), pkey: Some(pkey), guids }
    }

    fn put(path: &'static str, pkey: PKey, body: String) -> Self {
        Call { method: Method::PUT, path, tail: None, query: None, body: Some(body), pkey: Some(pkey), guids: 0 }
    }

    /// The same call for one partition: its key is appended to the path.
    fn for_partition(mut self, pkey: PKey) -> Self {
        self.tail = Some(pkey);
        self
    }

    /// The path with its partition key, if any.
    fn full_path(&self) -> std::borrow::Cow<'static, str> {
        match self.tail {
            Some(pkey) => format!("{}{pkey}", self.path).into(),
            None => self.path.into(),
        }
    }

    /// `POST /ufmRest/resources/pkeys (pkey 0x0005, 2 GUIDs)`: names the call in errors.
    fn name(&self, prefix: &str) -> String {
        let query = self.query.map(|q| format!("?{q}")).unwrap_or_default();
        match self.pkey {
            Some(pkey) if self.method == Method::PUT => {
                format!("{} {prefix}{}{query} (pkey {pkey})", self.method, self.path)
            }
            Some(pkey) => format!("{} {prefix}{}{query} (pkey {pkey}, {} GUIDs)", self.method, self.path, self.guids),
            None => format!("{} {prefix}{}{query}", self.method, self.full_path()),
        }
    }
}

impl SubnetManager for Ufm {
    fn name(&self) -> &str {
        "ufm"
    }

    fn validate(&self) -> SmCall<'_> {
        Box::pin(async move { self.exchange(Call::get(VERSION_PATH, None)).await.map(drop) })
    }

    fn add_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a> {
        Box::pin(self.post_guids(ADD_PATH, pkey, guids, wire::add_body))
    }

    fn add_guids_with<'a>(&'a self, pkey: PKey, guids: &'a [Guid], options: &'a PartitionOptions) -> SmCall<'a> {
        self.add_guids_named(pkey, guids, options, None)
    }

    /// The add with the options' membership, `index0` and `ip_over_ib` and the partition's name; then,
    /// when QoS is asked for, `PUT qos_conf` (UFM's add takes no QoS, and the partition exists once the
    /// add succeeded).
    fn add_guids_named<'a>(
        &'a self,
        pkey: PKey,
        guids: &'a [Guid],
        options: &'a PartitionOptions,
        name: Option<&'a str>,
    ) -> SmCall<'a> {
        Box::pin(async move {
            if guids.is_empty() {
                return Ok(());
            }
            let body = wire::add_body_named(pkey, guids, options, name);
            self.exchange(Call::post(ADD_PATH, pkey, guids.len(), body)).await?;
            if let Some(qos) = &options.qos {
                self.exchange(Call::put(QOS_PATH, pkey, wire::qos_body(pkey, qos))).await?;
            }
            Ok(())
        })
    }

    fn set_qos<'a>(&'a self, pkey: PKey, qos: Qos) -> SmCall<'a> {
        Box::pin(async move { self.exchange(Call::put(QOS_PATH, pkey, wire::qos_body(pkey, &qos))).await.map(drop) })
    }

    fn last_updated(&self) -> BoxFuture<'_, Result<Option<String>, SmError>> {
        Box::pin(async move {
            let call = Call::get(LAST_UPDATED_PATH, None);
            let name = call.name(self.prefix);
            let body = self.exchange(call).await?;
            wire::parse_last_updated(&body)
                .map_err(|e| SmError::Decode { call: name, reason: self.redactor.scrub(&e.to_string()) })
        })
    }

    fn remove_guids<'a>(&'a self, pkey: PKey, guids: &'a [Guid]) -> SmCall<'a> {
        Box::pin(self.post_guids(REMOVE_PATH, pkey, guids, wire::remove_body))
    }

    /// `GET /resources/pkeys/<pkey>?guids_data=true`; UFM answers an unknown partition with `{}` (some
    /// versions with 404).
    fn partition_members(&self, pkey: PKey) -> BoxFuture<'_, Result<Option<Vec<Guid>>, SmError>> {
        Box::pin(async move {
            let call = Call::get(LIST_PATH, Some(LIST_QUERY)).for_partition(pkey);
            let name = call.name(self.prefix);
            let body = match self.exchange(call).await {
                Err(SmError::Status { status: 404, .. }) => return Ok(None),
                other => other?,
            };
            wire::parse_partition(&body)
                .map_err(|e| SmError::Decode { call: name, reason: self.redactor.scrub(&e.to_string()) })
        })
    }

    /// UFM answers a change once it is in its model; the fabric gets it after UFM has regenerated
    /// OpenSM's partitions and OpenSM has swept. `UFM_CONFIRM_APPLIED=false` takes the answer as enough.
    fn applies_later(&self) -> bool {
        self.confirm_applied
    }

    /// Every call is one HTTP request, and the request timeout covers all of it: connecting, sending,
    /// and reading the whole body.
    fn call_timeout(&self) -> Duration {
        self.timeout
    }

    fn list_guids(&self) -> BoxFuture<'_, Result<Vec<(String, Guid)>, SmError>> {
        Box::pin(async move { self.list_partitions().await.map(SmListing::into_pairs) })
    }

    /// UFM answers partition by partition: read so, without a pair per membership.
    fn list_partitions(&self) -> BoxFuture<'_, Result<SmListing, SmError>> {
        Box::pin(async move {
            let call = Call::get(LIST_PATH, Some(LIST_QUERY));
            let name = call.name(self.prefix);
            let body = self.exchange(call).await?;
            wire::parse_partitions(&body)
                .map_err(|e| SmError::Decode { call: name, reason: self.redactor.scrub(&e.to_string()) })
        })
    }
}

/// The URL and the kind of authentication and server verification; never a credential.
impl fmt::Debug for Ufm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Credentials::Basic { .. } => "basic",
            Credentials::Token(_) => "token",
        };
        f.debug_struct("Ufm")
            .field("api", &self.api)
            .field("auth", &auth)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn config(auth: Auth) -> UfmConfig {
        UfmConfig {
            address: "ufm.example".into(),
            scheme: Scheme::Https,
            port: 443,
            auth,
            tls: TlsTrust::InsecureSkipVerify,
            request_timeout: Duration::from_secs(5),
            confirm_applied: true,
        }
    }

    #[test]
    fn debug_shows_url_and_kinds_only() {
        let ufm =
            Ufm::new(config(Auth::Basic { username: "admin".into(), password: Secret::new("canary-pw") })).unwrap();
        let shown = format!("{ufm:?}");
        assert!(shown.contains("https://ufm.example:443/ufmRest") && shown.contains("basic"), "{shown}");
        assert!(!shown.contains("canary-pw") && !shown.contains("admin"), "{shown}");
        assert_eq!(ufm.tls, TlsMode::Insecure);

        let ufm = Ufm::new(config(Auth::Token(Secret::new("canary-tok")))).unwrap();
        let shown = format!("{ufm:?}");
        assert!(shown.contains("/ufmRestV3") && shown.contains("token") && !shown.contains("canary-tok"), "{shown}");
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_without_echo() {
        let err = Ufm::new(config(Auth::Token(Secret::new("bad\ncanary")))).unwrap_err();
        assert_eq!(err.label(), "config");
        assert!(!err.to_string().contains("canary"));
    }

    #[test]
    fn call_names_carry_pkey_and_count() {
        let pkey = PKey::new(5).unwrap();
        assert_eq!(
            Call::post(ADD_PATH, pkey, 2, String::new()).name("/ufmRest"),
            "POST /ufmRest/resources/pkeys (pkey 0x0005, 2 GUIDs)"
        );
        assert_eq!(
            Call::get(LIST_PATH, Some(LIST_QUERY)).name("/ufmRestV3"),
            "GET /ufmRestV3/resources/pkeys/?guids_data=true"
        );
    }
}
