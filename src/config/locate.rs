//! Finding HostDB, the one way every command does: `--hostdb URL`, else `KLOUD_HOSTDB`, else
//! `hostdb = "…"` in the `kloud {}` block of the config, else `sqlite:.kloud/hostdb.db`.
//! Relative SQLite paths are relative to the config directory.
//!
//! Commands that load the config use [`for_config`]; commands that only read HostDB (`kloud
//! hosts`, `tags`, `history`, `enc`) use [`resolve`], which reads only that one attribute and
//! ignores files it cannot parse (the loader reports those), so a broken config never hides
//! what HostDB knows.

use std::path::{Path, PathBuf};

use super::Config;
use crate::hostdb::location::Location;
use crate::hostdb::StoreError;

/// The default store of a config directory.
pub const DEFAULT_URL: &str = "sqlite:.kloud/hostdb.db";

/// The HostDB of a loaded config: `--hostdb` (or `KLOUD_HOSTDB`, which clap reads into the
/// flag), else the config's `kloud { hostdb }`.
pub fn for_config(flag: Option<&str>, config: &Config) -> Location {
    match flag.filter(|u| !u.is_empty()) {
        Some(url) => Location {
            url: url.to_string(),
            base_dir: config.dir.clone(),
            source: "--hostdb".to_string(),
        },
        None => Location {
            url: config.settings.hostdb.clone(),
            base_dir: config.dir.clone(),
            source: format!("the config in `{}`", config.dir.display()),
        },
    }
}

/// The HostDB for a command run in `dir` that does not load the config (`kloud hosts`, …).
pub fn resolve(flag: Option<&str>, dir: &Path) -> Result<Location, StoreError> {
    if let Some(url) = flag.filter(|u| !u.is_empty()) {
        return Ok(Location {
            url: url.to_string(),
            base_dir: dir.to_path_buf(),
            source: "--hostdb".to_string(),
        });
    }
    if let Ok(url) = std::env::var("KLOUD_HOSTDB") {
        if !url.is_empty() {
            return Ok(Location {
                url,
                base_dir: dir.to_path_buf(),
                source: "KLOUD_HOSTDB".to_string(),
            });
        }
    }
    if let Some((url, file)) = from_config(dir)? {
        return Ok(Location {
            url,
            base_dir: dir.to_path_buf(),
            source: file.display().to_string(),
        });
    }
    Ok(Location {
        url: DEFAULT_URL.to_string(),
        base_dir: dir.to_path_buf(),
        source: "the default".to_string(),
    })
}

/// `hostdb = "…"` from the `kloud {}` block of the first `*.hcl` (in name order) that sets it.
pub fn from_config(dir: &Path) -> Result<Option<(String, PathBuf)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) => return Ok(None),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(body) = hcl::parse(&text) else {
            continue;
        };
        for block in body.blocks().filter(|b| b.identifier() == "kloud") {
            for attr in block.body().attributes() {
                if attr.key() == "hostdb" {
                    return match attr.expr() {
                        hcl::Expression::String(s) => Ok(Some((s.clone(), file.clone()))),
                        _ => Err(StoreError::Url {
                            url: String::new(),
                            reason: format!(
                                "`hostdb` in `{}` must be a plain string",
                                file.display()
                            ),
                        }),
                    };
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kloud_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.hcl"), "tag \"web\" {\n}\n").unwrap();
        std::fs::write(
            dir.path().join("b.hcl"),
            "kloud {\n  domain = \"x\"\n  hostdb = \"sqlite:db/h.db\"\n}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.hcl"), "not { valid").unwrap();
        let (url, file) = from_config(dir.path()).unwrap().unwrap();
        assert_eq!(url, "sqlite:db/h.db");
        assert!(file.ends_with("b.hcl"));
        let loc = resolve(None, dir.path()).unwrap();
        if std::env::var("KLOUD_HOSTDB").is_err() {
            assert_eq!(loc.sqlite_path().unwrap(), dir.path().join("db/h.db"));
        }
        let loc = resolve(Some("http://127.0.0.1:1"), dir.path()).unwrap();
        assert_eq!(loc.url, "http://127.0.0.1:1");
    }

    #[test]
    fn defaults_without_config() {
        let dir = tempfile::tempdir().unwrap();
        assert!(from_config(dir.path()).unwrap().is_none());
        if std::env::var("KLOUD_HOSTDB").is_err() {
            let loc = resolve(None, dir.path()).unwrap();
            assert_eq!(loc.url, DEFAULT_URL);
        }
    }
}
