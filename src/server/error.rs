//! The JSON error of the HTTP API: `{ "error": { "code": "...", "message": "...", ... } }`.

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::hostdb::error::StoreError;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra machine-readable fields (a conflict's indexes, a lock's holder).
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("`{what}` not found"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = match &e {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Conflict { .. } | StoreError::Held { .. } => StatusCode::CONFLICT,
            StoreError::LeaseLost { .. } => StatusCode::GONE,
            StoreError::Invalid(_) | StoreError::Url { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            StoreError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            StoreError::Forbidden(_) | StoreError::ForbiddenOwner { .. } => StatusCode::FORBIDDEN,
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let details = match &e {
            StoreError::Conflict {
                object,
                expected,
                actual,
            } => Some(json!({ "object": object, "expected": expected, "actual": actual })),
            StoreError::Held {
                name,
                holder,
                since_ms,
                id,
            } => Some(json!({ "name": name, "holder": holder, "since_ms": since_ms, "id": id })),
            StoreError::LeaseLost { name, id } => Some(json!({ "name": name, "id": id })),
            StoreError::NotFound { object } => Some(json!({ "object": object })),
            StoreError::ForbiddenOwner {
                object,
                owner,
                scope,
            } => Some(json!({ "object": object, "owner": owner, "scope": scope })),
            _ => None,
        };
        ApiError {
            status,
            code: e.code(),
            message: e.to_string(),
            details,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({ "code": self.code, "message": self.message });
        if let (Some(Value::Object(d)), Some(obj)) = (self.details, err.as_object_mut()) {
            obj.insert("details".to_string(), Value::Object(d));
        }
        let mut resp = (self.status, axum::Json(json!({ "error": err }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "timeout",
        409 => "conflict",
        411 => "length_required",
        412 => "precondition_failed",
        413 => "body_too_large",
        415 => "unsupported_media_type",
        422 => "invalid",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// Rewrite every error that is not JSON yet (the framework's own rejections: an unknown
/// route, a wrong method, a body over the cap) into the API's JSON error.
pub async fn json_errors(req: Request<Body>, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.as_u16() < 400 || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, code_for(status), message).into_response();
    for (k, v) in parts.headers.iter() {
        if k == header::ALLOW || k == header::RETRY_AFTER {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
