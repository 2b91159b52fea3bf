//! Opening HostDB from the command line, the one way every command does (through
//! `config::locate`), and rendering store errors for people. URLs are always shown redacted.

use miette::{miette, IntoDiagnostic};

use super::diagnostics::load_or_report;
use crate::config::{locate, Config};
use crate::hostdb::location::Location;
use crate::hostdb::{Store, StoreError};

#[derive(Debug, clap::Args)]
pub struct HostdbFlag {
    /// HostDB URL (`sqlite:PATH`, `postgres://…`, `http://HOST:PORT`); default from
    /// KLOUD_HOSTDB or the config in the current directory
    #[arg(long, global = true, value_name = "URL")]
    pub hostdb: Option<String>,
}

/// Render a store error for a person.
pub fn store_error(e: StoreError) -> miette::Report {
    let help = match &e {
        StoreError::Unauthorized(_) => {
            "set KLOUD_HOSTDB_TOKEN to a token from `kloud hostdb token create`"
        }
        StoreError::Forbidden(_) => "this needs a token with a higher role",
        StoreError::Unavailable(_) => "check that the HostDB server or database is up, then retry",
        StoreError::Conflict { .. } => "someone else changed it meanwhile; read it again and retry",
        StoreError::Url { .. } => {
            "HostDB URLs look like `sqlite:PATH`, `postgres://…` or `http://HOST:PORT`"
        }
        _ => "",
    };
    if help.is_empty() {
        miette!(code = format!("kloud::hostdb::{}", e.code()), "{e}")
    } else {
        miette!(
            code = format!("kloud::hostdb::{}", e.code()),
            help = help,
            "{e}"
        )
    }
}

/// Open the HostDB at `loc`. With `must_exist`, a SQLite file that does not exist is an error
/// rather than a new, empty database.
pub fn open_at(loc: &Location, must_exist: bool) -> miette::Result<Box<dyn Store>> {
    if let Some(path) = loc.sqlite_path().filter(|p| must_exist && !p.exists()) {
        return Err(miette!(
            code = "kloud::hostdb::no_database",
            help = "run in a config directory, or pass `--hostdb URL` or set KLOUD_HOSTDB",
            "no HostDB at `{}` (from {}): the file does not exist",
            path.display(),
            loc.source
        ));
    }
    crate::hostdb::open(&loc.url, &loc.base_dir).map_err(|e| {
        miette!(
            code = "kloud::hostdb::open",
            help = "check `hostdb` in the `kloud` block, or pass --hostdb URL",
            "cannot open HostDB `{}` (from {}): {e}",
            loc.redacted(),
            loc.source
        )
    })
}

/// Open the HostDB of a loaded config (or `--hostdb`).
pub fn open_for(config: &Config, flag: Option<&str>) -> miette::Result<Box<dyn Store>> {
    open_at(&locate::for_config(flag, config), false)
}

/// Open HostDB for a command that only reads it, run in the current directory.
pub fn open_reading(flag: Option<&str>) -> miette::Result<Box<dyn Store>> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    let loc = locate::resolve(flag, &cwd).map_err(store_error)?;
    open_at(&loc, true)
}

/// The config in the current directory, or `None` when there is none (no `*.hcl` files).
pub fn cwd_config() -> miette::Result<Option<Config>> {
    let dir = std::path::Path::new(".");
    let has_hcl = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "hcl"))
        })
        .unwrap_or(false);
    if !has_hcl {
        return Ok(None);
    }
    load_or_report(dir, &[]).map(Some)
}
