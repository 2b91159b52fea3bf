//! Completeness and quality on fleets with tight rules (issue 14, "Figures 1" and "2"):
//! generated fleets of 1,000 to 20,000 hosts (100,000 with `KLOUD_PLACE_BIG=1`) over 10 seeds,
//! and 30 small fleets. Each placement is checked for invariants outside the timed part. With
//! `KLOUD_PLACE_FLEETS=DIR` every fleet is also written as a JSON problem for the referee
//! (`scripts/place-referee.py`), and one line per fleet goes to `DIR/kloud.tsv`:
//! `name  hosts  machines  unplaced  used  seconds`. `scripts/bench-place.sh` runs both and
//! joins them. `KLOUD_PLACE_BUDGET`, `KLOUD_PLACE_SIZES`, `KLOUD_PLACE_SEEDS`,
//! `KLOUD_PLACE_SEED_LIST` and `KLOUD_PLACE_WHY` are described in `docs/placement.md`.

#[path = "../tests/place_support.rs"]
mod support;

use kloud::place::{place_with, Options, Problem};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

struct Out {
    dir: Option<PathBuf>,
    rows: Vec<String>,
    options: Options,
}

impl Out {
    fn record(&mut self, name: &str, problem: &Problem) -> (usize, usize, f64) {
        if let Some(dir) = &self.dir {
            let text = serde_json::to_string(problem).expect("problem serialises");
            std::fs::write(dir.join(format!("{name}.json")), text).expect("fleet written");
        }
        let t = Instant::now();
        let p = place_with(problem, &self.options);
        let secs = t.elapsed().as_secs_f64();
        support::assert_sound(problem, &p);
        report_unplaced(name, problem, &p);
        let used = support::machines_used(&p);
        self.rows.push(format!(
            "{name}\t{}\t{}\t{}\t{used}\t{secs:.4}",
            problem.requests.len(),
            problem.machines.len(),
            p.unplaced.len()
        ));
        (p.unplaced.len(), used, secs)
    }
}

/// With `KLOUD_PLACE_WHY=1`: per class left with unplaced hosts, how many and the first
/// explanation, to see what binds in an incomplete fleet.
fn report_unplaced(name: &str, problem: &Problem, p: &kloud::place::Placement) {
    if std::env::var_os("KLOUD_PLACE_WHY").is_none() || p.unplaced.is_empty() {
        return;
    }
    fn sum(v: impl Iterator<Item = [u64; 3]>) -> [u64; 3] {
        v.fold([0; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]])
    }
    let need = sum(problem.requests.iter().map(|r| r.size.vector()));
    let have = sum(problem.machines.iter().map(|m| m.capacity.vector()));
    println!("{name}: asked {need:?} of {have:?}");
    let mut by_class: std::collections::BTreeMap<&str, (usize, &str)> = Default::default();
    for u in &p.unplaced {
        by_class
            .entry(u.class.as_str())
            .or_insert((0, &u.explanation))
            .0 += 1;
    }
    for (class, (n, why)) in by_class {
        println!("{name}: {class}: {n} unplaced: {why}");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let dir = std::env::var_os("KLOUD_PLACE_FLEETS").map(PathBuf::from);
    if let Some(d) = &dir {
        std::fs::create_dir_all(d).expect("fleet directory");
    }
    let seeds: u64 = std::env::var("KLOUD_PLACE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut options = Options::default();
    if let Some(work) = std::env::var("KLOUD_PLACE_BUDGET")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        options.work_budget = work;
    }
    // Only these seeds of each size (all of 0..seeds by default), to look at one fleet again.
    let only: Option<Vec<u64>> = std::env::var("KLOUD_PLACE_SEED_LIST")
        .ok()
        .map(|s| s.split(',').filter_map(|s| s.parse().ok()).collect());
    let mut out = Out {
        dir,
        rows: Vec::new(),
        options,
    };
    let mut sizes = vec![1_000, 10_000, 20_000];
    if std::env::var_os("KLOUD_PLACE_BIG").is_some() {
        sizes.push(100_000);
    }
    if let Ok(only) = std::env::var("KLOUD_PLACE_SIZES") {
        sizes = only.split(',').filter_map(|s| s.parse().ok()).collect();
    }
    println!("completeness (tight rules), {seeds} seeds per size");
    println!(
        "{:>8} {:>8} {:>8} {:>14} {:>10}",
        "hosts", "machines", "unplaced", "incomplete", "median s"
    );
    for &hosts in &sizes {
        let shape = support::TightShape::standard(hosts);
        let (mut unplaced, mut incomplete, mut times) = (0, 0, Vec::new());
        for seed in 0..seeds {
            if only.as_ref().is_some_and(|o| !o.contains(&seed)) {
                continue;
            }
            let problem = support::tight_fleet(shape, seed);
            let (u, _, secs) = out.record(&format!("tight-{hosts}-{seed}"), &problem);
            unplaced += u;
            incomplete += usize::from(u > 0);
            times.push(secs);
        }
        println!(
            "{hosts:>8} {:>8} {unplaced:>8} {:>14} {:>10.3}",
            shape.machines,
            format!("{incomplete} of {seeds}"),
            median(times)
        );
    }
    let (mut used, mut unplaced) = (0, 0);
    for seed in 0..30 {
        let problem = support::small_fleet(seed);
        let (u, m, _) = out.record(&format!("small-{seed}"), &problem);
        used += m;
        unplaced += u;
    }
    println!("quality: 30 small fleets, {used} machines used, {unplaced} hosts unplaced");
    if let Some(d) = &out.dir {
        let mut f = std::fs::File::create(d.join("kloud.tsv")).expect("kloud.tsv");
        for r in &out.rows {
            writeln!(f, "{r}").expect("kloud.tsv written");
        }
    }
}
