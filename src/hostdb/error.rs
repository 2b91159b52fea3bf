//! The typed error of every HostDB store, local or remote.

use super::model::Expect;

/// What went wrong in a store operation. The HTTP server maps each variant to a status code
/// and the client maps it back, so a remote store fails the same way as a local one.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StoreError {
    /// The object does not exist.
    #[error("`{object}` not found")]
    NotFound { object: String },
    /// A compare-and-set condition did not hold; `actual` is `None` when the object is absent.
    #[error("conflict on `{object}`: expected {expected}, found {}", fmt_actual(.actual))]
    Conflict {
        object: String,
        expected: Expect,
        actual: Option<u64>,
    },
    /// The input breaks a rule of the data model (a bad name, a tag cycle...).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The lock is held by someone else.
    #[error("lock `{name}` is held by `{holder}` since {since_ms} (lease `{id}`)")]
    Held {
        name: String,
        holder: String,
        since_ms: u64,
        id: String,
    },
    /// The lease being renewed or released is no longer held (expired or force-released).
    #[error("lease `{id}` on lock `{name}` is no longer held")]
    LeaseLost { name: String, id: String },
    /// No or an unknown token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The token's role does not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A token scoped to `scope` (`kloud hostdb token create --owner`) tried to write an
    /// object it may not: a record of another owner (`owner`, `None` for a record without
    /// one), or an object that has no owner (a tag, a document).
    #[error("forbidden: a token scoped to owner `{scope}` cannot write `{object}` ({})", fmt_owner(.owner))]
    ForbiddenOwner {
        object: String,
        owner: Option<String>,
        scope: String,
    },
    /// The backend cannot be reached right now (a database restart, a server down); retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A store URL that cannot be used.
    #[error("bad store url `{url}`: {reason}")]
    Url { url: String, reason: String },
    /// Anything else from the backend.
    #[error("store failure: {0}")]
    Backend(String),
}

fn fmt_owner(owner: &Option<String>) -> String {
    match owner {
        Some(o) => format!("owned by `{o}`"),
        None => "it has no owner".to_string(),
    }
}

fn fmt_actual(actual: &Option<u64>) -> String {
    match actual {
        Some(i) => format!("index {i}"),
        None => "absent".to_string(),
    }
}

impl StoreError {
    /// A short stable code for JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Invalid(_) => "invalid",
            StoreError::Held { .. } => "lock_held",
            StoreError::LeaseLost { .. } => "lease_lost",
            StoreError::Unauthorized(_) => "unauthorized",
            StoreError::Forbidden(_) => "forbidden",
            StoreError::ForbiddenOwner { .. } => "forbidden_owner",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Url { .. } => "bad_url",
            StoreError::Backend(_) => "internal",
        }
    }
}
