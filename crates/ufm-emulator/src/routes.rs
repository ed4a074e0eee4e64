//! Maps a request's method and path onto a UFM endpoint. Routing is done here by hand rather
//! than with axum's router so that one function names the endpoint for counters, fault
//! matching and dispatch alike, and so that every refusal (unknown path, wrong method, bad
//! percent-encoding) is UFM-style JSON.

use std::fmt;

use axum::http::Method;

/// The authentication scheme a URL prefix selects: Basic on `/ufmRest`, a token on `/ufmRestV3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `/ufmRest`: HTTP Basic with user name and password.
    Basic,
    /// `/ufmRestV3`: access token sent as `Authorization: Basic <token>`.
    Token,
}

/// Every endpoint the emulator serves, for per-endpoint counters and assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// E1 `GET /app/ufm_version`.
    Version,
    /// E2 `POST /resources/pkeys`.
    AddGuids,
    /// E3 `POST /actions/remove_guids_from_pkey`.
    RemoveGuidsAction,
    /// E3' `DELETE /resources/pkeys/{pkey}/guids/{guids}`.
    DeleteGuids,
    /// E4 `GET /resources/pkeys`.
    ListPkeys,
    /// E5 `GET /resources/pkeys/{pkey}`.
    GetPkey,
    /// E6 `PUT /resources/pkeys`.
    SetGuids,
    /// E7 `POST /resources/pkeys/add`.
    CreatePkey,
    /// E8 `DELETE /resources/pkeys/{pkey}`.
    DeletePkey,
    /// E9 `PUT /resources/pkeys/qos_conf`.
    SetQos,
    /// E10 `GET /resources/pkeys/last_updated`.
    LastUpdated,
    /// `GET`/`POST /app/tokens` (Basic auth only).
    Tokens,
    /// Anything else: answered 404 or 405.
    Unknown,
}

impl Endpoint {
    /// A stable name, used in logs and by tests that key on strings.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Version => "ufm_version",
            Endpoint::AddGuids => "add_guids",
            Endpoint::RemoveGuidsAction => "remove_guids_from_pkey",
            Endpoint::DeleteGuids => "delete_guids",
            Endpoint::ListPkeys => "list_pkeys",
            Endpoint::GetPkey => "get_pkey",
            Endpoint::SetGuids => "set_guids",
            Endpoint::CreatePkey => "create_pkey",
            Endpoint::DeletePkey => "delete_pkey",
            Endpoint::SetQos => "set_qos",
            Endpoint::LastUpdated => "last_updated",
            Endpoint::Tokens => "tokens",
            Endpoint::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A routed request: the endpoint plus the values its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    AddGuids,
    RemoveGuidsAction,
    DeleteGuids { pkey: String, guids: String },
    ListPkeys,
    GetPkey { pkey: String },
    SetGuids,
    CreatePkey,
    DeletePkey { pkey: String },
    SetQos,
    LastUpdated,
    ListTokens,
    CreateToken,
}

impl Route {
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Route::Version => Endpoint::Version,
            Route::AddGuids => Endpoint::AddGuids,
            Route::RemoveGuidsAction => Endpoint::RemoveGuidsAction,
            Route::DeleteGuids { .. } => Endpoint::DeleteGuids,
            Route::ListPkeys => Endpoint::ListPkeys,
            Route::GetPkey { .. } => Endpoint::GetPkey,
            Route::SetGuids => Endpoint::SetGuids,
            Route::CreatePkey => Endpoint::CreatePkey,
            Route::DeletePkey { .. } => Endpoint::DeletePkey,
            Route::SetQos => Endpoint::SetQos,
            Route::LastUpdated => Endpoint::LastUpdated,
            Route::ListTokens | Route::CreateToken => Endpoint::Tokens,
        }
    }
}

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no such resource: {0}")]
    NotFound(String),
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed { method: Method, path: String },
    #[error("bad percent-encoding in path segment {0:?}")]
    BadEncoding(String),
}

/// Splits off the prefix, which decides authentication before anything else is known.
pub fn prefix_of(path: &str) -> Option<(Prefix, &str)> {
    let (first, rest) = match path.strip_prefix('/')?.split_once('/') {
        Some((first, rest)) => (first, rest),
        None => return None,
    };
    let prefix = match first {
        "ufmRest" => Prefix::Basic,
        "ufmRestV3" => Prefix::Token,
        _ => return None,
    };
    Some((prefix, rest))
}

