//! Where `kloud login` keeps a person's session: `$XDG_CONFIG_HOME/kloud/session.json` (else
//! `~/.config/kloud/session.json`), mode 0600 in a 0700 directory. The token is never printed.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use miette::{miette, IntoDiagnostic};
use serde::{Deserialize, Serialize};

/// A saved sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// The server, e.g. `https://kloud.example:7480`.
    pub url: String,
    pub user: String,
    pub role: String,
    pub expires_at: String,
    /// The bearer token (secret).
    pub token: String,
    /// A CA (PEM) to trust for this server, beside the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// The directory the session file lives in.
pub fn dir() -> miette::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("kloud"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            miette!(
                code = "kloud::login::no_home",
                "neither XDG_CONFIG_HOME nor HOME is set"
            )
        })?;
    Ok(PathBuf::from(home).join(".config").join("kloud"))
}

fn file() -> miette::Result<PathBuf> {
    Ok(dir()?.join("session.json"))
}

/// Save `saved`, readable by its owner only.
pub fn save(saved: &Saved) -> miette::Result<PathBuf> {
    let dir = dir()?;
    std::fs::create_dir_all(&dir).into_diagnostic()?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).into_diagnostic()?;
    let path = file()?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .into_diagnostic()?;
    // A file that existed keeps its mode: make sure.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .into_diagnostic()?;
    let text = serde_json::to_vec_pretty(saved).into_diagnostic()?;
    f.write_all(&text).into_diagnostic()?;
    f.sync_all().into_diagnostic()?;
    std::fs::rename(&tmp, &path).into_diagnostic()?;
    Ok(path)
}

/// The saved sign-in, or a hint to sign in.
pub fn load() -> miette::Result<Saved> {
    let path = file()?;
    let text = std::fs::read(&path).map_err(|_| {
        miette!(
            code = "kloud::login::not_signed_in",
            help = "sign in with `kloud login https://SERVER:PORT`",
            "not signed in ({} does not exist)",
            path.display()
        )
    })?;
    serde_json::from_slice(&text).map_err(|e| {
        miette!(
            code = "kloud::login::bad_session_file",
            help = "sign in again with `kloud login URL`",
            "{} cannot be read: {e}",
            path.display()
        )
    })
}

/// Forget the saved sign-in.
pub fn remove() -> miette::Result<()> {
    match std::fs::remove_file(file()?) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).into_diagnostic(),
    }
}
