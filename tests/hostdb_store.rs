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

/// A fresh schema in the test server, dropped when the fixture goes.
pub struct PgSchema {
    admin_url: String,
    schema: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// The test server's URL, or `None` (skip) when it is not set up outside CI.
pub fn pg_url() -> Option<String> {
    match std::env::var("KLOUD_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if kloud_provider_api::under_ci() => {
            panic!("CI=true but KLOUD_TEST_PG_URL is not set: source scripts/setup/postgres.sh")
        }
        _ => {
            eprintln!("skipping: KLOUD_TEST_PG_URL not set (source scripts/setup/postgres.sh)");
            None
        }
    }
}

/// A URL whose connections use a new, empty schema.
pub fn pg_schema_url() -> Option<(String, PgSchema)> {
    let admin_url = pg_url()?;
    let schema = format!("t_{}", kloud::hostdb::util::random_hex(8).unwrap());
    let mut c = postgres::Client::connect(&admin_url, postgres::NoTls)
        .expect("connect to KLOUD_TEST_PG_URL");
    c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
    Some((url, PgSchema { admin_url, schema }))
}

mod pg {
    use super::*;

    pub struct PgFixture {
        pub store: Box<dyn kloud::hostdb::Store>,
        _schema: PgSchema,
    }

    fn open() -> Option<PgFixture> {
        let (url, schema) = pg_schema_url()?;
        let store = kloud::hostdb::open(&url, std::path::Path::new(".")).unwrap();
        Some(PgFixture {
            store,
            _schema: schema,
        })
    }

    crate::all_store_tests!(open());
}