/// Routes a full request path (query excluded). `HEAD` routes like `GET`, as UFM's web
/// server does; the fork of ib-kubernetes sends `HEAD` to read the `Date` header.
pub fn route(method: &Method, path: &str) -> Result<(Prefix, Route), RouteError> {
    let not_found = || RouteError::NotFound(path.to_owned());
    let (prefix, rest) = prefix_of(path).ok_or_else(not_found)?;
    // Both `/resources/pkeys` and `/resources/pkeys/` are in use: UFM's documentation writes the slash,
    // clients (the Go plugin among them) often leave it out.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect::<Result<_, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let is_get = *method == Method::GET || *method == Method::HEAD;
    let wrong_method = || RouteError::MethodNotAllowed { method: method.clone(), path: path.to_owned() };
    let route = match segments.as_slice() {
        ["app", "ufm_version"] if is_get => Route::Version,
        ["app", "ufm_version"] => return Err(wrong_method()),
        ["app", "tokens"] if prefix == Prefix::Basic => match *method {
            Method::POST => Route::CreateToken,
            _ if is_get => Route::ListTokens,
            _ => return Err(wrong_method()),
        },
        ["resources", "pkeys"] => match *method {
            Method::POST => Route::AddGuids,
            Method::PUT => Route::SetGuids,
            _ if is_get => Route::ListPkeys,
            _ => return Err(wrong_method()),
        },
        ["resources", "pkeys", "add"] if *method == Method::POST => Route::CreatePkey,
        ["resources", "pkeys", "last_updated"] if is_get => Route::LastUpdated,
        ["resources", "pkeys", "qos_conf"] if *method == Method::PUT => Route::SetQos,
        ["resources", "pkeys", pkey] => match *method {
            Method::DELETE => Route::DeletePkey { pkey: (*pkey).to_owned() },
            _ if is_get => Route::GetPkey { pkey: (*pkey).to_owned() },
            _ => return Err(wrong_method()),
        },
        ["resources", "pkeys", pkey, "guids", guids] if *method == Method::DELETE => {
            Route::DeleteGuids { pkey: (*pkey).to_owned(), guids: (*guids).to_owned() }
        }
        ["resources", "pkeys", _, "guids", _] => return Err(wrong_method()),
        ["actions", "remove_guids_from_pkey"] if *method == Method::POST => Route::RemoveGuidsAction,
        ["actions", "remove_guids_from_pkey"] => return Err(wrong_method()),
        _ => return Err(not_found()),
    };
    Ok((prefix, route))
}

/// Some clients write the comma of E3' as `%2C`; GUIDs and PKeys are otherwise plain ASCII.
fn percent_decode(segment: &str) -> Result<String, RouteError> {
    let bad = || RouteError::BadEncoding(segment.to_owned());
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_prefixes_and_trailing_slash_route_alike() {
        assert_eq!(route(&Method::GET, "/ufmRest/resources/pkeys/"), Ok((Prefix::Basic, Route::ListPkeys)));
        assert_eq!(route(&Method::GET, "/ufmRestV3/resources/pkeys"), Ok((Prefix::Token, Route::ListPkeys)));
        assert_eq!(route(&Method::POST, "/ufmRest/resources/pkeys/"), Ok((Prefix::Basic, Route::AddGuids)));
    }

    #[test]
    fn fixed_names_win_over_pkey_parameters() {
        assert_eq!(route(&Method::GET, "/ufmRest/resources/pkeys/last_updated").map(|r| r.1), Ok(Route::LastUpdated));
        assert_eq!(route(&Method::POST, "/ufmRest/resources/pkeys/add").map(|r| r.1), Ok(Route::CreatePkey));
        assert_eq!(
            route(&Method::GET, "/ufmRest/resources/pkeys/0x5").map(|r| r.1),
            Ok(Route::GetPkey { pkey: "0x5".into() })
        );
    }

    #[test]
    fn guid_lists_in_paths_are_decoded() {
        let r = route(&Method::DELETE, "/ufmRest/resources/pkeys/0x5/guids/0200000000000001%2C0200000000000002");
        assert_eq!(
            r.map(|r| r.1),
            Ok(Route::DeleteGuids { pkey: "0x5".into(), guids: "0200000000000001,0200000000000002".into() })
        );
        assert!(matches!(
            route(&Method::DELETE, "/ufmRest/resources/pkeys/0x5/guids/%zz"),
            Err(RouteError::BadEncoding(_))
        ));
        assert!(matches!(
            route(&Method::DELETE, "/ufmRest/resources/pkeys/0x5/guids/%e"),
            Err(RouteError::BadEncoding(_))
        ));
    }

    #[test]
    fn unknown_paths_and_methods_are_distinguished() {
        assert!(matches!(route(&Method::GET, "/ufmRestV2/resources/pkeys"), Err(RouteError::NotFound(_))));
        assert!(matches!(route(&Method::GET, "/"), Err(RouteError::NotFound(_))));
        assert!(matches!(route(&Method::PATCH, "/ufmRest/resources/pkeys"), Err(RouteError::MethodNotAllowed { .. })));
        assert!(matches!(route(&Method::GET, "/ufmRestV3/app/tokens"), Err(RouteError::NotFound(_))));
    }
}
