//! The shared store suite run against the embedded SQLite store and against PostgreSQL.

mod hostdb_suite;

pub struct Fixture {
    pub store: Box<dyn kloud::hostdb::Store>,
    _dir: tempfile::TempDir,
}

mod sqlite {
    use super::*;

    fn open() -> Option<Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let store = kloud::hostdb::open("sqlite:sub/hostdb.db", dir.path()).unwrap();
        assert!(dir.path().join("sub/hostdb.db").exists());
        Some(Fixture { store, _dir: dir })
    }

    crate::all_store_tests!(open());
}
