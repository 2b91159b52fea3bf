//! The embedded SQLite backend: one file, created on first use, in WAL mode.
//!
//! Readers come from a small pool of connections so reads run in parallel with each other and
//! with the single writer; writes take an in-process mutex and `BEGIN IMMEDIATE`, so other
//! processes using the same file are serialized by SQLite's own lock (with a busy timeout).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::engine::{Backend, Sql, SqlStore, Val, SCHEMA};
use super::error::StoreError;
use super::pool::Pool;

/// Reader connections; more would only contend for the same two or so cores.
const MAX_READERS: usize = 8;
/// Refresh the query planner's statistics after this many write transactions. Without them
/// SQLite cannot tell a tag of 100 hosts from a property shared by 50,000, and may drive a
/// query from the wrong side.
const OPTIMIZE_EVERY: u64 = 64;
const OPTIMIZE: &str = "PRAGMA analysis_limit = 1000; PRAGMA optimize;";

/// The SQLite backend; use through [`open`].
pub struct Sqlite {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Pool<Connection>,
    writes: AtomicU64,
}

fn err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(format!("sqlite: {e}"))
        }
        _ => StoreError::Backend(format!("sqlite: {e}")),
    }
}

/// Rewrite `$N` placeholders to SQLite's `?N`.
fn dialect(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Create a new database file 0600 (never through a symlink), so SQLite, which gives its
/// `-wal` and `-shm` files the database's mode, makes them 0600 too. An existing file is
/// left as it is.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // `:memory:`, `file:` URIs and the like are SQLite's to resolve.
        Err(_)
            if path.to_string_lossy().starts_with(':')
                || path.to_string_lossy().starts_with("file:") =>
        {
            Ok(())
        }
        Err(e) => Err(StoreError::Backend(format!(
            "creating `{}`: {e}",
            path.display()
        ))),
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    // NORMAL is durable across application crashes in WAL mode; only a power loss may drop the
    // last transactions, never corrupt the file.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

struct Conn<'a>(&'a Connection);

fn bind(args: &[Val]) -> Vec<SqlValue> {
    args.iter()
        .map(|a| match a {
            Val::I(i) => SqlValue::Integer(*i),
            Val::T(s) => SqlValue::Text(s.clone()),
            Val::Null => SqlValue::Null,
        })
        .collect()
}

impl Sql for Conn<'_> {
    fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64, StoreError> {
        let mut st = self.0.prepare_cached(&dialect(sql)).map_err(err)?;
        let n = st
            .execute(rusqlite::params_from_iter(bind(args)))
            .map_err(err)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Vec<Val>>, StoreError> {
        let mut st = self.0.prepare_cached(&dialect(sql)).map_err(err)?;
        let cols = st.column_count();
        let mut rows = st
            .query(rusqlite::params_from_iter(bind(args)))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let mut vals = Vec::with_capacity(cols);
            for i in 0..cols {
                vals.push(match row.get_ref(i).map_err(err)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(n) => Val::I(n),
                    ValueRef::Real(f) => Val::I(f as i64),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Val::T(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(vals);
        }
        Ok(out)
    }
}

impl Sqlite {
    /// Open (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Backend(format!("creating `{}`: {e}", dir.display()))
                })?;
            }
        }
        create_private(path)?;
        let writer = connect(path)?;
        let tx = writer.unchecked_transaction().map_err(err)?;
        for stmt in SCHEMA {
            tx.execute_batch(&stmt.replace("{SEQ}", "seq INTEGER PRIMARY KEY AUTOINCREMENT"))
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        writer
            .execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .map_err(err)?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Pool::new(MAX_READERS),
            writes: AtomicU64::new(0),
        })
    }

    fn checkout(&self) -> Result<Connection, StoreError> {
        self.readers.get(|| connect(&self.path))
    }

    fn checkin(&self, conn: Connection) {
        self.readers.put(conn);
    }
}

impl Backend for Sqlite {
    fn url(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let conn = self.checkout()?;
        let out = f(&mut Conn(&conn));
        self.checkin(conn);
        out
    }

    fn read_consistent<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let conn = self.checkout()?;
        let out = (|| {
            let tx = conn.unchecked_transaction().map_err(err)?;
            let out = f(&mut Conn(&tx))?;
            tx.commit().map_err(err)?;
            Ok(out)
        })();
        self.checkin(conn);
        out
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("sqlite writer poisoned".to_string()))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let out = f(&mut Conn(&tx))?;
        tx.commit().map_err(err)?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % OPTIMIZE_EVERY == OPTIMIZE_EVERY - 1 {
            // Statistics only steer plans; a failure here must not fail the committed write.
            let _ = conn.execute_batch(OPTIMIZE);
        }
        Ok(out)
    }
}

/// Open the SQLite store at `path`.
pub fn open(path: &Path) -> Result<SqlStore<Sqlite>, StoreError> {
    Ok(SqlStore {
        backend: Sqlite::open(path)?,
    })
}
