//! Benchmark: load and validate a generated config of 5,000 machines and 2,000 host classes.
//!
//! Run with `cargo bench --bench config_load`. Prints the median and spread of several runs
//! (target: median under 200 ms on the 2-core reference machine).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kloud::config::{self, Diagnostics, SourceFile, VarOverrides};

fn generate(machines: usize, classes: usize) -> Vec<Arc<SourceFile>> {
    let mut main = String::from(
        "kloud {\n  domain = \"bench.example\"\n}\n\nmachine_class \"app\" {\n  cpu    = 32\n  memory = \"128GiB\"\n  disk   = \"2TiB\"\n}\n\nnetwork \"prod\" {\n  cidr    = \"10.0.0.0/8\"\n  gateway = \"10.0.0.1\"\n}\n\ntag \"web\" {\n  properties = { team = \"web\" }\n}\n\nvariable \"scale\" {\n  default = 5\n}\n",
    );
    // Groups of 40 machines, each group one rack; 5 racks per switch.
    let per_group = 40;
    for g in 0..machines / per_group {
        main.push_str(&format!(
            "\nmachines \"g{g}\" {{\n  class  = \"app\"\n  count  = {per_group}\n  name   = \"hw-g{g}-{{{{ index }}}}\"\n  labels = {{ rack = \"r{g}\", switch = \"sw{}\" }}\n}}\n",
            g / 5
        ));
    }
    let mut hosts = String::new();
    for c in 0..classes {
        hosts.push_str(&format!(
            "\nhost_class \"c{c}\" {{\n  count        = var.scale\n  cpu          = 2\n  memory       = \"4GiB\"\n  disk         = \"20GiB\"\n  image        = \"debian-12\"\n  network      = \"prod\"\n  tags         = [\"web\"]\n  properties   = {{ owner = \"team-{c}\" }}\n  puppet_roles = [\"role::c{c}\"]\n\n  placement {{\n    max_per = {{ machine = 2, switch = 50 }}\n  }}\n}}\n"
        ));
    }
    vec![
        Arc::new(SourceFile::new("main.hcl", main)),
        Arc::new(SourceFile::new("hosts.hcl", hosts)),
    ]
}

fn main() {
    let files = generate(5_000, 2_000);
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();
    let mut times = Vec::new();
    let mut hosts = 0;
    for _ in 0..9 {
        let files = files.clone();
        let start = Instant::now();
        let mut diags = Diagnostics::default();
        let c = config::load_sources(
            Path::new("."),
            files,
            &VarOverrides::new(),
            &BTreeMap::new(),
            &mut diags,
        );
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(diags.is_empty(), "{diags}");
        let c = c.expect("valid");
        assert_eq!(c.machines.len(), 5_000);
        hosts = c.hosts.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "config_load: 5,000 machines, 2,000 host classes ({hosts} hosts, {} KiB of HCL): median {:.1} ms, min {:.1} ms, max {:.1} ms over {} runs",
        bytes / 1024,
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    );
}
