//! `kloud plan`, `show` and `apply FILE` as CI runs them: exit codes, saved plans, refusals.

use std::path::{Path, PathBuf};
use std::process::Command;

use kloud::hostdb::{self, Actor, Expect, Host};

fn kloud(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kloud"));
    c.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("KLOUD_HOSTDB");
    c
}

/// A copy of an example in a temporary directory, with its own HostDB.
fn workspace(example: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(example);
    for e in std::fs::read_dir(&src).unwrap() {
        let p: PathBuf = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "hcl") {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    // The sources of its `template` blocks.
    let templates = src.join("templates");
    if templates.is_dir() {
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        for e in std::fs::read_dir(templates).unwrap() {
            let p: PathBuf = e.unwrap().path();
            std::fs::copy(
                &p,
                dir.path().join("templates").join(p.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    dir
}

#[test]
fn detailed_exitcode_says_whether_there_are_changes() {
    let ws = workspace("quickstart");
    let out = kloud(ws.path())
        .args(["plan", ".", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Plan: 5 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged."),
        "{stdout}"
    );
    let out = kloud(ws.path()).args(["plan", "."]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "without the flag, changes are not an error"
    );
    let out = kloud(ws.path()).args(["plan", "nowhere"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn unplaced_hosts_fail_the_plan_unless_allowed() {
    let ws = workspace("quickstart");
    let out = kloud(ws.path())
        .args(["plan", ".", "--var", "web_count=9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Cannot be placed:"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be placed"));
    let out = kloud(ws.path())
        .args([
            "plan",
            ".",
            "--var",
            "web_count=9",
            "--allow-partial",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["summary"]["unplaced"].as_u64().unwrap() > 0);
    assert!(!v["unplaced"][0]["reasons"].as_object().unwrap().is_empty());
}

#[test]
fn saved_plans_show_the_same_and_refuse_when_stale() {
    let ws = workspace("quickstart");
    let out = kloud(ws.path())
        .args(["plan", ".", "--out", "plan.json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = kloud(ws.path())
        .args(["show", "--json", "plan.json"])
        .output()
        .unwrap();
    let planned = kloud(ws.path())
        .args(["plan", ".", "--json"])
        .output()
        .unwrap();
    let a: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(a, b, "show of a saved plan prints the plan");

    // Someone writes to HostDB after the plan was made: apply refuses before touching anything.
    let store = hostdb::open("sqlite:.kloud/hostdb.db", ws.path()).unwrap();
    store
        .put_host(
            Host::container("web-1.qs.kloud.internal"),
            Expect::Absent,
            &Actor::new("someone"),
        )
        .unwrap();
    let out = kloud(ws.path())
        .args(["apply", "plan.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stale") && stderr.contains("web-1.qs.kloud.internal"),
        "{stderr}"
    );
    assert!(
        store.list_locks().unwrap().is_empty(),
        "the lock is released after a refusal"
    );

    // A changed config is refused too.
    let out = kloud(ws.path())
        .args(["plan", ".", "--out", "plan2.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let main = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        main.replace("default     = 3", "default     = 2"),
    )
    .unwrap();
    let out = kloud(ws.path())
        .args(["apply", "plan2.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("different config"));
}

/// Record the plan saved at `ws/plan.json` in the workspace's HostDB as a complete apply would.
fn record_as_applied(ws: &Path) {
    let text = std::fs::read_to_string(ws.join("plan.json")).unwrap();
    let plan: kloud::plan::Plan = serde_json::from_str(&text).unwrap();
    let store = hostdb::open("sqlite:.kloud/hostdb.db", ws).unwrap();
    let owner = plan.config.as_ref().unwrap().owner.clone();
    store
        .write(
            kloud::apply::records::as_applied(&plan, &owner),
            &Actor::new("test"),
        )
        .unwrap();
}

#[test]
fn markdown_is_short_and_puts_deletes_first() {
    let ws = workspace("datacenter");
    let secret = ("KLOUD_TSIG_SECRET", "c3VwZXItc2VjcmV0LXZhbHVl");
    let out = kloud(ws.path())
        .env(secret.0, secret.1)
        .args(["plan", ".", "--out", "plan.json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    record_as_applied(ws.path());
    // Fewer web hosts: 6 web and 12 of the class counted from it are deleted.
    let out = kloud(ws.path())
        .env(secret.0, secret.1)
        .args([
            "plan",
            ".",
            "--format",
            "markdown",
            "--var",
            "web_count=18",
            "--allow-partial",
            "--detailed-exitcode",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("### kloud plan"), "{md}");
    assert!(md.contains("> **Warning:** this plan deletes 18"), "{md}");
    let deletes = md.find("- delete (").expect("a delete section");
    let table = md.find("| delete | 18 |").expect("deletes counted");
    assert!(table < deletes);
    for later in ["+ create (", "~ update ("] {
        if let Some(at) = md.find(later) {
            assert!(deletes < at, "deletes come before `{later}`");
        }
    }
    // A big plan is cut to a size a pull-request comment takes.
    let out = kloud(ws.path())
        .env(secret.0, secret.1)
        .args([
            "plan",
            ".",
            "--format",
            "markdown",
            "--var",
            "web_count=400",
            "--allow-partial",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.len() < 65_000, "markdown is {} bytes", md.len());
    assert!(md.contains("… and "), "long sections are cut");
}

#[test]
fn secrets_never_reach_plan_output_or_files() {
    let ws = workspace("datacenter");
    let secret = "c3VwZXItc2VjcmV0LXZhbHVl";
    let out = kloud(ws.path())
        .env("KLOUD_TSIG_SECRET", secret)
        .args(["plan", ".", "--json", "--out", "plan.json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    assert!(!std::fs::read_to_string(ws.path().join("plan.json"))
        .unwrap()
        .contains(secret));
}

#[test]
fn validate_and_plan_need_no_provider_secrets_but_sync_does() {
    let ws = workspace("datacenter");
    let run = |args: &[&str]| {
        kloud(ws.path())
            .env_remove("KLOUD_TSIG_SECRET")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["validate", "."]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["plan", ".", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "`secret` reads `KLOUD_TSIG_SECRET`, which is not set: apply and sync will need it"
        ),
        "{err}"
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(plan["summary"]["create"].as_u64().unwrap() > 0);
    // The integration itself refuses to run without it, saying which variable is missing.
    std::fs::create_dir_all(ws.path().join(".kloud")).unwrap();
    hostdb::open("sqlite:.kloud/hostdb.db", ws.path()).unwrap();
    let out = run(&["sync", "dns", "."]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KLOUD_TSIG_SECRET"), "{err}");
    assert!(err.contains("not set"), "{err}");
}
