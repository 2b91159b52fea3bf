//! Replacing a destination file atomically, after its `check` passed.
//!
//! The new text goes to a temporary file in the destination's own directory (so the final
//! rename stays on one filesystem and is atomic): created with `O_CREAT|O_EXCL`, which never
//! follows a symbolic link planted at that path, given the old file's mode and owner (0644 and
//! the writer's for a new file), written and synced. Only then may `check` look at it; a
//! failed check deletes it and the old file stays. A destination that is itself a symbolic
//! link is refused rather than silently replaced by a plain file.

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of a destination file that did not exist before.
pub const NEW_FILE_MODE: u32 = 0o644;

/// Why a file could not be read or replaced.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    #[error("`{}`: {reason}", .path.display())]
    Io { path: PathBuf, reason: String },
    #[error("`{}` is a symbolic link; point `destination` at the file itself", .0.display())]
    Symlink(PathBuf),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> WriteError + '_ {
    move |e| WriteError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The destination as it is now.
pub struct Current {
    /// Its text; `None` when it does not exist.
    pub text: Option<Vec<u8>>,
    /// Mode bits, owner and group to keep.
    meta: Option<(u32, u32, u32)>,
}

/// Read the destination (without following a symbolic link).
pub fn current(path: &Path) -> Result<Current, WriteError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(WriteError::Symlink(path.to_path_buf())),
        Ok(m) => Ok(Current {
            text: Some(fs::read(path).map_err(io(path))?),
            meta: Some((m.mode() & 0o7777, m.uid(), m.gid())),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Current {
            text: None,
            meta: None,
        }),
        Err(e) => Err(io(path)(e)),
    }
}

/// A new version of the destination, written next to it but not yet in its place. Dropped
/// without [`Staged::commit`], it is deleted.
pub struct Staged {
    file: tempfile::NamedTempFile,
    destination: PathBuf,
}

impl Staged {
    /// Where the new version is, for `check`.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Put the new version in place (one rename) and sync the directory.
    pub fn commit(self) -> Result<(), WriteError> {
        let dest = self.destination;
        self.file.persist(&dest).map_err(|e| io(&dest)(e.error))?;
        if let Some(dir) = dest.parent() {
            // The rename is durable once the directory is; a failure to sync is not worth
            // undoing a file that is already in place.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

/// Write `text` to a temporary file beside `destination`, with the mode and owner of `old`.
/// Missing parent directories are created.
pub fn stage(destination: &Path, text: &str, old: &Current) -> Result<Staged, WriteError> {
    let dir = match destination.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let base = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "template".to_string());
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{base}."))
        .suffix(".kloud-new")
        .tempfile_in(&dir)
        .map_err(io(&dir))?;
    let tmp = file.path().to_path_buf();
    let (mode, owner) = match old.meta {
        Some((mode, uid, gid)) => (mode, Some((uid, gid))),
        None => (NEW_FILE_MODE, None),
    };
    // On the open file, never on a path someone could swap meanwhile.
    file.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(io(&tmp))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(file.as_file(), Some(uid), Some(gid)).map_err(io(&tmp))?;
    }
    file.write_all(text.as_bytes()).map_err(io(&tmp))?;
    file.as_file().sync_all().map_err(io(&tmp))?;
    Ok(Staged {
        file,
        destination: destination.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_is_kept_and_a_new_file_gets_0644() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.cfg");
        let s = stage(&dest, "one\n", &current(&dest).unwrap()).unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "one\n");
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&dest), 0o644);
        fs::set_permissions(&dest, Permissions::from_mode(0o640)).unwrap();
        let s = stage(&dest, "two\n", &current(&dest).unwrap()).unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "two\n");
        assert_eq!(mode(&dest), 0o640);
        // Only the destination is left: no temporary files.
        let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.cfg"]);
    }

    #[test]
    fn a_dropped_stage_leaves_the_old_file_and_no_litter() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.cfg");
        fs::write(&dest, "old\n").unwrap();
        let s = stage(&dest, "new\n", &current(&dest).unwrap()).unwrap();
        let tmp = s.path().to_path_buf();
        assert_eq!(fs::read_to_string(&tmp).unwrap(), "new\n");
        drop(s);
        assert!(!tmp.exists());
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old\n");
    }

    #[test]
    fn a_symlinked_destination_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        fs::write(&target, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(current(&link), Err(WriteError::Symlink(_))));
    }
}
