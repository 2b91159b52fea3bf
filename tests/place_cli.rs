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
