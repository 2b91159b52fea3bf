//! Placement speed on a generated data centre (20 classes with `max_per` on machine, rack and
//! switch; 4 hosts per machine of capacity, 40 machines per rack, 5 racks per switch), from 1,000
//! to 100,000 new hosts, and the stability case: one host added to the placed 20,000.
//! Figures are medians of several runs; invariants are checked outside the timed part.

#[path = "../tests/place_support.rs"]
mod support;

use kloud::place::{place, Placement, Problem, Request, Resources};
use kloud::Cpu;
use std::time::Instant;

/// CPU time this thread has run, in seconds (Linux schedstat). On a shared computer wall time
/// includes waiting for a core; schedstat is only updated at scheduler events, so CPU time is
/// reported as the mean over all runs rather than per run.
fn cpu_time() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// Median wall seconds and mean CPU seconds of `runs` placements, and the last placement.
fn median_time(runs: usize, problem: &Problem) -> (f64, f64, Placement) {
    let mut wall = Vec::new();
    let mut last = None;
    let cpu_start = cpu_time();
    for _ in 0..runs {
        let t = Instant::now();
        let p = place(problem);
        wall.push(t.elapsed().as_secs_f64());
        last = Some(p);
    }
    let cpu = (cpu_time() - cpu_start) / runs as f64;
    wall.sort_by(f64::total_cmp);
    (wall[runs / 2], cpu, last.unwrap_or_default())
}

fn main() {
    println!(
        "{:>8} {:>8} {:>6} {:>6} {:>9} {:>10} {:>10}",
        "hosts", "machines", "racks", "used", "unplaced", "wall s", "cpu s"
    );
    let only_stability = std::env::var_os("KLOUD_BENCH_ONLY_STABILITY").is_some();
    let sizes: &[usize] = if only_stability {
        &[20_000]
    } else {
        &[1_000, 5_000, 20_000, 50_000, 100_000]
    };
    let mut settled = None;
    for &hosts in sizes {
        let problem = support::datacenter(hosts);
        let runs = if only_stability {
            1
        } else if hosts <= 20_000 {
            5
        } else {
            3
        };
        let (wall, cpu, placement) = median_time(runs, &problem);
        support::assert_sound(&problem, &placement);
        println!(
            "{hosts:>8} {:>8} {:>6} {:>6} {:>9} {wall:>10.3} {cpu:>10.3}",
            problem.machines.len(),
            problem.machines.len() / 40,
            support::machines_used(&placement),
            placement.unplaced.len()
        );
        if hosts == 20_000 {
            settled = Some(support::settle(&problem, &placement));
        }
    }

    // Stability: the 20,000 are now existing hosts; one more host of a packed class arrives.
    let Some(mut fleet) = settled else { return };
    fleet.requests.push(Request {
        name: "class05-new".into(),
        class: "class05".into(),
        size: Resources::new(Cpu::from_cores(2), 4096, 40),
        driver: "lxc".into(),
    });
    let runs = std::env::var("KLOUD_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(51);
    let (wall, cpu, placement) = median_time(runs, &fleet);
    support::assert_sound(&fleet, &placement);
    assert_eq!(placement.assigned.len(), 1, "only the new host is assigned");
    assert!(placement.unplaced.is_empty());
    println!(
        "stability: 1 host added to {} existing: placed on {}, nothing moved; {runs} runs: median {:.2} ms wall, mean {:.2} ms cpu",
        fleet.existing.len(),
        placement.assigned["class05-new"],
        wall * 1e3,
        cpu * 1e3
    );
}
