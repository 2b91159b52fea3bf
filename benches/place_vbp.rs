//! Packing quality on the public vector bin packing benchmark (540 instances, 3 dimensions):
//! machines used by `place` against the lower bound, the best any published algorithm found, and
//! plain first-fit decreasing run here. `KLOUD_VBP_FILTER=class4_` limits the instances.

#[path = "../tests/place_support.rs"]
mod support;

use kloud::place::{place_with, Options};
use std::collections::BTreeMap;
use std::time::Instant;

/// CPU time this thread has run, in seconds (Linux schedstat): on a shared computer wall time
/// includes waiting for a core.
fn cpu_time() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

fn main() {
    let Some(dir) = support::vbp_dir() else {
        eprintln!("vbp benchmark not found in benches/data/vbp or KLOUD_VBP_DIR");
        std::process::exit(1);
    };
    let filter = std::env::var("KLOUD_VBP_FILTER").unwrap_or_default();
    let mut options = Options::default();
    if let Some(b) = std::env::var("KLOUD_PLACE_BUDGET")
        .ok()
        .and_then(|b| b.parse().ok())
    {
        options.work_budget = b;
    }
    let known = support::known(&dir);
    let (mut ours, mut ffd, mut lb, mut best, mut n) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut per_class: BTreeMap<String, [usize; 4]> = BTreeMap::new();
    let mut worst = (0.0f64, String::new());
    let mut slowest = (0.0f64, String::new());
    let start = Instant::now();
    let cpu_start = cpu_time();
    for (name, &(i_lb, i_best, _, _)) in &known {
        if !name.contains(&filter) {
            continue;
        }
        let problem = support::load_vbp(&dir.join("instances").join(format!("{name}.vbp")));
        let t = Instant::now();
        let placement = place_with(&problem, &options);
        let secs = t.elapsed().as_secs_f64();
        if secs > slowest.0 {
            slowest = (secs, name.clone());
        }
        assert!(placement.unplaced.is_empty(), "{name}: unplaced hosts");
        let used = support::machines_used(&placement);
        let f = support::ffd(&problem);
        ours += used;
        ffd += f;
        lb += i_lb;
        best += i_best;
        n += 1;
        let ratio = used as f64 / i_lb as f64;
        if ratio > worst.0 {
            worst = (ratio, name.clone());
        }
        let class = name.split('_').next().unwrap_or_default().to_string();
        let e = per_class.entry(class).or_default();
        e[0] += used;
        e[1] += f;
        e[2] += i_best;
        e[3] += i_lb;
    }
    let total = start.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu_start;
    println!("class      ours     ffd    best      lb");
    for (c, e) in &per_class {
        println!("{c:<8} {:>6} {:>7} {:>7} {:>7}", e[0], e[1], e[2], e[3]);
    }
    println!("instances: {n}");
    println!(
        "machines used (place): {ours}  ratio to LB {:.4}",
        ours as f64 / lb as f64
    );
    println!(
        "machines used (plain FFD): {ffd}  ratio to LB {:.4}",
        ffd as f64 / lb as f64
    );
    println!(
        "best of any published algorithm: {best}  ratio to LB {:.4}",
        best as f64 / lb as f64
    );
    println!("lower bound: {lb}");
    println!("worst instance: {} at {:.4} x LB", worst.1, worst.0);
    println!(
        "time: {total:.2} s wall, {cpu:.2} s cpu in total; slowest instance {} {:.3} s wall",
        slowest.1, slowest.0
    );
}
