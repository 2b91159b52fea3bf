//! The PostgreSQL backend, for teams and scale.
//!
//! A small pool of synchronous connections (the `postgres` crate). Writers serialize on the
//! `meta` row (`SELECT … FOR UPDATE`) before reading anything, so compare-and-set checks see
//! every earlier commit under READ COMMITTED; consistent reads use a read-only REPEATABLE READ
//! transaction. A connection that fails is dropped, not reused: after a server restart the
//! next call connects afresh, and the failing call reports `StoreError::Unavailable`.
//! Text columns use the "C" collation so names sort bytewise, exactly as in SQLite.

use std::collections::HashMap;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Statement};

use super::engine::{Backend, Sql, SqlStore, Val, SCHEMA};
use super::error::StoreError;
use super::pool::Pool;

/// Connections per store; writers serialize on one row anyway, and PostgreSQL's default
/// `max_connections` is 100.
const MAX_CONNECTIONS: usize = 16;
/// Prepared statements kept per connection (listings build their SQL from the filters given).
const MAX_CACHED_STATEMENTS: usize = 256;

struct PgConn {
    client: Client,
    cache: HashMap<String, Statement>,
}

/// The PostgreSQL backend; use through [`open`].
pub struct Postgres {
    config: postgres::Config,
    /// The TLS client (`None`: `sslmode=disable`); see [`super::pg_tls`].
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    shown_url: String,
    pool: Pool<PgConn>,
}

impl Drop for Postgres {
    /// Closing a client runs a small runtime of its own, which panics inside another one; the
    /// last handle on a store can go away on a tokio worker (a server's background task ending
    /// at shutdown), so there its connections are closed on a thread of their own.
    fn drop(&mut self) {
        let idle = self.pool.take_idle();
        if idle.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        // Detached: the connections only need closing, nobody waits for it.
        let _ = std::thread::Builder::new()
            .name("kloud-pg-close".into())
            .spawn(move || drop(idle));
    }
}

fn err(e: postgres::Error) -> StoreError {
    let unavailable = match e.as_db_error() {
        // The crate does not expose its error kinds; these are its connection failures.
        None => {
            let m = e.to_string();
            [
                "error connecting",
                "connection closed",
                "error communicating",
                "timeout",
            ]
            .iter()
            .any(|p| m.starts_with(p))
        }
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P") || code == "40001" || code == "40P01"
        }
    };
    // `db error` alone says nothing; the server's own message does.
    let text = match e.as_db_error() {
        Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
        None => {
            // The reason (a TLS certificate check, a refused connection) is in the sources.
            let mut text = format!("postgres: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let part = s.to_string();
                if !text.contains(&part) {
                    text.push_str(": ");
                    text.push_str(&part);
                }
                source = s.source();
            }
            text
        }
    };
    if unavailable || e.is_closed() {
        StoreError::Unavailable(text)
    } else {
        StoreError::Backend(text)
    }
}

struct Conn<'a, C: GenericClient> {
    client: &'a mut C,
    cache: &'a mut HashMap<String, Statement>,
}

impl<C: GenericClient> Conn<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(st) = self.cache.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql).map_err(err)?;
        if self.cache.len() >= MAX_CACHED_STATEMENTS {
            self.cache.clear();
        }
        self.cache.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

fn bind(args: &[Val]) -> Vec<Box<dyn ToSql + Sync>> {
    args.iter()
        .map(|a| -> Box<dyn ToSql + Sync> {
            match a {
                Val::I(i) => Box::new(*i),
                Val::T(s) => Box::new(s.clone()),
                Val::Null => Box::new(None::<String>),
            }
        })
        .collect()
}

impl<C: GenericClient> Sql for Conn<'_, C> {
    fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64, StoreError> {
        let st = self.statement(sql)?;
        let owned = bind(args);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        self.client.execute(&st, &refs).map_err(err)
    }

    fn query(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Vec<Val>>, StoreError> {
        let st = self.statement(sql)?;
        let owned = bind(args);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        let rows = self.client.query(&st, &refs).map_err(err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut vals = Vec::with_capacity(row.len());
            for (i, col) in row.columns().iter().enumerate() {
                let v = match *col.type_() {
                    Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| v.map(Val::I)),
                    Type::INT4 => row
                        .try_get::<_, Option<i32>>(i)
                        .map(|v| v.map(|n| Val::I(i64::from(n)))),
                    _ => row.try_get::<_, Option<String>>(i).map(|v| v.map(Val::T)),
                }
                .map_err(err)?;
                vals.push(v.unwrap_or(Val::Null));
            }
            out.push(vals);
        }
        Ok(out)
    }

    fn now_ms(&mut self) -> Result<u64, StoreError> {
        let rows = self.query(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )?;
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(Val::I(ms)) => u64::try_from(ms)
                .map_err(|_| StoreError::Backend("postgres: negative clock".into())),
            _ => Err(StoreError::Backend("postgres: no clock reading".into())),
        }
    }
}

