//! The shared store suite run against the HTTP client talking to a live `hostdb serve`
//! (over SQLite), so the remote store behaves exactly as the embedded one.

mod hostdb_suite;

use std::sync::Arc;

use kloud::hostdb::client::HttpStore;
use kloud::server::{spawn, Running, ServerConfig};
use kloud::hostdb::{Role, Store};

pub struct Fixture {
    pub store: Box<dyn Store>,
    _server: Running,
    _dir: tempfile::TempDir,
}

fn open() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let local = kloud::hostdb::sqlite::open(&dir.path().join("h.db")).unwrap();
    let (_, secret) = local.token_create("suite", Role::Admin).unwrap();
    let server = spawn(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(local),
        ServerConfig::default(),
        2,
    )
    .unwrap();
    let store = Box::new(HttpStore::new(&server.url(), Some(secret)).unwrap());
    Some(Fixture {
        store,
        _server: server,
        _dir: dir,
    })
}

all_store_tests!(open());
