//! Placement through the command line: sizes of 0 (as the vector bin packing benchmark has)
//! load and place, and `kloud plan --json` reports where every host went.

use std::process::Command;

const CONFIG: &str = r#"
kloud {
  domain = "zero.kloud.internal"
}

network "pool" {
  cidr = "10.0.0.0/24"
}

machine_class "bin" {
  cpu    = 10
  memory = 0
  disk   = 10
}

machines "m" {
  class  = "bin"
  count  = 2
  name   = "m{{ index }}"
  driver = "lxc"
}

host_class "nocpu" {
  count   = 3
  cpu     = 0
  memory  = 0
  disk    = 4
  image   = "none"
  network = "pool"
}

host_class "cpu" {
  count   = 2
  cpu     = 6
  memory  = 0
  disk    = 0
  image   = "none"
  network = "pool"
}
"#;

#[test]
fn zero_sizes_load_and_place_through_plan_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.hcl"), CONFIG).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kloud"))
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("KLOUD_HOSTDB")
        .args(["plan", ".", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["create"], 5, "{plan}");
    assert_eq!(plan["summary"]["unplaced"], 0, "{plan}");
    let machines: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["after"]["machine"].as_str().unwrap())
        .collect();
    assert_eq!(machines.len(), 5);
    // The two 6-cpu hosts cannot share a 10-cpu machine; 3 × 4 GiB of disk fit beside them.
    let cpu_hosts: std::collections::BTreeSet<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["class"] == "cpu")
        .map(|c| c["after"]["machine"].as_str().unwrap())
        .collect();
    assert_eq!(cpu_hosts.len(), 2, "{plan}");
    let zero_cpu = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "nocpu")
        .unwrap();
    assert_eq!(zero_cpu["after"]["cpu"], 0, "cpu stays a number");
}

fn plan(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kloud"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("KLOUD_HOSTDB")
        .args(["plan", "."])
        .args(extra)
        .output()
        .unwrap()
}

/// `kloud plan --exact` and `placement { solver = "exact" }` place with the exact search and
/// say so in the plan (`notes`, and a line for people); without either, the plan has no note.
/// The placement the invariant checker accepts is complete either way here.
#[test]
fn exact_mode_from_the_flag_or_the_config_is_noted_in_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.hcl"), CONFIG).unwrap();
    let json = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = plan(dir.path(), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let heuristic = json(&[]);
    assert!(heuristic.get("notes").is_none(), "{heuristic}");
    let exact = json(&["--exact"]);
    assert_eq!(exact["summary"]["unplaced"], 0);
    assert_eq!(
        exact["notes"],
        serde_json::json!(["exact: a complete placement on the fewest machines"])
    );
    let human = plan(dir.path(), &["--exact"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("Note: exact: a complete placement on the fewest machines"),
        "{text}"
    );

    let with_solver = CONFIG.replacen(
        "  network = \"pool\"\n}",
        "  network = \"pool\"\n  placement {\n    solver = \"exact\"\n  }\n}",
        1,
    );
    std::fs::write(dir.path().join("main.hcl"), &with_solver).unwrap();
    assert_eq!(json(&[])["notes"], exact["notes"]);

    let bad = CONFIG.replacen(
        "  network = \"pool\"\n}",
        "  network = \"pool\"\n  placement {\n    solver = \"exakt\"\n  }\n}",
        1,
    );
    std::fs::write(dir.path().join("main.hcl"), bad).unwrap();
    let out = plan(dir.path(), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown placement solver `exakt`") && err.contains("exact"),
        "{err}"
    );
}

const FRACTIONAL: &str = r#"
kloud {
  domain = "frac.kloud.internal"
}

network "pool" {
  cidr = "10.0.0.0/24"
}

machine_class "small" {
  cpu    = 1.25
  memory = "4GiB"
  disk   = 20
}

machines "m" {
  class  = "small"
  count  = 2
  name   = "m{{ index }}"
  driver = "lxc"
}

host_class "half" {
  count   = HALVES
  cpu     = 0.5
  memory  = 256
  disk    = 1
  image   = "none"
  network = "pool"
}

host_class "quarter" {
  count   = 4
  cpu     = "250m"
  memory  = 256
  disk    = 1
  image   = "none"
  network = "pool"
}
"#;

/// Fractional cpu (`0.5`, `"250m"`) fills two 1.25-cpu machines exactly; one half more does not
/// fit, and the plan says so in cores. The plan JSON carries the fractions as numbers.
#[test]
fn fractional_cpu_places_exactly_and_reads_back_in_cores() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.hcl"),
        FRACTIONAL.replace("HALVES", "3"),
    )
    .unwrap();
    let out = plan(dir.path(), &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan_json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan_json["summary"]["create"], 7, "{plan_json}");
    assert_eq!(plan_json["summary"]["unplaced"], 0, "{plan_json}");
    let changes = plan_json["changes"].as_array().unwrap();
    let cpu_of = |class: &str| {
        changes
            .iter()
            .find(|c| c["class"] == class)
            .map(|c| c["after"]["cpu"].clone())
            .unwrap()
    };
    assert_eq!(cpu_of("half"), serde_json::json!(0.5));
    assert_eq!(cpu_of("quarter"), serde_json::json!(0.25));
    let text = plan(dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("0.5"), "{stdout}");

    std::fs::write(
        dir.path().join("main.hcl"),
        FRACTIONAL.replace("HALVES", "4"),
    )
    .unwrap();
    let out = plan(dir.path(), &["--json"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("have 2.5 cpus free"), "{text}");
}
