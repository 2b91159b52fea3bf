//! `kloud hosts`, `kloud tags` and `kloud history` as a user runs them, over a HostDB the real
//! engine wrote (`ops::apply` with the in-memory `FakeDriver`): their tables are snapshots, with
//! times, and column widths that follow them, normalised.

mod ops_support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use kloud::config::load;
use kloud::hostdb;
use kloud::ops::{self, events::Recorded, ApplyRequest, PlanRequest};
use ops_support::{write_config, FakeDriver, FakeDrivers};

/// The ops tests' config with a tag on the web class.
fn write_tagged_config(dir: &Path, web_count: u32, memory: &str) {
    write_config(dir, web_count, memory);
    let text = std::fs::read_to_string(dir.join("main.hcl")).unwrap();
    let text = text.replace(
        "host_class \"web\" {\n",
        "host_class \"web\" {\n  tags   = [\"frontend\"]\n",
    ) + "\ntag \"frontend\" {\n  properties  = { tier = \"web\", port = 8080 }\n  description = \"public web servers\"\n}\n";
    std::fs::write(dir.join("main.hcl"), text).unwrap();
}

/// Plan and apply the config in `dir` with the fake driver; the apply must be complete.
fn apply(dir: &Path, driver: &Arc<FakeDriver>) {
    let config = load(dir, &Default::default()).unwrap_or_else(|d| panic!("{d}"));
    let store = hostdb::open("sqlite:hostdb.db", dir).unwrap();
    let drivers = FakeDrivers(driver.clone());
    let plan = ops::plan(
        &config,
        store.as_ref(),
        &drivers,
        &PlanRequest::default(),
        &Recorded::default(),
    )
    .unwrap();
    let req = ApplyRequest {
        parallelism: 1,
        actor: "alice@ops (pid 1)".into(),
        cancel: Arc::new(AtomicBool::new(false)),
        lock_ttl: kloud::apply::TTL,
    };
    let out = ops::apply(
        &plan,
        &config,
        store.as_ref(),
        &drivers,
        &req,
        &Recorded::default(),
    )
    .unwrap();
    assert!(out.complete(), "{:?}", out.hosts.results);
}

fn kloud(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kloud"))
        .args(args)
        .arg("--hostdb")
        .arg(format!("sqlite:{}", dir.join("hostdb.db").display()))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("KLOUD_HOSTDB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kloud {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    normalise(&String::from_utf8_lossy(&out.stdout))
}

/// Times become `<time>`; runs of spaces become two, so a column whose width follows a time
/// does not change the snapshot.
fn normalise(text: &str) -> String {
    let time = regex::Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?").unwrap();
    let spaces = regex::Regex::new(r" {2,}").unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            spaces
                .replace_all(&time.replace_all(l, "<time>"), "  ")
                .trim_end()
                .to_string()
        })
        .collect();
    lines.join("\n")
}

#[test]
fn hosts_tags_and_history_tables() {
    let dir = tempfile::tempdir().unwrap();
    let driver = Arc::new(FakeDriver::default());
    write_tagged_config(dir.path(), 3, "256MiB");
    apply(dir.path(), &driver);
    // A resize, so a host's history has more than its creation.
    write_tagged_config(dir.path(), 3, "512MiB");
    apply(dir.path(), &driver);

    insta::assert_snapshot!("hosts", kloud(dir.path(), &["hosts"]));
    insta::assert_snapshot!(
        "hosts_tag_filter",
        kloud(
            dir.path(),
            &["hosts", "--tag", "frontend", "--kind", "container"]
        )
    );
    // Tags are HostDB objects of their own, set by people; hosts name them.
    kloud(
        dir.path(),
        &["tags", "set", "public", "--property", "zone=dmz"],
    );
    kloud(
        dir.path(),
        &[
            "tags",
            "set",
            "frontend",
            "--property",
            "port=8080",
            "--parent",
            "public",
        ],
    );
    insta::assert_snapshot!("tags", kloud(dir.path(), &["tags"]));
    insta::assert_snapshot!("tag_show", kloud(dir.path(), &["tags", "show", "frontend"]));
    insta::assert_snapshot!(
        "history",
        kloud(dir.path(), &["history", "web-1.t.internal"])
    );
}
