//! HostDB: the source of truth for machines and hosts (design §4).
//!
//! [`Store`] is the one interface; [`open`] picks the implementation from a URL:
//! `sqlite:PATH` (embedded), `postgres://…` (shared) or `http(s)://…` (a `kloud hostdb serve`).
//! The model types in [`model`] are also the JSON of the HTTP API.

pub mod client;
pub mod derive;
pub(crate) mod documents;
mod engine;
pub mod error;
pub mod location;
pub mod model;
pub mod names;
pub mod pg_tls;
mod pool;
pub mod postgres;
pub mod protocol;
pub mod records;
pub mod sqlite;
pub mod store;
pub mod util;

use std::path::Path;

pub use engine::SqlStore;
pub use error::StoreError;
pub use model::{
    Actor, Change, Document, Expect, Host, HostQuery, Kind, Lease, Members, ObjectKind, Page, Role,
    Snapshot, State, Tag, TokenInfo, Write,
};
pub use store::Store;

/// Open the store a URL names. Relative SQLite paths are taken relative to `base_dir` (the
/// config directory).
pub fn open(url: &str, base_dir: &Path) -> Result<Box<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::Url {
                url: url.to_string(),
                reason: "no file path after `sqlite:`".to_string(),
            });
        }
        let path = base_dir.join(path);
        return Ok(Box::new(sqlite::open(&path)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(postgres::open(url)?));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Box::new(client::HttpStore::from_env(url)?));
    }
    Err(StoreError::Url {
        url: url.to_string(),
        reason: "expected `sqlite:PATH`, `postgres://…` or `http(s)://…`".to_string(),
    })
}
