//! API errors and their `kind: Status` wire form.
//!
//! Clients branch on `reason` and `code` (kube-rs `Error::Api`, client-go `IsConflict`), so each
//! variant renders exactly the reason string, code, message and `details` the apiserver sends for
//! the same failure.

use crate::resource::Resource;
use serde_json::{Map, Value, json};

/// A failed API call, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 404 `NotFound` for a named object.
    #[error("{} \"{name}\" not found", resource.qualified_plural())]
    NotFound {
        /// Resource type.
        resource: Resource,
        /// Object name.
        name: String,
    },
    /// 404 `NotFound` for a path the server does not serve.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// 409 `AlreadyExists` on create.
    #[error("{} \"{name}\" already exists", resource.qualified_plural())]
    AlreadyExists {
        /// Resource type.
        resource: Resource,
        /// Object name.
        name: String,
    },
    /// 409 `Conflict`: an optimistic-concurrency or precondition failure.
    #[error("Operation cannot be fulfilled on {} \"{name}\": {detail}", resource.qualified_plural())]
    Conflict {
        /// Resource type.
        resource: Resource,
        /// Object name.
        name: String,
        /// The apiserver's explanation after the colon.
        detail: String,
    },
    /// 422 `Invalid`: the object fails validation.
    #[error("{} \"{name}\" is invalid: {field}: {detail}", resource.kind())]
    Invalid {
        /// Resource type.
        resource: Resource,
        /// Object name.
        name: String,
        /// The offending field path, e.g. `metadata.uid`.
        field: String,
        /// What is wrong with it, e.g. `Invalid value: "x": field is immutable`.
        detail: String,
    },
    /// 422 `Invalid` without a field: a JSON patch that does not apply.
    #[error("{0}")]
    Unprocessable(String),
    /// 400 `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// 405 `MethodNotAllowed`.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 415 `UnsupportedMediaType`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 410 `Expired`: a resourceVersion or continue token older than retained history.
    #[error("{0}")]
    Expired(String),
    /// 429 `TooManyRequests`, with a `Retry-After` hint.
    #[error("Too many requests, please try again later.")]
    TooManyRequests {
        /// Seconds the client should wait.
        retry_after_seconds: u32,
    },
    /// 500 `InternalError`.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// 503 `ServiceUnavailable`.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 504 `Timeout`.
    #[error("{message}")]
    Timeout {
        /// Human-readable message.
        message: String,
        /// Seconds the client should wait before retrying, when the server suggests it.
        retry_after_seconds: Option<u32>,
    },
    /// 413 `RequestEntityTooLarge`.
    #[error("Request entity too large: limit is {0}")]
    RequestEntityTooLarge(usize),
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } | ApiError::Unprocessable(_) => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::MethodNotAllowed => 405,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Expired(_) => 410,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::ServiceUnavailable(_) => 503,
            ApiError::Timeout { .. } => 504,
            ApiError::RequestEntityTooLarge(_) => 413,
        }
    }

    /// The machine-readable `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } | ApiError::Unprocessable(_) => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Expired(_) => "Expired",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::Internal(_) => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Timeout { .. } => "Timeout",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
        }
    }

    /// Seconds for a `Retry-After` header, when the error carries one.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::TooManyRequests { retry_after_seconds } => Some(*retry_after_seconds),
            ApiError::Timeout { retry_after_seconds, .. } => *retry_after_seconds,
            _ => None,
        }
    }

    /// A Conflict carrying the apiserver's stale-write message.
    pub fn stale(resource: Resource, name: &str) -> ApiError {
        ApiError::Conflict {
            resource,
            name: name.to_string(),
            detail: "the object has been modified; please apply your changes to the latest \
                     version and try again"
                .to_string(),
        }
    }

    /// A 410 for a watch or list starting before retained history.
    pub fn too_old(requested: u64, oldest: u64) -> ApiError {
        ApiError::Expired(format!("too old resource version: {requested} ({oldest})"))
    }

    /// The `details` object, or `None` when the apiserver omits it.
    fn details(&self) -> Option<Value> {
        let mut details = Map::new();
        let mut named = |resource: Resource, name: &str, kind: &str| {
            details.insert("name".into(), json!(name));
            if !resource.group().is_empty() {
                details.insert("group".into(), json!(resource.group()));
            }
            details.insert("kind".into(), json!(kind));
        };
        match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => {
                named(*resource, name, resource.plural());
            }
            ApiError::Invalid { resource, name, field, detail } => {
                // Invalid names the Kind, not the plural, in `details.kind`.
                named(*resource, name, resource.kind());
                details.insert(
                    "causes".into(),
                    json!([{ "reason": "FieldValueInvalid", "message": detail, "field": field }]),
                );
            }
            ApiError::TooManyRequests { retry_after_seconds } => {
                details.insert("retryAfterSeconds".into(), json!(retry_after_seconds));
            }
            ApiError::Timeout { retry_after_seconds, .. } => {
                if let Some(seconds) = retry_after_seconds {
                    details.insert("retryAfterSeconds".into(), json!(seconds));
                }
            }
            _ => return None,
        }
        Some(Value::Object(details))
    }

    /// The `kind: Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let (Some(details), Some(obj)) = (self.details(), status.as_object_mut()) {
            obj.insert("details".into(), details);
        }
        status
    }
}

/// The `Status` of `Success` that DELETE returns for types that don't return the deleted object.
pub(crate) fn delete_success(resource: Resource, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": resource.plural(), "uid": uid });
    if !resource.group().is_empty() {
        details["group"] = json!(resource.group());
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_has_apiserver_shape() {
        let status = ApiError::stale(Resource::Leases, "leader").to_status();
        assert_eq!(status["code"], 409);
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(
            status["message"],
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"leader\": the object \
             has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(status["details"]["group"], "coordination.k8s.io");
        assert_eq!(status["details"]["kind"], "leases");
    }

    #[test]
    fn not_found_for_core_has_no_group() {
        let status = ApiError::NotFound { resource: Resource::Pods, name: "p".into() }.to_status();
        assert_eq!(status["message"], "pods \"p\" not found");
        assert!(status["details"].get("group").is_none());
        assert_eq!(status["details"]["kind"], "pods");
        assert_eq!(status["status"], "Failure");
    }

    #[test]
    fn invalid_names_kind_and_cause() {
        let status = ApiError::Invalid {
            resource: Resource::Pods,
            name: "p".into(),
            field: "metadata.uid".into(),
            detail: "Invalid value: \"x\": field is immutable".into(),
        }
        .to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["kind"], "Pod");
        assert_eq!(status["details"]["causes"][0]["field"], "metadata.uid");
    }

    #[test]
    fn expired_message_names_both_versions() {
        let status = ApiError::too_old(5, 9).to_status();
        assert_eq!(status["message"], "too old resource version: 5 (9)");
        assert_eq!(status["reason"], "Expired");
        assert!(status.get("details").is_none());
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let err = ApiError::TooManyRequests { retry_after_seconds: 2 };
        assert_eq!(err.retry_after(), Some(2));
        assert_eq!(err.to_status()["details"]["retryAfterSeconds"], 2);
    }
}
