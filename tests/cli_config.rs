//! `kloud validate` and `kloud fmt` as a user runs them: exit codes, JSON output, rewriting.

use std::path::{Path, PathBuf};
use std::process::Command;

fn kloud() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kloud"));
    c.env("NO_COLOR", "1").env_remove("KLOUD_TSIG_SECRET");
    c
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn validate_accepts_the_quickstart() {
    let out = kloud()
        .arg("validate")
        .arg(repo("examples/quickstart"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 machines") && stdout.contains("5 hosts"),
        "{stdout}"
    );
}

#[test]
fn validate_reports_every_error_with_position_and_exits_1() {
    let out = kloud()
        .arg("validate")
        .arg(repo("tests/configs/invalid/multi_everything_in_one_block"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "kloud::config::negative_number",
        "kloud::config::bad_size",
        "kloud::config::unknown_attribute",
        "main.hcl:32:13",
        "7 errors in",
    ] {
        assert!(stderr.contains(needle), "missing {needle} in:\n{stderr}");
    }
}

#[test]
fn validate_json_lists_diagnostics_for_tools() {
    let out = kloud()
        .args(["validate", "--json"])
        .arg(repo("tests/configs/invalid/undefined_variable"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "kloud::config::undefined_variable");
    assert_eq!(d["start"]["line"], 32);
    assert_eq!(d["start"]["column"], 13);
    assert_eq!(d["help"], "did you mean `web_count`?");
    assert!(d["file"].as_str().unwrap().ends_with("main.hcl"));

    let ok = kloud()
        .args(["validate", "--json"])
        .arg(repo("examples/quickstart"))
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["error_count"], 0);
}

/// Commands other than `validate` report a broken config the same way (every diagnostic,
/// then the count) and exit 1, and say nothing more: the typed "already reported" error that
/// carries the exit code to `main` is never printed itself. A bad `--var` is one report.
#[test]
fn commands_report_a_broken_config_once_and_exit_1() {
    let dir = repo("tests/configs/invalid/multi_everything_in_one_block");
    for args in [
        vec!["plan"],
        vec!["apply", "--auto-approve"],
        vec!["destroy", "--auto-approve"],
        vec!["refresh"],
        vec!["sync", "dns"],
    ] {
        let out = kloud()
            .args(&args)
            .arg(&dir)
            .env("KLOUD_HOSTDB", "sqlite:///nonexistent/never-opened.db")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("kloud::config::bad_size")
                && stderr
                    .trim_end()
                    .ends_with(&format!("7 errors in {}", dir.display())),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("reported above"), "{args:?}: {stderr}");
    }
    let out = kloud()
        .args(["plan", "--var", "novalue"])
        .arg(repo("examples/quickstart"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("kloud::cli::bad_var").count(), 1, "{stderr}");
}

#[test]
fn var_flag_and_environment_set_variables() {
    let out = kloud()
        .args(["validate", "--var", "web_count=7"])
        .arg(repo("examples/quickstart"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("9 hosts"));
    let out = kloud()
        .args(["validate"])
        .arg(repo("examples/quickstart"))
        .env("KLOUD_VAR_web_count", "4")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 hosts"));
    let out = kloud()
        .args(["validate", "--var", "web_count=lots"])
        .arg(repo("examples/quickstart"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kloud::config::bad_var_override"));
}

#[test]
fn fmt_check_lists_unformatted_files_then_fmt_fixes_them() {
    let dir = tempfile::tempdir().unwrap();
    let messy = "kloud {\ndomain=\"a.example\"\n}\n\n\n\nnetwork \"n\" {\n      cidr = \"10.0.0.0/24\" # lab\ngateway=\"10.0.0.1\"\n}\n";
    std::fs::write(dir.path().join("main.hcl"), messy).unwrap();
    let check = kloud()
        .args(["fmt", "--check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stdout).contains("main.hcl"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("main.hcl")).unwrap(),
        messy,
        "--check writes nothing"
    );

    let fmt = kloud().arg("fmt").arg(dir.path()).output().unwrap();
    assert_eq!(fmt.status.code(), Some(0));
    let formatted = std::fs::read_to_string(dir.path().join("main.hcl")).unwrap();
    assert_eq!(
        formatted,
        "kloud {\n  domain = \"a.example\"\n}\n\nnetwork \"n\" {\n  cidr    = \"10.0.0.0/24\" # lab\n  gateway = \"10.0.0.1\"\n}\n"
    );
    let again = kloud()
        .args(["fmt", "--check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "fmt of fmt output changes nothing"
    );
}

#[test]
fn fmt_is_idempotent_on_every_corpus_file() {
    let mut n = 0;
    for case in std::fs::read_dir(repo("tests/configs/invalid")).unwrap() {
        for f in std::fs::read_dir(case.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_none_or(|x| x != "hcl") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            if let Ok(once) = kloud::config::fmt::format(&text) {
                let twice = kloud::config::fmt::format(&once).unwrap();
                assert_eq!(once, twice, "{}", p.display());
                n += 1;
            }
        }
    }
    assert!(n > 50, "only {n} files formatted");
}
