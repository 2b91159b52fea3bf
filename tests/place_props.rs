//! Property tests over random fleets: whatever the machines, labels, drivers, existing hosts
//! (including ones already breaking rules or on unknown machines) and rules, a placement keeps
//! every invariant, accounts for every request, is deterministic, and only gives up on a host
//! when every machine rejects it.

#[path = "place_support.rs"]
mod support;

use kloud::place::{
    place, place_with, Existing, Machine, Options, Problem, Request, Resources, Rules,
    Strategy as Spreading,
};
use kloud::Cpu;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn resources() -> impl Strategy<Value = Resources> {
    (0u32..6, 0u64..24, 0u64..60)
        .prop_map(|(c, m, d)| Resources::new(Cpu::from_cores(c), m * 512, d))
}

fn machine_strategy() -> impl Strategy<Value = (u32, u64, u64, Option<u8>, Option<u8>, bool)> {
    (
        0u32..17,
        0u64..65,
        0u64..300,
        proptest::option::weighted(0.9, 0u8..4),
        proptest::option::weighted(0.9, 0u8..2),
        proptest::bool::weighted(0.85),
    )
}

fn rules_strategy() -> impl Strategy<Value = Rules> {
    (
        proptest::option::of(0u32..4),
        proptest::option::of(0u32..4),
        proptest::option::of(0u32..6),
        any::<bool>(),
    )
        .prop_map(|(machine, rack, switch, spread)| {
            let mut max_per = BTreeMap::new();
            for (k, v) in [("machine", machine), ("rack", rack), ("switch", switch)] {
                if let Some(v) = v {
                    max_per.insert(k.to_string(), v);
                }
            }
            Rules {
                max_per,
                strategy: if spread {
                    Spreading::Spread
                } else {
                    Spreading::Pack
                },
            }
        })
}

prop_compose! {
    fn problem_strategy()(
        machines in proptest::collection::vec(machine_strategy(), 0..14),
        existing in proptest::collection::vec((0usize..16, 0u8..4, resources()), 0..12),
        rules in proptest::collection::vec(rules_strategy(), 3),
        requests in proptest::collection::vec((0u8..4, resources(), proptest::bool::weighted(0.9)), 0..40),
    ) -> Problem {
        let classes = ["a", "b", "c", "d"];
        let machines: Vec<Machine> = machines
            .into_iter()
            .enumerate()
            .map(|(i, (cpu, mem, disk, rack, switch, lxc))| {
                let mut labels = BTreeMap::new();
                if let Some(r) = rack { labels.insert("rack".to_string(), format!("r{r}")); }
                if let Some(s) = switch { labels.insert("switch".to_string(), format!("s{s}")); }
                Machine {
                    name: format!("m{i:02}"),
                    capacity: Resources::new(Cpu::from_cores(cpu), mem * 1024, disk),
                    labels,
                    driver: if lxc { "lxc" } else { "openvz" }.to_string(),
                }
            })
            .collect();
        let existing = existing
            .into_iter()
            .enumerate()
            .map(|(i, (m, c, size))| Existing {
                name: format!("e{i}"),
                class: classes[c as usize].to_string(),
                // Indices past the end name machines nobody knows.
                machine: format!("m{m:02}"),
                size,
            })
            .collect();
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| (classes[i].to_string(), r))
            .collect();
        let requests = requests
            .into_iter()
            .enumerate()
            .map(|(i, (c, size, lxc))| Request {
                name: format!("h{i:02}"),
                class: classes[c as usize].to_string(),
                size,
                driver: if lxc { "lxc" } else { "openvz" }.to_string(),
            })
            .collect();
        Problem { machines, existing, rules, requests }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn placements_keep_every_invariant(problem in problem_strategy()) {
        let p = place(&problem);
        support::assert_sound(&problem, &p);

        let names: BTreeSet<&str> = problem.requests.iter().map(|r| r.name.as_str()).collect();
        let accounted: BTreeSet<&str> = p.assigned.keys().map(String::as_str)
            .chain(p.unplaced.iter().map(|u| u.name.as_str())).collect();
        prop_assert_eq!(names, accounted);

        // Given up only when every machine, in the final state, rejects the host.
        for u in &p.unplaced {
            let rejected: u32 = u.reasons.values().sum();
            prop_assert_eq!(rejected as usize, problem.machines.len(), "{:?}", u);
            prop_assert!(!u.explanation.is_empty());
        }

        // The first pass alone (no improvement budget) must be as complete.
        let first = place_with(&problem, &Options { work_budget: 0, ..Options::default() });
        support::assert_sound(&problem, &first);
        for u in &first.unplaced {
            prop_assert_eq!(u.reasons.values().sum::<u32>() as usize, problem.machines.len(), "{:?}", u);
        }

        prop_assert_eq!(&p, &place(&problem));
        let mut reversed = problem.clone();
        reversed.machines.reverse();
        prop_assert_eq!(&p, &place(&reversed));
        // Requests in another order (names are unique here): the same placement.
        let mut rotated = problem.clone();
        rotated.requests.reverse();
        prop_assert_eq!(&p, &place(&rotated));
    }
}

