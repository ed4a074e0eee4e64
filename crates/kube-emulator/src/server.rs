//! The HTTP front end: request logging, fault injection, routing and response encoding.
//!
//! One fallback handler parses the path itself, so every unknown path, resource and method gets
//! a proper `Status` body (kube-rs decodes error bodies) instead of axum's plain-text 404/405.

use crate::control::Shared;
use crate::discovery;
use crate::openapi::{self, FieldValidation};
use crate::patch::PatchKind;
use crate::resource::Resource;
use crate::selector::{FieldSelector, Filter, LabelSelector};
use crate::status::{self, ApiError};
use crate::store::{DeleteOptions, Deleted, ListQuery, Target, WatchFrom};
use crate::table::{self, Format};
use crate::watch::{self, WatchParams};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(serve).with_state(shared)
}

/// A parsed request, independent of axum.
struct ApiRequest {
    method: Method,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    accept: String,
    host: String,
    body: Bytes,
}

impl ApiRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter in every form Go's `strconv.ParseBool` takes: clients differ
    /// (the Python client sends `watch=True`).
    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
    }
}

enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    GroupResources(String, String),
    OpenApiIndex,
    OpenApiDocument(String),
    Collection { resource: Resource, namespace: Option<String> },
    Object { resource: Resource, namespace: String, name: String, status: bool },
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE);
    let body = axum::body::to_bytes(body, shared.config.max_body_bytes).await;
    let logged_body: &[u8] = body.as_ref().map(|b| b.as_ref()).unwrap_or_default();
    let seq = shared.log.record(method.as_str(), &path, &raw_query, content_type.as_deref(), logged_body);
    let response = match shared.faults.intercept(method.as_str(), &path, &raw_query).await {
        Some(err) => error_response(&err),
        None => {
            let result = match body {
                Err(_) => Err(ApiError::RequestEntityTooLarge(shared.config.max_body_bytes)),
                Ok(body) => Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                    .map_err(|e| ApiError::BadRequest(format!("malformed query: {e}")))
                    .and_then(|Query(query)| {
                        let request = ApiRequest {
                            method,
                            query,
                            content_type,
                            accept: header_str(&parts.headers, header::ACCEPT).unwrap_or_default(),
                            host: header_str(&parts.headers, header::HOST).unwrap_or_else(|| "127.0.0.1".into()),
                            body,
                        };
                        dispatch(&shared, &path, request)
                    }),
            };
            result.unwrap_or_else(|err| error_response(&err))
        }
    };
    shared.log.set_status(seq, response.status().as_u16());
    response
}

fn parse_route(path: &str) -> Result<Route, ApiError> {
    let segments = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ApiError::BadRequest(format!("path segment {s:?} is not UTF-8")))
        })
        .collect::<Result<Vec<String>, ApiError>>()?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["version"] => Ok(Route::Version),
        ["openapi", "v3"] => Ok(Route::OpenApiIndex),
        ["openapi", "v3", rest @ ..] => Ok(Route::OpenApiDocument(rest.join("/"))),
        ["api"] => Ok(Route::CoreVersions),
        ["api", "v1"] => Ok(Route::GroupResources(String::new(), "v1".into())),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis"] => Ok(Route::Groups),
        ["apis", group] if discovery::has_group(group) => Ok(Route::Group(group.to_string())),
        ["apis", group, version] => Ok(Route::GroupResources(group.to_string(), version.to_string())),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Err(ApiError::NoRoute),
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Result<Route, ApiError> {
    let find = |plural: &str| Resource::from_path(group, version, plural).ok_or(ApiError::NoRoute);
    // Namespaced types are served under `namespaces/{ns}/` (and listed across namespaces without
    // it); cluster-scoped ones only without it, their objects keyed by the empty namespace.
    let namespaced =
        |plural: &str| find(plural).and_then(|r| if r.namespaced() { Ok(r) } else { Err(ApiError::NoRoute) });
    let cluster = |plural: &str| find(plural).and_then(|r| if r.namespaced() { Err(ApiError::NoRoute) } else { Ok(r) });
    let object = |resource: Resource, namespace: &str, name: &str, status: bool| {
        if status && !resource.has_status_subresource() {
            return Err(ApiError::NoRoute);
        }
        Ok(Route::Object { resource, namespace: namespace.to_string(), name: name.to_string(), status })
    };
    match rest {
        [plural] => Ok(Route::Collection { resource: find(plural)?, namespace: None }),
        [plural, name] => object(cluster(plural)?, "", name, false),
        [plural, name, "status"] => object(cluster(plural)?, "", name, true),
        ["namespaces", namespace, plural] => {
            Ok(Route::Collection { resource: namespaced(plural)?, namespace: Some(namespace.to_string()) })
        }
        ["namespaces", namespace, plural, name] => object(namespaced(plural)?, namespace, name, false),
        ["namespaces", namespace, plural, name, "status"] => object(namespaced(plural)?, namespace, name, true),
        _ => Err(ApiError::NoRoute),
    }
}

