//! Files kloud creates are not world-readable and are never written through a planted
//! symlink: the SQLite database and its `-wal`/`-shm` 0600, files written atomically (plan
//! files through `save_plan`, Prometheus file_sd JSON and Nagios config) with the mode asked.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kloud::hostdb::{Actor, Store};
use kloud_provider_api::integration::write_atomically_with_mode;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_new_sqlite_database_and_its_wal_and_shm_are_0600() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let store = kloud::hostdb::sqlite::open(&db).unwrap();
    // A write makes the -wal and -shm files.
    let actor = Actor::new("test");
    store
        .put_tag(
            serde_json::from_value(serde_json::json!({"name": "t1"})).unwrap(),
            kloud::hostdb::Expect::Any,
            &actor,
        )
        .unwrap();
    for name in ["h.db", "h.db-wal", "h.db-shm"] {
        let p = dir.path().join(name);
        assert!(p.exists(), "{name} missing");
        assert_eq!(mode(&p), 0o600, "{name}");
    }
}

#[test]
fn atomic_writes_get_exactly_their_mode_and_replace_a_symlink_without_following_it() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A symlink planted where the file goes: the write replaces the link, not its target.
    let out = dir.path().join("sd.json");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    write_atomically_with_mode(&out, b"[]", Some(0o640)).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert_eq!(mode(&victim), 0o644);
    let meta = std::fs::symlink_metadata(&out).unwrap();
    assert!(meta.file_type().is_file(), "still a symlink");
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(std::fs::read(&out).unwrap(), b"[]");
    // Rewriting keeps the mode; 0600 for plan files.
    let plan = dir.path().join("plan.json");
    std::os::unix::fs::symlink(&victim, dir.path().join("plan.tmp")).unwrap();
    write_atomically_with_mode(&plan, b"{}", Some(0o600)).unwrap();
    write_atomically_with_mode(&plan, b"{ }", Some(0o600)).unwrap();
    assert_eq!(mode(&plan), 0o600);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    // No temp file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("kloud-tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