/// The URL without its password (in any of its forms), for display.
fn shown(url: &str) -> String {
    super::location::redact(url)
}

impl Postgres {
    /// Connect to `url` and create the schema if it is missing.
    pub fn open(url: &str) -> Result<Postgres, StoreError> {
        let bad = |reason: String| StoreError::Url {
            url: shown(url),
            reason,
        };
        let tls = super::pg_tls::settings(url).map_err(|e| bad(e.to_string()))?;
        let (ssl_mode, tls_connect) =
            super::pg_tls::connector(&tls).map_err(|e| bad(e.to_string()))?;
        let mut config: postgres::Config = tls.url.parse().map_err(|e| bad(format!("{e}")))?;
        config.ssl_mode(ssl_mode);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.keepalives_idle(Duration::from_secs(30));
        let pg = Postgres {
            config,
            tls: tls_connect,
            shown_url: shown(url),
            pool: Pool::new(MAX_CONNECTIONS),
        };
        pg.with(|c| {
            let mut tx = c.client.transaction().map_err(err)?;
            let mut conn = Conn {
                client: &mut tx,
                cache: &mut c.cache,
            };
            // Concurrent first opens would race on CREATE TABLE IF NOT EXISTS.
            conn.exec("SELECT pg_advisory_xact_lock(7301975)", &[])?;
            for stmt in SCHEMA {
                let stmt = stmt.replace("{SEQ}", "seq BIGSERIAL PRIMARY KEY");
                let stmt = if stmt.starts_with("CREATE TABLE") {
                    stmt.replace(" TEXT", " TEXT COLLATE \"C\"")
                } else {
                    stmt
                };
                conn.exec(&stmt, &[])?;
            }
            tx.commit().map_err(err)
        })?;
        Ok(pg)
    }

    fn connect(&self) -> Result<PgConn, StoreError> {
        let client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
        .map_err(err)?;
        Ok(PgConn {
            client,
            cache: HashMap::new(),
        })
    }

    /// A live connection: an idle one closed by a server restart is replaced.
    fn checkout(&self) -> Result<PgConn, StoreError> {
        let conn = self.pool.get(|| self.connect())?;
        if !conn.client.is_closed() {
            return Ok(conn);
        }
        drop(conn);
        self.pool.discard();
        self.pool.get(|| self.connect())
    }

    /// Run `f` on a pooled connection; the connection goes back only if it did not fail.
    fn with<R>(
        &self,
        f: impl FnOnce(&mut PgConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.checkout()?;
        let out = f(&mut conn);
        if matches!(out, Err(StoreError::Unavailable(_))) || conn.client.is_closed() {
            drop(conn);
            self.pool.discard();
        } else {
            self.pool.put(conn);
        }
        out
    }
}

impl Backend for Postgres {
    fn url(&self) -> String {
        self.shown_url.clone()
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with(|c| {
            f(&mut Conn {
                client: &mut c.client,
                cache: &mut c.cache,
            })
        })
    }

    fn read_consistent<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with(|c| {
            let mut tx = c
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(err)?;
            let out = f(&mut Conn {
                client: &mut tx,
                cache: &mut c.cache,
            })?;
            tx.commit().map_err(err)?;
            Ok(out)
        })
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with(|c| {
            let mut tx = c.client.transaction().map_err(err)?;
            let out = {
                let mut conn = Conn {
                    client: &mut tx,
                    cache: &mut c.cache,
                };
                conn.query("SELECT idx FROM meta WHERE id = 1 FOR UPDATE", &[])?;
                f(&mut conn)?
            };
            tx.commit().map_err(err)?;
            Ok(out)
        })
    }
}

/// Open the PostgreSQL store at `url`.
pub fn open(url: &str) -> Result<SqlStore<Postgres>, StoreError> {
    Ok(SqlStore {
        backend: Postgres::open(url)?,
    })
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn hides_password() {
        assert_eq!(
            shown("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(shown("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(shown("postgres://h/db"), "postgres://h/db");
    }
}
