//! The self-service API (design §10): `GET /v1/offers`, `POST/GET /v1/self/hosts`,
//! `GET/DELETE /v1/self/hosts/{name}`, `POST /v1/self/hosts/{name}/recreate`. Every route
//! needs a session or an API token; errors are `{"error":{"code","message"}}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{Person, SelfError, SelfService};
use crate::identity::Identity;
use crate::server::auth::{bearer, unauthorized};
use crate::server::error::ApiError;

#[derive(Clone)]
struct Ctx {
    service: Arc<SelfService>,
    identity: Arc<Identity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    offer: String,
    #[serde(default)]
    ssh_keys: Vec<String>,
}

/// The self-service routes, for `kloud serve` to merge into its router.
pub fn router(service: Arc<SelfService>, identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/v1/offers", get(offers))
        .route("/v1/self/hosts", get(list).post(request))
        .route("/v1/self/hosts/{name}", get(one).delete(release))
        .route("/v1/self/hosts/{name}/recreate", post(recreate))
        .with_state(Ctx { service, identity })
}

/// The HTTP answer of a self-service error.
pub fn api_error(e: SelfError) -> ApiError {
    let e = match e {
        SelfError::Store(s) => return ApiError::from(s),
        other => other,
    };
    let message = e.to_string();
    let (status, code) = match &e {
        SelfError::UnknownOffer(_) => (StatusCode::NOT_FOUND, "unknown_offer"),
        SelfError::QuotaExceeded { .. } => (StatusCode::CONFLICT, "quota_exceeded"),
        SelfError::NoCapacity { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity"),
        SelfError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        SelfError::BadName(_) | SelfError::BadKey(_) | SelfError::NoKeys => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        SelfError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        SelfError::Engine(_) | SelfError::Store(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    let mut err = ApiError::new(status, code, message);
    err.details = match e {
        SelfError::QuotaExceeded { used, per_user, .. } => {
            Some(json!({ "used": used, "per_user": per_user }))
        }
        SelfError::NoCapacity { explanation, .. } => Some(json!({ "explanation": explanation })),
        _ => None,
    };
    err
}

/// The caller, from their session or API token.
async fn person(ctx: &Ctx, headers: &HeaderMap) -> Result<Person, ApiError> {
    let Some(secret) = bearer(headers)? else {
        return Err(unauthorized(
            "sign in first: `kloud login URL` or POST /v1/auth/login",
        ));
    };
    let info = ctx
        .identity
        .verify(&secret)
        .await
        .map_err(crate::identity::routes::api_error)?
        .ok_or_else(|| unauthorized("unknown or expired session or token"))?;
    Ok(Person {
        name: info.name,
        role: info.role,
    })
}

async fn offers(State(ctx): State<Ctx>, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = person(&ctx, &headers).await?;
    let items = ctx.service.offers(&who).await.map_err(api_error)?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn list(State(ctx): State<Ctx>, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = person(&ctx, &headers).await?;
    let items = ctx.service.list(&who).await.map_err(api_error)?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn one(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let who = person(&ctx, &headers).await?;
    let host = ctx.service.get(&who, &name).await.map_err(api_error)?;
    Ok(Json(host).into_response())
}

async fn request(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let who = person(&ctx, &headers).await?;
    let req: Request = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"offer\": \"...\", \"ssh_keys\": [\"...\"]}}: {e}"
        ))
    })?;
    let host = ctx
        .service
        .request(&who, &req.offer, req.ssh_keys)
        .await
        .map_err(api_error)?;
    Ok((StatusCode::ACCEPTED, Json(host)).into_response())
}

async fn release(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let who = person(&ctx, &headers).await?;
    let host = ctx.service.release(&who, &name).await.map_err(api_error)?;
    Ok((StatusCode::ACCEPTED, Json(host)).into_response())
}

async fn recreate(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let who = person(&ctx, &headers).await?;
    let host = ctx.service.recreate(&who, &name).await.map_err(api_error)?;
    Ok((StatusCode::ACCEPTED, Json(host)).into_response())
}
