//! Where a HostDB is: a URL, the directory relative SQLite paths are taken from, and where
//! the URL came from. Every command finds its HostDB through `config::locate`, which makes one
//! of these; [`redact`] is how a URL is shown anywhere (its password never is).

use std::path::{Path, PathBuf};

use super::{Store, StoreError};

/// Where HostDB is and how to (re)open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub url: String,
    /// Relative SQLite paths are taken from here (the config directory).
    pub base_dir: PathBuf,
    /// Where the URL came from (`--hostdb`, `KLOUD_HOSTDB`, a config file), for messages.
    pub source: String,
}

/// What identifies the database a store reads: for a SQLite file its device and inode, so a
/// file replaced underneath us (a restore from backup) is noticed; open connections would
/// otherwise keep reading the old, unlinked file forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity(u64, u64);

impl Location {
    /// The SQLite file of a `sqlite:` URL.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let p = self.url.strip_prefix("sqlite:")?;
        Some(self.base_dir.join(p.strip_prefix("//").unwrap_or(p)))
    }

    /// Open the store. A SQLite file that does not exist is an error here rather than a new
    /// empty database: converging to "no hosts" because a path was wrong would remove every
    /// record the integration manages.
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        if let Some(path) = self.sqlite_path() {
            if !path.is_file() {
                return Err(StoreError::Unavailable(format!(
                    "the HostDB file `{}` does not exist",
                    path.display()
                )));
            }
        }
        super::open(&self.url, &self.base_dir)
    }

    /// The URL with any password masked: what messages show.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// The identity of the database, when it has one we can check cheaply.
    pub fn identity(&self) -> Option<Identity> {
        let path = self.sqlite_path()?;
        identity_of(&path)
    }
}

#[cfg(unix)]
fn identity_of(path: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Identity(m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity_of(_path: &Path) -> Option<Identity> {
    None
}

/// A HostDB URL with its password masked, in every form it can take: `user:PASSWORD@` in the
/// authority, `password=` in the query string (libpq style), and `PGPASSWORD`-like key/value
/// words (`password=...` separated by spaces).
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                let start = scheme_end + 3 + colon + 1;
                let end = scheme_end + 3 + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    mask_words(&out, "password=")
}

/// Replace the value after every `key` (up to `&`, `;` or a space) with `***`.
fn mask_words(text: &str, key: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let lower = |s: &str| s.to_ascii_lowercase();
    while let Some(pos) = lower(rest).find(key) {
        out.push_str(&rest[..pos + key.len()]);
        let after = &rest[pos + key.len()..];
        let end = after.find(['&', ';', ' ']).unwrap_or(after.len());
        if end > 0 {
            out.push_str("***");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_masked_in_every_form() {
        assert_eq!(
            redact("postgres://kloud:s3cret@db:5432/hostdb"),
            "postgres://kloud:***@db:5432/hostdb"
        );
        assert_eq!(
            redact("postgres://db/hostdb?user=k&password=s3cret&sslmode=require"),
            "postgres://db/hostdb?user=k&password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgres://db/h?PASSWORD=x"),
            "postgres://db/h?PASSWORD=***"
        );
        assert_eq!(
            redact("host=db password=s3cret user=k"),
            "host=db password=*** user=k"
        );
        assert_eq!(redact("postgres://kloud@db/h"), "postgres://kloud@db/h");
        assert_eq!(redact("sqlite:.kloud/hostdb.db"), "sqlite:.kloud/hostdb.db");
        assert_eq!(redact("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert!(!redact("postgres://u:p%40ss@db/h").contains("p%40ss"));
    }
}
