//! Bearer-token authentication and role checks.
//!
//! Tokens are looked up by their SHA-256 in the store. Verified tokens are cached for a few
//! seconds so a hot read path does not hit the database on every request; a revoked token
//! therefore keeps working for at most [`CACHE_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};

use super::error::ApiError;
use crate::hostdb::model::{Role, TokenInfo};
use crate::hostdb::store::Store;
use crate::hostdb::util::token_hash;

pub const CACHE_TTL: Duration = Duration::from_secs(5);
const CACHE_MAX: usize = 10_000;

/// Who is calling: a token, or nobody (allowed for reads with `--anonymous-read`).
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    Token(TokenInfo),
}

impl Caller {
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Token(t) => &t.name,
        }
    }
}

/// Recently verified tokens by hash.
#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<String, (TokenInfo, Instant)>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<TokenInfo> {
        let map = self.map.lock().ok()?;
        let (info, at) = map.get(hash)?;
        (at.elapsed() < CACHE_TTL).then(|| info.clone())
    }

    fn put(&self, hash: String, info: TokenInfo) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= CACHE_MAX {
                map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            }
            if map.len() < CACHE_MAX {
                map.insert(hash, (info, Instant::now()));
            }
        }
    }

    /// Forget every cached token (after a revocation through this server).
    pub fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }
}

/// The bearer secret of a request, if it carries one.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    match v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
    {
        Some(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        _ => Err(unauthorized("expected `Authorization: Bearer TOKEN`")),
    }
}

pub fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg)
}

/// Resolve the caller and check it has at least `need`. Runs the store lookup on the
/// blocking pool only on a cache miss.
pub async fn authorize(
    store: &std::sync::Arc<dyn Store>,
    cache: &std::sync::Arc<TokenCache>,
    headers: &HeaderMap,
    need: Role,
    anonymous_read: bool,
) -> Result<Caller, ApiError> {
    let Some(secret) = bearer(headers)? else {
        if need == Role::Reader && anonymous_read {
            return Ok(Caller::Anonymous);
        }
        return Err(unauthorized("a bearer token is required"));
    };
    let hash = token_hash(&secret);
    let info = match cache.get(&hash) {
        Some(info) => info,
        None => {
            let store = store.clone();
            let found = tokio::task::spawn_blocking(move || store.token_verify(&secret))
                .await
                .map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
                })??;
            let Some(info) = found else {
                return Err(unauthorized("unknown token"));
            };
            // Sessions (people signed in) are never cached: a logout or revocation on any
            // replica sharing the database ends them at once.
            if info.expires_ms.is_none() {
                cache.put(hash, info.clone());
            }
            info
        }
    };
    if info.role < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` has role `{}`; this needs `{}`",
                info.name,
                info.role.as_str(),
                need.as_str()
            ),
        ));
    }
    Ok(Caller::Token(info))
}
