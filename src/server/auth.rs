//! Bearer-token authentication and role checks.
//!
//! Tokens are looked up by their SHA-256 in the store. Verified tokens are cached for a few
//! seconds so a hot read path does not hit the database on every request; a revoked token
//! therefore keeps working for at most [`CACHE_TTL`].
//!
//! Failed lookups are cached too ([`MISS_TTL`]), and at most [`MAX_LOOKUPS`] lookups run at
//! once, so a client sending wrong tokens in a loop costs the database one read per token per
//! [`MISS_TTL`], and a flood of random tokens cannot take every blocking thread. A token made
//! in the database by another process is therefore refused for up to [`MISS_TTL`] after a
//! failed try with it (one made through this server clears the cache).

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
/// How long an unknown token is answered 401 without asking the store again.
pub const MISS_TTL: Duration = Duration::from_secs(5);
/// Token lookups running at once; more wait their turn.
pub const MAX_LOOKUPS: usize = 8;

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

    /// The owner a scoped token may write for (`None`: any owner).
    pub fn scope(&self) -> Option<String> {
        match self {
            Caller::Anonymous => None,
            Caller::Token(t) => t.owner.clone(),
        }
    }
}

/// Recently verified tokens by hash, and recently refused ones.
pub struct TokenCache {
    map: Mutex<HashMap<String, (TokenInfo, Instant)>>,
    misses: Mutex<HashMap<String, Instant>>,
    lookups: tokio::sync::Semaphore,
}

impl Default for TokenCache {
    fn default() -> TokenCache {
        TokenCache {
            map: Mutex::default(),
            misses: Mutex::default(),
            lookups: tokio::sync::Semaphore::new(MAX_LOOKUPS),
        }
    }
}

impl TokenCache {
    /// Whether `hash` was refused less than [`MISS_TTL`] ago.
    fn missed(&self, hash: &str) -> bool {
        self.misses
            .lock()
            .ok()
            .and_then(|m| m.get(hash).map(|at| at.elapsed() < MISS_TTL))
            .unwrap_or(false)
    }

    fn put_miss(&self, hash: String) {
        if let Ok(mut m) = self.misses.lock() {
            if m.len() >= CACHE_MAX {
                m.retain(|_, at| at.elapsed() < MISS_TTL);
            }
            if m.len() < CACHE_MAX {
                m.insert(hash, Instant::now());
            }
        }
    }

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
        if let Ok(mut m) = self.misses.lock() {
            m.clear();
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
        None if cache.missed(&hash) => return Err(unauthorized("unknown token")),
        None => {
            let internal =
                |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e);
            let _turn = cache
                .lookups
                .acquire()
                .await
                .map_err(|e| internal(e.to_string()))?;
            // Another request may have looked this token up while we waited.
            if cache.missed(&hash) {
                return Err(unauthorized("unknown token"));
            }
            let store = store.clone();
            let found = tokio::task::spawn_blocking(move || store.token_verify(&secret))
                .await
                .map_err(|e| internal(e.to_string()))??;
            let Some(info) = found else {
                cache.put_miss(hash);
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
