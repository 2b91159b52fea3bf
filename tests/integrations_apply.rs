//! `integrations::converge_all`, the last step of `kloud apply`, against the real programs:
//! every integration the config declares is converged from a SQLite HostDB — BIND answers
//! `dig`, the Prometheus file_sd file lists the targets, `nagios4 -v` accepts the generated
//! directory, and puppet reports a role that is not a valid class name. Also
//! `kloud sync nagios` once.

mod integrations_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use integrations_support::{dns_block, missing, DnsServer, Fixture, ZONE};
use kloud::hostdb::Tag;
use kloud::integrations::{converge_all, host_records};
use serde_json::json;

fn nagios() -> Option<PathBuf> {
    let p = std::env::var_os("KLOUD_TEST_NAGIOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nagios4"));
    if p.exists() {
        Some(p)
    } else {
        missing("nagios4", "monitoring.sh");
        None
    }
}

/// A main config that includes the operator's base objects (the nagios provider's test
/// fixture) and the generated directory; `nagios4 -v` output and success.
fn nagios_verify(bin: &Path, dir: &Path, generated: &Path) -> (bool, String) {
    let base =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("providers/nagios/tests/fixtures/base.cfg");
    let d = dir.display();
    let cfg = format!(
        "log_file={d}/nagios.log\ncfg_file={}\ncfg_dir={}\ncheck_result_path={d}\n\
         lock_file={d}/nagios.lock\ntemp_file={d}/nagios.tmp\nstatus_file={d}/status.dat\n\
         object_cache_file={d}/objects.cache\nprecached_object_file={d}/objects.precache\n\
         nagios_user=root\nnagios_group=root\n",
        base.display(),
        generated.display()
    );
    let path = dir.join("nagios.cfg");
    std::fs::write(&path, cfg).expect("nagios.cfg");
    let out = Command::new(bin)
        .arg("-v")
        .arg(&path)
        .output()
        .expect("run nagios4");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn host_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("host-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn converge_all_brings_every_declared_integration_in_line() {
    let Some(bind) = DnsServer::start() else {
        return;
    };
    let Some(nagios_bin) = nagios() else { return };
    let f = Fixture::new(&format!(
        "{}\nprovider \"prometheus\" {{\n  file_sd = \"targets.json\"\n}}\n\
         provider \"nagios\" {{\n  dir = \"nagios.d\"\n}}\n\
         provider \"puppet\" {{}}\n",
        dns_block(&bind)
    ));
    std::fs::create_dir_all(f.path().join("nagios.d")).expect("nagios dir");
    let mut web = Tag::new("web");
    web.properties = json!({"nagios_checks": ["http"]})
        .as_object()
        .cloned()
        .unwrap_or_default();
    f.put_tag(web);
    f.put(f.host("web-1", "10.40.0.11"));
    let mut odd = f.host("web-2", "10.40.0.12");
    odd.roles = vec!["Role::Not Valid".into()];
    f.put(odd);

    let config = kloud::config::load(f.path(), &Default::default()).expect("config");
    let results = converge_all(&config, &*f.store, false).expect("converge_all");
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["dns", "nagios", "prometheus", "puppet"]);
    for (name, r) in &results {
        assert!(r.is_ok(), "{name}: {r:?}");
    }
    let ok = |name: &str| {
        results
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.as_ref().ok())
            .cloned()
            .expect("result")
    };
    // DNS: both hosts resolve, forward and reverse; 2 hosts x 2 zones.
    assert_eq!(ok("dns").added, 4);
    assert_eq!(bind.dig(&format!("web-1.{ZONE}"), "A"), ["10.40.0.11"]);
    assert_eq!(bind.reverse("10.40.0.12"), [format!("web-2.{ZONE}.")]);
    // Prometheus: the file lists both targets with their machine's labels.
    let sd: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.path().join("targets.json")).expect("file_sd"),
    )
    .expect("json");
    let targets: Vec<&str> = sd
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["targets"][0].as_str())
        .collect();
    assert_eq!(targets, ["10.40.0.11:9100", "10.40.0.12:9100"]);
    assert_eq!(sd[0]["labels"]["rack"], "r1");
    assert_eq!(sd[0]["labels"]["switch"], "sw-a");
    // Nagios: a file per host, and the real nagios accepts the directory with the services
    // the `web` tag asks for.
    assert_eq!(
        host_files(&f.path().join("nagios.d")),
        ["host-web-1.dc1.test.cfg", "host-web-2.dc1.test.cfg"]
    );
    let work = tempfile::tempdir().expect("tempdir");
    let (valid, out) = nagios_verify(&nagios_bin, work.path(), &f.path().join("nagios.d"));
    assert!(valid, "nagios4 -v refused the generated config:\n{out}");
    assert!(out.contains("Checked 3 hosts."), "{out}");
    assert!(out.contains("Checked 3 services."), "{out}");
    // Puppet pushes nothing but reports the role it could not serve.
    let puppet = ok("puppet");
    assert!(
        puppet
            .diagnostics
            .iter()
            .any(|d| d.summary.contains("Role::Not Valid")),
        "{:?}",
        puppet.diagnostics
    );

    // Again: nothing to do anywhere.
    let again = converge_all(&config, &*f.store, false).expect("converge_all");
    for (name, r) in &again {
        let r = r.as_ref().expect("converge");
        assert!(r.is_noop(), "{name}: {r:?}");
    }

    // `kloud sync nagios` converges a deletion the same way.
    f.delete("web-2");
    let out = f.kloud(&["sync", "nagios"]).output().expect("run kloud");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        host_files(&f.path().join("nagios.d")),
        ["host-web-1.dc1.test.cfg"]
    );
    let (valid, out) = nagios_verify(&nagios_bin, work.path(), &f.path().join("nagios.d"));
    assert!(valid, "{out}");
    assert!(out.contains("Checked 2 hosts."), "{out}");
    assert_eq!(host_records(&*f.store, None).expect("list").len(), 1);
}

#[test]
fn converge_all_without_integrations_does_nothing() {
    let f = Fixture::new("");
    f.put(f.host("web-1", "10.40.0.11"));
    let config = kloud::config::load(f.path(), &Default::default()).expect("config");
    let results = converge_all(&config, &*f.store, false).expect("converge_all");
    assert!(results.is_empty());
}

#[test]
fn a_broken_provider_block_is_reported_by_name() {
    // The loader checks types; the provider checks values (a secret that is not base64).
    let f = Fixture::new(
        "provider \"dns\" {\n  server = \"127.0.0.1:1\"\n  zone = \"dc1.test\"\n  \
         key_name = \"kloud\"\n  secret = \"not base64!\"\n}\n",
    );
    let config = kloud::config::load(f.path(), &Default::default()).expect("config");
    let err = converge_all(&config, &*f.store, false).expect_err("a bad secret");
    let text = err.to_string();
    assert!(text.contains("dns") && text.contains("secret"), "{text}");
}
