//! `kloud enc` end to end: the binary reads a host from a real SQLite HostDB and prints its
//! ENC YAML; the real `puppet apply --node_terminus=exec` runs it through a wrapper and applies
//! exactly the host's roles; an unknown host exits non-zero.

mod integrations_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use integrations_support::{missing, Fixture, KLOUD, ZONE};
use kloud::hostdb::Tag;
use serde_json::json;

fn props(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A fixture with a `web` tag (inherited properties) and host `web-1` with its own property.
fn fixture(providers: &str, marker_dir: &str) -> Fixture {
    let f = Fixture::new(providers);
    let mut web = Tag::new("web");
    web.properties = props(json!({"team": "web-team", "port": 8080, "marker_dir": marker_dir}));
    f.put_tag(web);
    let mut h = f.host("web-1", "10.40.0.7");
    h.properties = props(json!({"tier": "front", "port": 80}));
    f.put(h);
    f
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run kloud");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn enc_prints_roles_and_derived_config_from_hostdb() {
    let f = fixture(
        "provider \"puppet\" {\n  environment = \"staging\"\n}\n",
        "/nowhere",
    );
    let (ok, out, err) = run(&mut f.kloud(&["enc", &format!("web-1.{ZONE}")]));
    assert!(ok, "kloud enc failed: {err}");
    assert!(
        out.starts_with("---\n\"environment\": \"staging\"\n"),
        "{out}"
    );
    assert!(
        out.contains("\"classes\":\n  - \"role::nginx\"\n  - \"role::base\"\n"),
        "classes in the recorded order:\n{out}"
    );
    for line in [
        "  \"team\": \"web-team\"\n", // from the tag
        "  \"tier\": \"front\"\n",    // the host's own
        "  \"port\": 80\n",           // the host's own wins over the tag's
        "  \"kloud_ip\": \"10.40.0.7\"\n",
        "  \"kloud_machine\": \"hw-1.dc1.test\"\n",
        "    \"rack\": \"r1\"\n",
        "    \"switch\": \"sw-a\"\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("8080"), "the tag's port must lose:\n{out}");

    // Puppet may pass the certname with another case or a trailing dot.
    let (ok, again, _) = run(&mut f.kloud(&["enc", "WEB-1.dc1.test."]));
    assert!(ok);
    assert_eq!(again, out);

    // --environment wins over the provider block.
    let (ok, dev, _) = run(&mut f.kloud(&["enc", "web-1.dc1.test", "--environment", "dev"]));
    assert!(ok);
    assert!(dev.starts_with("---\n\"environment\": \"dev\"\n"), "{dev}");
    let (ok, _, err) = run(&mut f.kloud(&["enc", "web-1.dc1.test", "--environment", "Bad-Env"]));
    assert!(!ok, "an invalid puppet environment name was accepted");
    assert!(err.contains("environment"), "{err}");

    // An unknown host: non-zero, nothing on stdout.
    let (ok, out, err) = run(&mut f.kloud(&["enc", "nobody.dc1.test"]));
    assert!(!ok, "an unknown host must fail");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("nobody.dc1.test"), "{err}");
}

#[test]
fn enc_finds_hostdb_by_flag_or_environment_outside_the_config_dir() {
    let f = fixture("", "/nowhere");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", f.path().join("hostdb.db").display());
    let enc = |flag: bool| {
        let mut c = Command::new(KLOUD);
        c.current_dir(elsewhere.path()).env_remove("KLOUD_HOSTDB");
        c.args(["enc", "web-1.dc1.test"]);
        if flag {
            c.args(["--hostdb", &url]);
        } else {
            c.env("KLOUD_HOSTDB", &url);
        }
        run(&mut c)
    };
    for flag in [true, false] {
        let (ok, out, err) = enc(flag);
        assert!(ok, "{err}");
        // No config here: the default environment.
        assert!(
            out.starts_with("---\n\"environment\": \"production\"\n"),
            "{out}"
        );
        assert!(out.contains("\"tier\": \"front\""), "{out}");
    }
    // Without any way to find HostDB it says so and fails.
    let (ok, _, err) = run(Command::new(KLOUD)
        .current_dir(elsewhere.path())
        .env_remove("KLOUD_HOSTDB")
        .args(["enc", "web-1.dc1.test"]));
    assert!(!ok);
    assert!(err.contains("--hostdb"), "{err}");
    // A HostDB file that does not exist is an error, not a new empty database.
    let (ok, _, err) = run(Command::new(KLOUD).current_dir(elsewhere.path()).args([
        "enc",
        "web-1.dc1.test",
        "--hostdb",
        "sqlite:missing.db",
    ]));
    assert!(!ok);
    assert!(
        err.contains("does not exist") && err.contains("missing.db"),
        "{err}"
    );
    assert!(!elsewhere.path().join("missing.db").exists());
}

fn puppet() -> Option<PathBuf> {
    let p = std::env::var_os("KLOUD_TEST_PUPPET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/puppet"));
    if p.exists() {
        Some(p)
    } else {
        missing("puppet", "puppet.sh");
        None
    }
}

const MANIFEST: &str = r#"
class role::nginx {
  file { "${marker_dir}/role-nginx": content => "team=${team} tier=${tier} port=${port} rack=${kloud_labels['rack']}\n" }
}
class role::base {
  file { "${marker_dir}/role-base": content => "base on ${kloud_machine}\n" }
}
class role::db {
  file { "${marker_dir}/role-db": content => "db\n" }
}
"#;

fn puppet_apply(puppet: &Path, dir: &Path, enc: &Path, certname: &str) -> (bool, String) {
    let mut cmd = Command::new(puppet);
    cmd.arg("apply");
    for sub in ["conf", "var", "code", "log", "run"] {
        cmd.arg(format!("--{sub}dir={}", dir.join(sub).display()));
    }
    let out = cmd
        .arg(format!("--certname={certname}"))
        .arg("--node_terminus=exec")
        .arg(format!("--external_nodes={}", enc.display()))
        .arg("--color=false")
        .arg(dir.join("site.pp"))
        .output()
        .expect("run puppet");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn puppet_apply_through_kloud_enc_applies_the_hosts_roles() {
    let Some(puppet) = puppet() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let markers = work.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    std::fs::create_dir_all(work.path().join("code/environments/production/manifests"))
        .expect("environment");
    std::fs::write(work.path().join("site.pp"), MANIFEST).expect("manifest");
    let f = fixture(
        "provider \"puppet\" {\n  environment = \"production\"\n}\n",
        &markers.display().to_string(),
    );
    // The wrapper the docs describe: run `kloud enc` in the config directory.
    let wrapper = work.path().join("kloud-enc");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncd '{}' && exec '{KLOUD}' enc \"$1\"\n",
            f.path().display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let (ok, out) = puppet_apply(&puppet, work.path(), &wrapper, "web-1.dc1.test");
    assert!(ok, "puppet apply failed:\n{out}");
    let read = |name: &str| std::fs::read_to_string(markers.join(name)).ok();
    assert_eq!(
        read("role-nginx").as_deref(),
        Some("team=web-team tier=front port=80 rack=r1\n")
    );
    assert_eq!(
        read("role-base").as_deref(),
        Some("base on hw-1.dc1.test\n")
    );
    assert_eq!(
        read("role-db"),
        None,
        "a role the host does not have was applied"
    );

    let (ok, out) = puppet_apply(&puppet, work.path(), &wrapper, "nobody.dc1.test");
    assert!(
        !ok,
        "puppet applied a catalog for a host HostDB does not know:\n{out}"
    );
}