fn dispatch(shared: &Arc<Shared>, path: &str, req: ApiRequest) -> Result<Response, ApiError> {
    let route = parse_route(path)?;
    let read_only = |body: Value| -> Result<Response, ApiError> {
        if req.method == Method::GET {
            Ok(json_response(StatusCode::OK, &body))
        } else {
            Err(ApiError::MethodNotAllowed)
        }
    };
    match route {
        Route::Version => read_only(discovery::version(&shared.config.git_version)),
        Route::CoreVersions => read_only(discovery::core_versions(&req.host)),
        Route::Groups => read_only(discovery::group_list()),
        Route::Group(group) => read_only(discovery::group(&group)),
        Route::GroupResources(group, version) => {
            read_only(discovery::resources(&group, &version).ok_or(ApiError::NoRoute)?)
        }
        Route::OpenApiIndex => read_only(openapi::index().clone()),
        Route::OpenApiDocument(path) => read_only(openapi::document(&path).ok_or(ApiError::NoRoute)?.clone()),
        Route::Collection { resource, namespace } => match req.method {
            Method::GET if req.flag("watch") => start_watch(shared, resource, namespace, &req),
            Method::GET => list(shared, resource, namespace, &req),
            Method::POST => match namespace {
                Some(ns) => create(shared, resource, &ns, &req),
                None if !resource.namespaced() => create(shared, resource, "", &req),
                None => Err(ApiError::MethodNotAllowed),
            },
            Method::DELETE => match namespace {
                Some(ns) => delete_collection(shared, resource, Some(&ns), &req),
                None if !resource.namespaced() => delete_collection(shared, resource, None, &req),
                None => Err(ApiError::MethodNotAllowed),
            },
            _ => Err(ApiError::MethodNotAllowed),
        },
        Route::Object { resource, namespace, name, status } => {
            let target = if status { Target::Status } else { Target::Main };
            match req.method {
                Method::GET => get(shared, resource, &namespace, &name, &req),
                Method::PUT => {
                    reject_dry_run(&req)?;
                    let body = json_body(resource, &req)?;
                    let warnings = field_warnings(resource, &body, &req)?;
                    let obj = shared.store.update(resource, &namespace, &name, body, target, true)?;
                    Ok(with_warnings(json_response(StatusCode::OK, &*obj), &warnings))
                }
                Method::PATCH => {
                    reject_dry_run(&req)?;
                    let kind = PatchKind::from_content_type(req.content_type.as_deref().unwrap_or(""))
                        .map_err(|e| ApiError::UnsupportedMediaType(e.to_string()))?;
                    if kind == PatchKind::Apply {
                        return server_side_apply(shared, resource, &namespace, &name, target, &req);
                    }
                    // A merge patch has the object's shape, so its fields are checked as the object's.
                    let warnings = match kind {
                        PatchKind::Merge | PatchKind::Strategic => match serde_json::from_slice::<Value>(&req.body) {
                            Ok(body) => field_warnings(resource, &body, &req)?,
                            Err(_) => Vec::new(),
                        },
                        PatchKind::Json | PatchKind::Apply => Vec::new(),
                    };
                    let obj = shared.store.patch(resource, &namespace, &name, kind, &req.body, target, true)?;
                    Ok(with_warnings(json_response(StatusCode::OK, &*obj), &warnings))
                }
                Method::DELETE if !status => delete(shared, resource, &namespace, &name, &req),
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
    }
}

/// Server-side apply: creates the object from the applied configuration when it does not exist
/// yet, merges the configuration into it otherwise, and records the manager in `managedFields`.
fn server_side_apply(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: &str,
    name: &str,
    target: Target,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    let manager = req
        .param("fieldManager")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::BadRequest("PATCH /apply requires the fieldManager query parameter".to_string()))?;
    if manager.len() > 128 {
        return Err(ApiError::BadRequest(format!(
            "fieldManager: Too long: may not be more than 128 bytes (got {})",
            manager.len()
        )));
    }
    let mut applied =
        crate::patch::applied_configuration(&req.body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let warnings = field_warnings(resource, &applied, req)?;
    match applied.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        None => {
            return Err(ApiError::BadRequest("metadata.name is required in an applied configuration".into()));
        }
    }
    let entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": resource.api_version(),
        "time": crate::meta::now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(&applied),
    });
    for _ in 0..2 {
        if shared.store.get(resource, namespace, name).is_none() && target == Target::Main {
            let mut fresh = applied.clone();
            if let Some(meta) = crate::meta::meta_mut(&mut fresh) {
                meta.insert("managedFields".into(), json!([entry.clone()]));
            }
            match shared.store.create(resource, namespace, fresh, false) {
                Ok(obj) => return Ok(with_warnings(json_response(StatusCode::CREATED, &*obj), &warnings)),
                // Created concurrently: apply to what is there now.
                Err(ApiError::AlreadyExists { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        let entry = entry.clone();
        let applied = std::mem::take(&mut applied);
        let obj = shared.store.apply(resource, namespace, name, target, move |live| {
            crate::patch::merge_applied(live, &applied);
            record_manager(live, entry);
        })?;
        return Ok(with_warnings(json_response(StatusCode::OK, &*obj), &warnings));
    }
    Err(ApiError::Conflict {
        resource,
        name: name.to_string(),
        detail: "the object was created and deleted while being applied; try again".into(),
    })
}

/// Replaces the applying manager's `managedFields` entry (keyed by manager and operation).
fn record_manager(live: &mut Value, entry: Value) {
    let Some(meta) = crate::meta::meta_mut(live) else { return };
    let mut fields: Vec<Value> = meta.get("managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
    fields.retain(|f| f.get("manager") != entry.get("manager") || f.get("operation") != entry.get("operation"));
    fields.push(entry);
    meta.insert("managedFields".into(), Value::Array(fields));
}

/// The fields an applied configuration sets, in the apiserver's `FieldsV1` shape for maps
/// (`f:<name>`); a list counts as one field.
fn fields_v1(applied: &Value) -> Value {
    match applied {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map {
                if key == "apiVersion" || key == "kind" || value.is_null() {
                    continue;
                }
                out.insert(format!("f:{key}"), fields_v1(value));
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

fn reject_dry_run(req: &ApiRequest) -> Result<(), ApiError> {
    match req.param("dryRun") {
        Some(v) if !v.is_empty() => Err(ApiError::BadRequest("dryRun is not supported by this emulator".into())),
        _ => Ok(()),
    }
}

fn json_body(resource: Resource, req: &ApiRequest) -> Result<Value, ApiError> {
    let media = req
        .content_type
        .as_deref()
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == crate::protobuf::MEDIA_TYPE {
        return crate::protobuf::decode(resource, &req.body).map_err(|e| match e {
            crate::protobuf::ProtobufError::UnsupportedKind(_) => ApiError::UnsupportedMediaType(e.to_string()),
            _ => ApiError::BadRequest(e.to_string()),
        });
    }
    if media != "application/json" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, application/vnd.kubernetes.protobuf (got {media:?})"
        )));
    }
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::BadRequest(format!("the object provided is unrecognized (must be of type {}): {e}", resource.kind()))
    })?;
    if resource.is_custom() {
        // The apiserver decodes a custom resource without a type to fill in, so a body that does
        // not say its kind and apiVersion is refused; built-in kinds take them from the URL.
        for (field, name) in [("kind", "Kind"), ("apiVersion", "apiVersion")] {
            if body.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                let mut text = String::from_utf8_lossy(&req.body).into_owned();
                if text.len() > 256 {
                    let cut = (0..=256).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                    text.truncate(cut);
                    text.push('…');
                }
                return Err(ApiError::BadRequest(format!("Object '{name}' is missing in '{text}'")));
            }
        }
    }
    Ok(body)
}

