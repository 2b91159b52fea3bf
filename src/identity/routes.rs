//! `POST /v1/auth/login` and `POST /v1/auth/logout` (design §10), errors as
//! `{"error":{"code","message"}}`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{Identity, IdentityError};
use crate::server::auth::bearer;
use crate::server::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

/// The sign-in routes, for `kloud serve` to merge into its router.
pub fn router(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .with_state(identity)
}

/// The HTTP answer of an identity error.
pub fn api_error(e: IdentityError) -> ApiError {
    let message = e.to_string();
    match e {
        IdentityError::BadCredentials => {
            ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", message)
        }
        IdentityError::UnknownSession => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
        IdentityError::LdapUnavailable(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ldap_unavailable", message)
        }
        IdentityError::NotConfigured => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "login_not_configured",
            message,
        ),
        IdentityError::NotASession => ApiError::bad_request(message),
        IdentityError::Tls(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
        }
        IdentityError::Store(e) => ApiError::from(e),
    }
}

async fn login(
    State(identity): State<Arc<Identity>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: Login = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"username\": \"...\", \"password\": \"...\"}}: {e}"
        ))
    })?;
    let session = identity
        .login(&req.username, &req.password)
        .await
        .map_err(api_error)?;
    Ok((StatusCode::OK, Json(session)).into_response())
}

async fn logout(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let Some(secret) = bearer(&headers)? else {
        return Err(api_error(IdentityError::UnknownSession));
    };
    identity.logout(&secret).await.map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT)
}
