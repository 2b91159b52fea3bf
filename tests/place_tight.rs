//! Completeness on generated fleets with tight rules (issue 14): every host of a 1,000-host
//! fleet whose rules leave little slack finds a machine, and every placement keeps the
//! invariants. The figures over larger fleets and many seeds are `cargo bench --bench
//! place_tight` with the referee (`scripts/bench-place.sh`).

#[path = "place_support.rs"]
mod support;

use kloud::place::{place, place_with, Options};

#[test]
fn tight_fleets_of_a_thousand_hosts_are_placed_completely() {
    let shape = support::TightShape::standard(1000);
    for seed in 0..3 {
        let problem = support::tight_fleet(shape, seed);
        let p = place(&problem);
        support::assert_sound(&problem, &p);
        let unplaced: Vec<_> = p
            .unplaced
            .iter()
            .map(|u| (&u.name, &u.explanation))
            .take(3)
            .collect();
        eprintln!(
            "seed {seed}: {} unplaced, {} machines",
            p.unplaced.len(),
            support::machines_used(&p)
        );
        assert!(
            p.unplaced.is_empty(),
            "seed {seed}: {} unplaced: {unplaced:?}",
            p.unplaced.len()
        );
    }
}

#[test]
fn an_infeasible_fleet_stops_repairing_when_it_stops_gaining_whatever_the_budget() {
    // small fleet 28 asks for 442 cpus of 248: no budget can place it all. Repair must stop when
    // it stops gaining, not spend a budget this size cycling.
    let problem = support::small_fleet(28);
    let options = Options {
        work_budget: u64::MAX / 1024,
        ..Options::default()
    };
    let t = std::time::Instant::now();
    let p = place_with(&problem, &options);
    support::assert_sound(&problem, &p);
    assert!(!p.unplaced.is_empty());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    // The same answer as the default budget: the extra budget went unused.
    assert_eq!(p, place(&problem));
}