fn filter(resource: Resource, namespace: Option<String>, req: &ApiRequest) -> Result<Filter, ApiError> {
    let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let fields = FieldSelector::parse(resource, req.param("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Filter { namespace, labels, fields })
}

fn format(req: &ApiRequest) -> Format {
    Format::negotiate(&req.accept, req.param("includeObject"))
}

#[derive(Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Value,
    items: Vec<&'a Value>,
}

fn list(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    let limit = match req.param("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<usize>().map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}")))?),
        None => None,
    };
    let query = ListQuery {
        filter: filter(resource, namespace, req)?,
        limit,
        continue_token: req.param("continue").filter(|c| !c.is_empty()).map(str::to_string),
        resource_version: req.param("resourceVersion").map(str::to_string),
        resource_version_match: req.param("resourceVersionMatch").filter(|m| !m.is_empty()).map(str::to_string),
    };
    let page = shared.store.list(resource, &query)?;
    let mut metadata = json!({ "resourceVersion": page.resource_version.to_string() });
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining_item_count {
        metadata["remainingItemCount"] = json!(remaining);
    }
    let items: Vec<&Value> = page.items.iter().map(|o| &**o).collect();
    match format(req) {
        Format::Table(include) => Ok(json_response(StatusCode::OK, &table::table(resource, &items, include, metadata))),
        Format::Json => Ok(json_response(
            StatusCode::OK,
            &ListBody { kind: resource.list_kind(), api_version: resource.api_version(), metadata, items },
        )),
    }
}

