//! HostDB (being merged from the HostDB work; this placeholder only exposes the model).

pub mod error;
pub mod model;
pub mod store;

pub use error::StoreError;
pub use model::{
    Actor, Change, Expect, Host, HostQuery, Kind, Lease, Members, ObjectKind, Page, Role, Snapshot,
    State, Tag, TokenInfo, Write,
};
pub use store::Store;
pub mod util;

/// Placeholder until the stores land.
pub fn open(url: &str, _base_dir: &std::path::Path) -> Result<Box<dyn Store>, StoreError> {
    Err(StoreError::Invalid(format!("no store for `{url}` yet")))
}
