//! The ENC against the real Puppet: `puppet apply --node_terminus=exec` with a wrapper that
//! prints [`enc_yaml`] applies exactly the host's roles (each writes a marker file, using ENC
//! parameters), and refuses an unknown host; Ruby's YAML parser (the one Puppet uses) reads
//! hostile property values back unchanged.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kloud_provider_api::integration::HostRecord;
use kloud_provider_puppet::{enc_yaml, parameters};
use serde_json::{json, Value};

fn tool(var: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    if p.exists() {
        return Some(p);
    }
    if kloud_provider_api::under_ci() {
        panic!("{default} missing under CI=true: source scripts/setup/puppet.sh");
    }
    eprintln!("SKIPPED: {default} not installed (source scripts/setup/puppet.sh)");
    None
}

fn host(name: &str, roles: &[&str], props: Value) -> HostRecord {
    HostRecord {
        fqdn: format!("{name}.dc1.test"),
        ip: "10.40.0.7".into(),
        class: "web".into(),
        tags: vec!["web".into()],
        labels: BTreeMap::from([("rack".to_string(), "r1".to_string())]),
        machine: "hw-1.dc1.test".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        properties: props.as_object().cloned().unwrap_or_default(),
    }
}

const MANIFEST: &str = r#"
class role::nginx {
  file { "${marker_dir}/role-nginx": content => "team=${team} class=${kloud_class} rack=${kloud_labels['rack']}\n" }
}
class role::base {
  file { "${marker_dir}/role-base": content => "workers=${limits['workers']}\n" }
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
fn puppet_applies_exactly_the_roles_from_the_enc() {
    let Some(puppet) = tool("KLOUD_TEST_PUPPET", "/usr/bin/puppet") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let markers = dir.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    std::fs::create_dir_all(dir.path().join("code/environments/production/manifests"))
        .expect("environment");
    std::fs::write(dir.path().join("site.pp"), MANIFEST).expect("manifest");

    // What `kloud enc HOST` prints, served by a wrapper that fails for an unknown host.
    let enc_dir = dir.path().join("enc");
    std::fs::create_dir_all(&enc_dir).expect("enc dir");
    let web = host(
        "web-1",
        &["role::nginx", "role::base"],
        json!({"marker_dir": markers.display().to_string(), "team": "check\"out: yes",
               "limits": {"workers": 8}}),
    );
    std::fs::write(
        enc_dir.join(format!("{}.yaml", web.fqdn)),
        enc_yaml(&web, "production"),
    )
    .expect("enc yaml");
    let wrapper = dir.path().join("enc.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nf=\"{}/$1.yaml\"\n[ -f \"$f\" ] || {{ echo \"unknown host $1\" >&2; exit 1; }}\ncat \"$f\"\n",
            enc_dir.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let (ok, out) = puppet_apply(&puppet, dir.path(), &wrapper, &web.fqdn);
    assert!(ok, "puppet apply failed:\n{out}");
    let read = |f: &str| std::fs::read_to_string(markers.join(f)).ok();
    assert_eq!(
        read("role-nginx").as_deref(),
        Some("team=check\"out: yes class=web rack=r1\n")
    );
    assert_eq!(read("role-base").as_deref(), Some("workers=8\n"));
    assert_eq!(
        read("role-db"),
        None,
        "a role the host does not have was applied"
    );

    let (ok, out) = puppet_apply(&puppet, dir.path(), &wrapper, "nobody.dc1.test");
    assert!(!ok, "puppet applied a catalog for an unknown host:\n{out}");
}

#[test]
fn ruby_yaml_reads_hostile_values_back_unchanged() {
    let Some(ruby) = tool("KLOUD_TEST_RUBY", "/usr/bin/ruby") else {
        return;
    };
    let h = host(
        "odd-1",
        &["role::base"],
        json!({
            "quote": "she said \"hi\"", "colon": "a: b", "hash": "# not a comment",
            "newline": "line1\nline2\r\n", "tab": "\tx", "unicode": "ünïcødé ✓ \u{2028} end",
            "yes": "yes", "no": "no", "on": "on", "null_str": "null", "tilde": "~",
            "numstr": "0123", "float": 0.1, "big": 1e21, "neg": -7, "bool": false, "nothing": null,
            "anchor": "&a *a !tag", "dash": "- item", "braces": "{[}]", "empty_s": "",
            "nested": {"list": [1, "two", {"three": [true, null]}], "empty": {}},
            "control": "\u{1}\u{7f}"
        }),
    );
    let yaml = enc_yaml(&h, "production");
    let mut child = Command::new(ruby)
        .args([
            "-ryaml",
            "-rjson",
            "-e",
            "puts JSON.generate(YAML.safe_load(STDIN.read))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ruby");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("ruby");
    assert!(
        out.status.success(),
        "ruby could not parse:\n{yaml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("json from ruby");
    assert_eq!(parsed["environment"], "production");
    assert_eq!(parsed["classes"], json!(["role::base"]));
    let mut expected = Value::Object(parameters(&h));
    // Ruby prints 1e21 as 1.0e+21; compare numbers by value.
    let big = parsed["parameters"]["big"].as_f64();
    assert_eq!(big, Some(1e21));
    expected["big"] = parsed["parameters"]["big"].clone();
    assert_eq!(parsed["parameters"], expected, "{yaml}");
}