fn start_watch(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    let filter = filter(resource, namespace, req)?;
    let send_initial = match req.param("sendInitialEvents") {
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::BadRequest(format!("invalid sendInitialEvents {other:?}")));
        }
        None => None,
    };
    let from = match (req.param("resourceVersion").filter(|rv| !rv.is_empty()), send_initial) {
        (_, Some(true)) => WatchFrom::InitialState,
        (None | Some("0"), Some(false)) => WatchFrom::Now,
        (None | Some("0"), None) => WatchFrom::InitialState,
        (Some(rv), _) => WatchFrom::Version(
            rv.parse().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let timeout = match req.param("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => {
            let seconds: u64 = t.parse().map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds {t:?}")))?;
            if seconds == 0 { shared.config.default_watch_timeout } else { Duration::from_secs(seconds) }
        }
        None => shared.config.default_watch_timeout,
    };
    let start = match shared.store.watch(resource, &filter, from) {
        Ok(start) => Ok(start),
        // The watch cache reports a too-old RV in-stream; clients re-list on it.
        Err(err @ ApiError::Expired(_)) => Err(err),
        Err(other) => return Err(other),
    };
    let params = WatchParams {
        resource,
        filter,
        allow_bookmarks: req.flag("allowWatchBookmarks"),
        timeout,
        initial_events_end: send_initial == Some(true),
        format: format(req),
    };
    let body = Body::from_stream(watch::stream(Arc::clone(shared), params, start));
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn get(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: &str,
    name: &str,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    let obj = shared
        .store
        .get(resource, namespace, name)
        .ok_or_else(|| ApiError::NotFound { resource, name: name.to_string() })?;
    match format(req) {
        Format::Table(include) => {
            let rv = crate::meta::str_field(&obj, "resourceVersion").unwrap_or("");
            Ok(json_response(
                StatusCode::OK,
                &table::table(resource, &[&obj], include, json!({ "resourceVersion": rv })),
            ))
        }
        Format::Json => Ok(json_response(StatusCode::OK, &*obj)),
    }
}

fn create(shared: &Arc<Shared>, resource: Resource, namespace: &str, req: &ApiRequest) -> Result<Response, ApiError> {
    reject_dry_run(req)?;
    let body = json_body(resource, req)?;
    let warnings = field_warnings(resource, &body, req)?;
    let obj = shared.store.create(resource, namespace, body, false)?;
    Ok(with_warnings(json_response(StatusCode::CREATED, &*obj), &warnings))
}

/// Unknown fields in a request body, per the `fieldValidation` parameter: refused (`Strict`) or
/// returned as warnings for the response's `Warning` headers.
fn field_warnings(resource: Resource, body: &Value, req: &ApiRequest) -> Result<Vec<String>, ApiError> {
    let mode = FieldValidation::parse(req.param("fieldValidation"))?;
    openapi::validate_fields(resource, body, mode)
}

/// Adds one `Warning: 299 - "<text>"` header per warning, the apiserver's form (RFC 7234).
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    // A hostile body can name thousands of unknown fields; the apiserver also caps its warnings.
    const MAX_WARNINGS: usize = 50;
    let more = warnings.len().saturating_sub(MAX_WARNINGS);
    let extra = (more > 0).then(|| format!("{more} more unknown fields not listed"));
    for warning in warnings.iter().take(MAX_WARNINGS).chain(extra.as_ref()) {
        let text = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeleteBody {
    grace_period_seconds: Option<i64>,
    preconditions: Option<Preconditions>,
    dry_run: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

fn delete_options(req: &ApiRequest) -> Result<DeleteOptions, ApiError> {
    reject_dry_run(req)?;
    let body: DeleteBody = if req.body.iter().all(u8::is_ascii_whitespace) {
        DeleteBody::default()
    } else {
        serde_json::from_slice(&req.body).map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    if body.dry_run.is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::BadRequest("dryRun is not supported by this emulator".into()));
    }
    let query_grace = match req.param("gracePeriodSeconds").filter(|g| !g.is_empty()) {
        Some(g) => {
            Some(g.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds {g:?}")))?)
        }
        None => None,
    };
    let preconditions = body.preconditions.unwrap_or_default();
    Ok(DeleteOptions {
        grace_period_seconds: body.grace_period_seconds.or(query_grace),
        precondition_uid: preconditions.uid,
        precondition_resource_version: preconditions.resource_version,
    })
}

fn delete(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: &str,
    name: &str,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    let options = delete_options(req)?;
    let deleted = shared.store.delete(resource, namespace, name, &options)?;
    shared.after_delete(namespace, name, &deleted);
    Ok(match deleted {
        Deleted::Gone(obj) if !resource.returns_deleted_object() => {
            let uid = crate::meta::str_field(&obj, "uid").unwrap_or("");
            json_response(StatusCode::OK, &status::delete_success(resource, name, uid))
        }
        Deleted::Gone(obj) | Deleted::Terminating { object: obj, .. } => json_response(StatusCode::OK, &*obj),
    })
}

fn delete_collection(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: Option<&str>,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    let options = delete_options(req)?;
    let filter = filter(resource, namespace.map(str::to_string), req)?;
    let namespace = namespace.unwrap_or("");
    let (_, targets) = shared.store.snapshot(resource, &filter);
    let mut items = Vec::new();
    for target in targets {
        let name = crate::meta::str_field(&target, "name").unwrap_or("");
        match shared.store.delete(resource, namespace, name, &options) {
            Ok(deleted) => {
                shared.after_delete(namespace, name, &deleted);
                match deleted {
                    Deleted::Gone(obj) | Deleted::Terminating { object: obj, .. } => {
                        items.push(obj);
                    }
                }
            }
            // Deleted concurrently: deletecollection skips it, as the apiserver does.
            Err(ApiError::NotFound { .. }) => {}
            Err(other) => return Err(other),
        }
    }
    let rv = shared.store.resource_version();
    Ok(json_response(
        StatusCode::OK,
        &ListBody {
            kind: resource.list_kind(),
            api_version: resource.api_version(),
            metadata: json!({ "resourceVersion": rv.to_string() }),
            items: items.iter().map(|o| &**o).collect(),
        },
    ))
}

fn json_response(code: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            (code, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response()
        }
        Err(e) => error_response(&ApiError::Internal(format!("encoding response: {e}"))),
    }
}

pub(crate) fn error_response(err: &ApiError) -> Response {
    let code = StatusCode::from_u16(err.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = serde_json::to_vec(&err.to_status()).unwrap_or_default();
    let mut response =
        (code, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response();
    if let Some(seconds) = err.retry_after() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