prop_compose! {
    /// Tiny fleets with tight rules: few enough hosts and machines for the exact search to
    /// settle every case.
    fn tight_problem()(
        machines in proptest::collection::vec((2u32..9, 0u8..3), 2..6),
        classes in proptest::collection::vec(
            (1u32..5, 1u64..4, 1u32..4, proptest::option::of(1u32..4), 1usize..5), 1..4),
    ) -> Problem {
        let machines: Vec<Machine> = machines
            .into_iter()
            .enumerate()
            .map(|(i, (cpu, rack))| Machine {
                name: format!("m{i}"),
                capacity: Resources::new(Cpu::from_cores(cpu), 8192, 100),
                labels: BTreeMap::from([("rack".to_string(), format!("r{rack}"))]),
                driver: "lxc".into(),
            })
            .collect();
        let mut rules = BTreeMap::new();
        let mut requests = Vec::new();
        for (c, (cpu, mem, per_machine, per_rack, count)) in classes.into_iter().enumerate() {
            let mut max_per = BTreeMap::from([("machine".to_string(), per_machine)]);
            if let Some(r) = per_rack {
                max_per.insert("rack".to_string(), r);
            }
            rules.insert(format!("c{c}"), Rules { max_per, strategy: Spreading::Pack });
            for i in 0..count {
                requests.push(Request {
                    name: format!("c{c}-{i}"),
                    class: format!("c{c}"),
                    size: Resources::new(Cpu::from_cores(cpu), mem * 1024, 10),
                    driver: "lxc".into(),
                });
            }
        }
        Problem { machines, existing: vec![], rules, requests }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The exact search is the referee: when it finds a complete placement, the heuristic finds
    /// one too; when it proves there is none, the heuristic leaves someone unplaced.
    #[test]
    fn complete_whenever_the_referee_finds_a_complete_placement(problem in tight_problem()) {
        let exact = Options { exact_nodes: Some(5_000_000), ..Options::default() };
        let (referee, notes) = kloud::place::place_noted(&problem, &exact);
        support::assert_sound(&problem, &referee);
        let p = place(&problem);
        support::assert_sound(&problem, &p);
        let note = notes.first().cloned().unwrap_or_default();
        prop_assert!(!note.contains("budget ran out"), "{}", note);
        if referee.unplaced.is_empty() {
            prop_assert!(p.unplaced.is_empty(), "referee: {:?}\nheuristic: {:?}", referee.assigned, p.unplaced);
            prop_assert!(support::machines_used(&referee) <= support::machines_used(&p));
        } else {
            prop_assert!(note.contains("no complete placement exists"), "{}", note);
            prop_assert!(!p.unplaced.is_empty());
        }
    }
}
