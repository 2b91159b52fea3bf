//! The Nagios integration against the real `nagios4 -v`: a main config that includes the
//! generated directory verifies with no errors and no warnings, and counts exactly our hosts,
//! hostgroups and services; after a shrink, stale definitions are gone and it still verifies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kloud_provider_api::integration::{ConvergeRequest, HostRecord, Integration};
use kloud_provider_nagios::NagiosProvider;
use serde_json::json;

fn nagios_bin() -> Option<PathBuf> {
    let p = std::env::var_os("KLOUD_TEST_NAGIOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nagios4"));
    if p.exists() {
        return Some(p);
    }
    if kloud_provider_api::under_ci() {
        panic!("nagios4 missing under CI=true: source scripts/setup/monitoring.sh");
    }
    eprintln!("SKIPPED: nagios4 not installed (source scripts/setup/monitoring.sh)");
    None
}

fn main_config(dir: &Path, generated: &Path) -> PathBuf {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/base.cfg");
    let d = dir.display();
    let cfg = format!(
        "log_file={d}/nagios.log\ncfg_file={}\ncfg_dir={}\ncheck_result_path={d}\n\
         lock_file={d}/nagios.lock\ntemp_file={d}/nagios.tmp\nstatus_file={d}/status.dat\n\
         object_cache_file={d}/objects.cache\nprecached_object_file={d}/objects.precache\n\
         nagios_user=root\nnagios_group=root\n\
         illegal_object_name_chars=`~!$%^&*|'\"<>?,()=\n\
         illegal_macro_output_chars=`~$&|'\"<>\n",
        base.display(),
        generated.display()
    );
    let path = dir.join("nagios.cfg");
    std::fs::write(&path, cfg).expect("nagios.cfg");
    path
}

/// Run `nagios4 -v`; returns (success, output).
fn verify(bin: &Path, cfg: &Path) -> (bool, String) {
    let out = Command::new(bin)
        .arg("-v")
        .arg(cfg)
        .output()
        .expect("run nagios4");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn checked(output: &str, what: &str) -> Option<usize> {
    output.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Checked ")
            .and_then(|rest| rest.strip_suffix(&format!(" {what}.")))
            .and_then(|n| n.parse().ok())
    })
}

fn host(i: usize, class: &str, tags: &[&str]) -> HostRecord {
    HostRecord {
        fqdn: format!("{class}-{i}.dc1.test"),
        ip: format!("10.40.0.{i}"),
        class: class.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        labels: BTreeMap::from([
            ("rack".to_string(), format!("r{}", i % 3)),
            ("switch".to_string(), "sw-a".to_string()),
        ]),
        machine: format!("hw-{}.dc1.test", i % 4),
        roles: vec!["role::nginx".into()],
        properties: Default::default(),
    }
}

#[test]
fn nagios_accepts_the_generated_directory() {
    let Some(bin) = nagios_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let provider = NagiosProvider::from_block(
        &BTreeMap::from([("dir".to_string(), json!("kloud.d"))]),
        dir.path(),
    )
    .expect("block");
    let cfg = main_config(dir.path(), &provider.dir);
    let mut hosts: Vec<HostRecord> = (1..=20)
        .map(|i| {
            let mut h = host(i, "web", &["web", "checkout"]);
            // As a `tag "web" { properties = { nagios_checks = ["http"] } }` would give.
            h.properties.insert("nagios_checks".into(), json!(["http"]));
            h
        })
        .chain((21..=25).map(|i| host(i, "db", &["db"])))
        .collect();
    let req = |hosts: &[HostRecord]| ConvergeRequest {
        hosts: hosts.to_vec(),
        force: false,
        dry_run: false,
    };
    let r = provider.converge(&req(&hosts)).expect("converge");
    assert_eq!(r.added, 25);

    let (ok, out) = verify(&bin, &cfg);
    assert!(ok, "nagios4 -v failed:\n{out}");
    assert!(
        out.contains("Total Warnings: 0") && out.contains("Total Errors:   0"),
        "{out}"
    );
    // 25 of ours + the operator's localhost; class-web, class-db, tag-web, tag-checkout, tag-db.
    assert_eq!(checked(&out, "hosts"), Some(26), "{out}");
    assert_eq!(checked(&out, "host groups"), Some(5), "{out}");
    // One http service per web host, plus the operator's own.
    assert_eq!(checked(&out, "services"), Some(21), "{out}");

    // The db class goes away entirely: its hosts and hostgroups go with it.
    hosts.truncate(20);
    let r = provider.converge(&req(&hosts)).expect("converge");
    assert_eq!(r.removed, 5);
    let (ok, out) = verify(&bin, &cfg);
    assert!(ok, "nagios4 -v failed after shrink:\n{out}");
    assert_eq!(checked(&out, "hosts"), Some(21), "{out}");
    assert_eq!(checked(&out, "host groups"), Some(3), "{out}");

    // The check is not vacuous: a template naming a contact group nobody defined is refused.
    let broken = NagiosProvider::from_block(
        &BTreeMap::from([
            ("dir".to_string(), json!("kloud.d")),
            ("contact_groups".to_string(), json!("ghosts")),
        ]),
        dir.path(),
    )
    .expect("block");
    broken.converge(&req(&hosts)).expect("converge");
    let (ok, out) = verify(&bin, &cfg);
    assert!(
        !ok,
        "nagios4 -v accepted an undefined contact group:\n{out}"
    );
    assert!(out.contains("ghosts"), "{out}");
}
