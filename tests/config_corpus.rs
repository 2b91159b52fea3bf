//! The corpus of invalid configs (`tests/configs/invalid/*`): each must fail to load with the
//! diagnostics in its snapshot — code, file:line:col, message and help — and never panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kloud::config::{self, Diagnostics, SourceFile, VarOverrides};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/invalid")
}

/// Load a case the way `kloud validate` does, with file names relative to the case directory.
fn load_case(dir: &Path) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("case directory")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    let files: Vec<Arc<SourceFile>> = names
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "hcl"))
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("utf-8 case file");
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .to_string();
            Arc::new(SourceFile::new(name, text))
        })
        .collect();
    let mut overrides = VarOverrides::new();
    if let Ok(vars) = std::fs::read_to_string(dir.join("vars")) {
        for line in vars.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').expect("NAME=VALUE in vars");
            overrides.insert(k.to_string(), v.to_string());
        }
    }
    if files.is_empty() {
        // The directory-level path: exercises the "no *.hcl files" diagnostic.
        return config::load(dir, &overrides).expect_err("an empty directory is invalid");
    }
    let result = config::load_sources(dir, files, &overrides, &BTreeMap::new(), &mut diags);
    assert!(
        result.is_none() || !diags.is_empty(),
        "{} loaded without errors",
        dir.display()
    );
    diags.sort();
    diags
}

fn render(diags: &Diagnostics) -> String {
    let mut out = String::new();
    for d in &diags.0 {
        match d.position() {
            Some((file, line, col)) => out.push_str(&format!("{file}:{line}:{col} {}\n", d.code)),
            None => out.push_str(&format!("(no location) {}\n", d.code)),
        }
        out.push_str(&format!("  message: {}\n", d.message));
        if !d.label.is_empty() {
            out.push_str(&format!("  label: {}\n", d.label));
        }
        if let Some(h) = &d.help {
            out.push_str(&format!("  help: {h}\n"));
        }
    }
    out
}

#[test]
fn every_invalid_config_reports_its_diagnostics() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let mut multi = 0;
    for case in &cases {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let diags = load_case(case);
        assert!(!diags.is_empty(), "{name}: expected diagnostics");
        if name.starts_with("multi_") {
            assert!(
                diags.len() >= 2,
                "{name}: expected several diagnostics, got {}",
                diags.len()
            );
            multi += 1;
        }
        for d in &diags.0 {
            assert!(
                d.code.starts_with("kloud::config::"),
                "{name}: code {}",
                d.code
            );
            assert!(d.help.is_some(), "{name}: {} has no help line", d.code);
            let unlocated_ok = [
                "kloud::config::no_config",
                "kloud::config::missing_block",
                "kloud::config::unknown_variable",
            ];
            assert!(
                d.location.is_some() || unlocated_ok.contains(&d.code),
                "{name}: {} has no location",
                d.code
            );
        }
        insta::with_settings!({ snapshot_path => "snapshots/config", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name.clone(), render(&diags));
        });
    }
    assert!(multi >= 12, "only {multi} cases with several errors");
}

#[test]
fn the_examples_are_valid() {
    std::env::set_var("KLOUD_TSIG_SECRET", "c2VjcmV0");
    for example in ["quickstart", "datacenter"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(example);
        let config = config::load(&dir, &VarOverrides::new())
            .unwrap_or_else(|d| panic!("{example} is invalid:\n{d}"));
        assert!(!config.machines.is_empty() && !config.hosts.is_empty());
    }
}
