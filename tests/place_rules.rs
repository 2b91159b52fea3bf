//! Placement rules end to end through the public API: capacity, driver, max_per on machine and
//! labels, pack and spread, existing hosts, explanations, determinism. Every placement produced
//! here goes through the invariant checker.

#[path = "place_support.rs"]
mod support;

use kloud::place::{
    check, place, Existing, Machine, Placement, Problem, Request, Resources, Rules, Strategy,
};
use kloud::Cpu;
use std::collections::{BTreeMap, BTreeSet};
use support::assert_sound;

const GIB: u64 = 1024;

fn machine(name: &str, rack: &str, switch: &str, cpu: u32, mem_gib: u64) -> Machine {
    Machine {
        name: name.into(),
        capacity: Resources::new(Cpu::from_cores(cpu), mem_gib * GIB, 1000),
        labels: BTreeMap::from([
            ("rack".into(), rack.into()),
            ("switch".into(), switch.into()),
        ]),
        driver: "lxc".into(),
    }
}

fn request(name: &str, class: &str, cpu: u32, mem_gib: u64) -> Request {
    Request {
        name: name.into(),
        class: class.into(),
        size: Resources::new(Cpu::from_cores(cpu), mem_gib * GIB, 10),
        driver: "lxc".into(),
    }
}

fn rules(max_per: &[(&str, u32)], strategy: Strategy) -> Rules {
    Rules {
        max_per: max_per.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        strategy,
    }
}

/// Four switches, two machines behind each.
fn four_switches() -> Vec<Machine> {
    (0..8)
        .map(|i| {
            machine(
                &format!("m{i}"),
                &format!("r{}", i / 2),
                &format!("sw{}", i / 2),
                32,
                128,
            )
        })
        .collect()
}

fn placed(problem: &Problem) -> Placement {
    let p = place(problem);
    assert_sound(problem, &p);
    p
}

fn switch_of<'a>(problem: &'a Problem, m: &str) -> &'a str {
    &problem
        .machines
        .iter()
        .find(|x| x.name == m)
        .unwrap()
        .labels["switch"]
}

#[test]
fn a_rule_that_cannot_be_met_is_reported_not_violated() {
    let problem = Problem {
        machines: four_switches(),
        existing: vec![],
        rules: BTreeMap::from([("lb".into(), rules(&[("switch", 1)], Strategy::Pack))]),
        requests: (1..=5)
            .map(|i| request(&format!("lb-{i}"), "lb", 2, 2))
            .collect(),
    };
    let p = placed(&problem);
    assert_eq!(p.assigned.len(), 4);
    let switches: BTreeSet<&str> = p
        .assigned
        .values()
        .map(|m| switch_of(&problem, m))
        .collect();
    assert_eq!(switches.len(), 4, "one lb per switch");
    assert_eq!(p.unplaced.len(), 1);
    let u = &p.unplaced[0];
    assert_eq!(u.class, "lb");
    // Every one of the 8 machines sits behind a switch that already has its lb.
    assert_eq!(
        u.reasons,
        BTreeMap::from([("max_per:switch".to_string(), 8)])
    );
    assert!(
        u.explanation
            .starts_with("needs a 5th switch: 4 switches and max_per switch = 1 for 5 lb hosts"),
        "{}",
        u.explanation
    );
}

#[test]
fn memory_shortage_names_the_largest_free() {
    let mut machines = four_switches();
    machines.truncate(2);
    let existing = vec![
        Existing {
            name: "big-1".into(),
            class: "db".into(),
            machine: "m0".into(),
            size: Resources::new(Cpu::from_cores(4), 116 * GIB, 10),
        },
        Existing {
            name: "big-2".into(),
            class: "db".into(),
            machine: "m1".into(),
            size: Resources::new(Cpu::from_cores(4), 120 * GIB, 10),
        },
    ];
    let problem = Problem {
        machines,
        existing,
        rules: BTreeMap::new(),
        requests: vec![request("db-9", "db", 4, 64)],
    };
    let p = placed(&problem);
    assert!(p.assigned.is_empty());
    let u = &p.unplaced[0];
    assert_eq!(
        u.reasons,
        BTreeMap::from([("capacity:memory".to_string(), 2)])
    );
    assert_eq!(
        u.explanation,
        "no machine has 64 GiB of memory free: largest free is 12 GiB of memory; add machines or shrink the class"
    );
}

#[test]
fn first_rejecting_stage_wins_and_driver_mismatch_is_counted() {
    let mut machines = four_switches();
    machines[0].driver = "openvz".into();
    machines[1].capacity.cpu = Cpu::from_cores(1);
    let problem = Problem {
        machines,
        existing: vec![],
        rules: BTreeMap::from([("web".into(), rules(&[("machine", 1)], Strategy::Pack))]),
        // 7 web hosts: 6 usable machines (one is openvz, one too small) at one per machine.
        requests: (0..7)
            .map(|i| request(&format!("web-{i}"), "web", 2, 4))
            .collect(),
    };
    let p = placed(&problem);
    assert_eq!(p.assigned.len(), 6);
    assert!(!p.assigned.values().any(|m| m == "m0" || m == "m1"));
    let u = &p.unplaced[0];
    assert_eq!(
        u.reasons,
        BTreeMap::from([
            ("capacity:cpu".to_string(), 1),
            ("driver".to_string(), 1),
            ("max_per:machine".to_string(), 6),
        ])
    );
    assert!(
        u.explanation.contains("max_per machine = 1"),
        "{}",
        u.explanation
    );
}

#[test]
fn unknown_driver_is_explained() {
    let problem = Problem {
        machines: four_switches(),
        existing: vec![],
        rules: BTreeMap::new(),
        requests: vec![Request {
            driver: "kvm".into(),
            ..request("vm-1", "vm", 1, 1)
        }],
    };
    let p = placed(&problem);
    assert_eq!(
        p.unplaced[0].reasons,
        BTreeMap::from([("driver".to_string(), 8)])
    );
    assert!(p.unplaced[0]
        .explanation
        .contains("no machine runs driver `kvm`"));
}

#[test]
fn existing_hosts_count_against_rules_and_stay() {
    let problem = Problem {
        machines: four_switches(),
        existing: vec![
            Existing {
                name: "lb-1".into(),
                class: "lb".into(),
                machine: "m0".into(),
                size: Resources::new(Cpu::from_cores(2), 2 * GIB, 10),
            },
            // Already breaking the rule (two on sw1): kept, and still counted.
            Existing {
                name: "lb-2".into(),
                class: "lb".into(),
                machine: "m2".into(),
                size: Resources::new(Cpu::from_cores(2), 2 * GIB, 10),
            },
            Existing {
                name: "lb-3".into(),
                class: "lb".into(),
                machine: "m3".into(),
                size: Resources::new(Cpu::from_cores(2), 2 * GIB, 10),
            },
            // On a machine nobody knows: not moved, not an error.
            Existing {
                name: "lb-0".into(),
                class: "lb".into(),
                machine: "gone".into(),
                size: Resources::new(Cpu::from_cores(2), 2 * GIB, 10),
            },
        ],
        rules: BTreeMap::from([("lb".into(), rules(&[("switch", 1)], Strategy::Pack))]),
        requests: vec![
            request("lb-4", "lb", 2, 2),
            request("lb-5", "lb", 2, 2),
            request("lb-6", "lb", 2, 2),
        ],
    };
    let p = placed(&problem);
    let switches: BTreeSet<&str> = p
        .assigned
        .values()
        .map(|m| switch_of(&problem, m))
        .collect();
    assert_eq!(switches, BTreeSet::from(["sw2", "sw3"]));
    assert_eq!(p.assigned.len(), 2);
    assert_eq!(p.unplaced.len(), 1);
    assert!(
        p.unplaced[0].explanation.contains("for 7 lb hosts"),
        "existing hosts count in the sentence: {}",
        p.unplaced[0].explanation
    );
}

#[test]
fn capacity_is_never_overcommitted() {
    let machines = vec![machine("a", "r", "s", 8, 16), machine("b", "r", "s", 8, 16)];
    let problem = Problem {
        machines,
        existing: vec![],
        rules: BTreeMap::new(),
        requests: (0..5)
            .map(|i| request(&format!("h{i}"), "c", 3, 5))
            .collect(),
    };
    let p = placed(&problem);
    // 2 per machine by cpu (3+3 <= 8) and memory (5+5 <= 16): four fit, the fifth does not.
    assert_eq!(p.assigned.len(), 4);
    assert_eq!(
        p.unplaced[0].reasons,
        BTreeMap::from([("capacity:cpu".to_string(), 2)])
    );
}

#[test]
fn pack_fills_machines_and_spread_balances() {
    let machines: Vec<Machine> = (0..4)
        .map(|i| machine(&format!("m{i}"), "r", "s", 32, 128))
        .collect();
    let requests: Vec<Request> = (0..8)
        .map(|i| request(&format!("h{i}"), "c", 4, 8))
        .collect();
    let mut problem = Problem {
        machines,
        existing: vec![],
        rules: BTreeMap::from([("c".into(), rules(&[], Strategy::Pack))]),
        requests,
    };
    let packed = placed(&problem);
    assert_eq!(support::machines_used(&packed), 1);
    problem
        .rules
        .insert("c".into(), rules(&[], Strategy::Spread));
    let spread = placed(&problem);
    let mut per: BTreeMap<&String, usize> = BTreeMap::new();
    for m in spread.assigned.values() {
        *per.entry(m).or_default() += 1;
    }
    assert_eq!(per.len(), 4);
    assert!(per.values().all(|&n| n == 2), "{per:?}");
}

#[test]
fn pack_prefers_machines_in_use_and_best_fit() {
    let machines: Vec<Machine> = (0..3)
        .map(|i| machine(&format!("m{i}"), "r", "s", 16, 64))
        .collect();
    let existing = vec![
        Existing {
            name: "e1".into(),
            class: "x".into(),
            machine: "m1".into(),
            size: Resources::new(Cpu::from_cores(12), 8 * GIB, 10),
        },
        Existing {
            name: "e2".into(),
            class: "x".into(),
            machine: "m2".into(),
            size: Resources::new(Cpu::from_cores(4), 8 * GIB, 10),
        },
    ];
    let problem = Problem {
        machines,
        existing,
        rules: BTreeMap::new(),
        requests: vec![request("h", "c", 4, 8)],
    };
    let p = placed(&problem);
    // m1 has exactly 4 cpus left: the tightest fit; m0 is empty and must stay so.
    assert_eq!(p.assigned["h"], "m1");
}

#[test]
fn large_hosts_are_placed_first() {
    // Listed small first and spread: in list order the small ones would take half of each
    // machine and strand the big one; large first, the big one goes first and all fit.
    let machines = vec![machine("a", "r", "s", 8, 64), machine("b", "r", "s", 8, 64)];
    let problem = Problem {
        machines,
        existing: vec![],
        rules: BTreeMap::from([("c".into(), rules(&[], Strategy::Spread))]),
        requests: vec![
            request("s1", "c", 2, 1),
            request("s2", "c", 2, 1),
            request("s3", "c", 2, 1),
            request("s4", "c", 2, 1),
            request("big", "c", 8, 1),
        ],
    };
    let p = placed(&problem);
    assert!(p.unplaced.is_empty(), "{:?}", p.unplaced);
}

#[test]
fn same_input_same_placement_whatever_the_order_of_machines() {
    let problem = support::datacenter(2_000);
    let a = placed(&problem);
    assert_eq!(a, place(&problem));
    let mut shuffled = problem.clone();
    shuffled.machines.reverse();
    assert_eq!(a, placed(&shuffled));
}

#[test]
fn zero_sizes_and_duplicates_are_accepted() {
    let problem = Problem {
        machines: vec![machine("a", "r", "s", 1, 1)],
        existing: vec![],
        rules: BTreeMap::new(),
        requests: vec![
            Request {
                size: Resources::new(Cpu::from_cores(0), 0, 0),
                ..request("z1", "c", 0, 0)
            },
            Request {
                size: Resources::new(Cpu::from_cores(1), 0, 0),
                ..request("z2", "c", 0, 0)
            },
            request("z2", "c", 1, 1),
        ],
    };
    let p = place(&problem);
    assert_eq!(p.assigned.len(), 2);
    assert_eq!(
        p.unplaced[0].reasons,
        BTreeMap::from([("duplicate".to_string(), 1)])
    );
    // The checker flags a name reported twice: that is exactly what a duplicate request is.
    assert!(check::check(&problem, &p)
        .iter()
        .all(|v| matches!(v, check::Violation::Duplicate { .. })));
}

#[test]
fn missing_label_is_a_reason_of_its_own() {
    let mut machines = four_switches();
    for m in &mut machines {
        m.labels.remove("rack");
    }
    let problem = Problem {
        machines,
        existing: vec![],
        rules: BTreeMap::from([("c".into(), rules(&[("rack", 2)], Strategy::Pack))]),
        requests: vec![request("h", "c", 1, 1)],
    };
    let p = placed(&problem);
    assert_eq!(
        p.unplaced[0].reasons,
        BTreeMap::from([("missing_label:rack".to_string(), 8)])
    );
}

#[test]
fn checker_catches_broken_placements() {
    let problem = Problem {
        machines: four_switches(),
        existing: vec![],
        rules: BTreeMap::from([("lb".into(), rules(&[("switch", 1)], Strategy::Pack))]),
        requests: vec![request("lb-1", "lb", 30, 2), request("lb-2", "lb", 30, 2)],
    };
    let bad = Placement {
        assigned: BTreeMap::from([("lb-1".into(), "m0".into()), ("lb-2".into(), "m0".into())]),
        unplaced: vec![],
    };
    let v = check::check(&problem, &bad);
    assert!(
        v.iter()
            .any(|v| matches!(v, check::Violation::Capacity { .. })),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|v| matches!(v, check::Violation::MaxPer { .. })),
        "{v:?}"
    );
    let missing = Placement::default();
    assert_eq!(check::check(&problem, &missing).len(), 2);
}

#[test]
fn a_full_switch_and_full_machines_elsewhere_are_both_named() {
    let machines = vec![
        machine("a1", "r1", "sw-a", 8, 32),
        machine("a2", "r1", "sw-a", 8, 32),
        machine("a3", "r1", "sw-a", 8, 32),
        machine("b1", "r2", "sw-b", 8, 32),
        machine("b2", "r2", "sw-b", 8, 32),
    ];
    let existing = ["b1", "b2"]
        .iter()
        .map(|m| Existing {
            name: format!("fill-{m}"),
            class: "batch".into(),
            machine: m.to_string(),
            size: Resources::new(Cpu::from_cores(7), 4 * GIB, 10),
        })
        .collect();
    let problem = Problem {
        machines,
        existing,
        rules: BTreeMap::from([("lb".into(), rules(&[("switch", 1)], Strategy::Pack))]),
        requests: vec![request("lb-1", "lb", 2, 2), request("lb-2", "lb", 2, 2)],
    };
    let p = placed(&problem);
    assert_eq!(p.assigned.len(), 1);
    let u = &p.unplaced[0];
    assert_eq!(
        u.reasons,
        BTreeMap::from([
            ("capacity:cpu".to_string(), 2),
            ("max_per:switch".to_string(), 3)
        ])
    );
    assert_eq!(
        u.explanation,
        "1 of 2 switches already holds max_per switch = 1 lb hosts; the machines of the other 1 are \
         rejected for 2 capacity:cpu; add machines there or raise max_per switch"
    );
}

#[test]
fn a_machine_rule_that_binds_is_named_not_capacity() {
    // Three c2 hosts of 2 cpus, at most one per machine, on two machines with 32 cpus free: the
    // sentence names max_per machine and never "no machine has 2 cpus free: largest free is 32".
    // A third machine is full: the rule bound (3 machines for 3 hosts) does not rule it out.
    let problem = Problem {
        machines: four_switches()[..3].to_vec(),
        existing: vec![Existing {
            name: "full".into(),
            class: "batch".into(),
            machine: "m2".into(),
            size: Resources::new(Cpu::from_cores(32), 4 * GIB, 10),
        }],
        rules: BTreeMap::from([("c2".into(), rules(&[("machine", 1)], Strategy::Pack))]),
        requests: (0..3)
            .map(|i| request(&format!("c2-{i}"), "c2", 2, 4))
            .collect(),
    };
    let p = placed(&problem);
    assert_eq!(p.assigned.len(), 2);
    let u = &p.unplaced[0];
    assert_eq!(
        u.reasons,
        BTreeMap::from([
            ("capacity:cpu".to_string(), 1),
            ("max_per:machine".to_string(), 2)
        ])
    );
    assert_eq!(
        u.explanation,
        "needs 1 more machine: max_per machine = 1 lets the 2 machines with room take 2 of the 3 new \
         c2 hosts; add machines or raise max_per machine"
    );
}

#[test]
fn a_capacity_shortfall_says_how_many_machines_are_missing() {
    // Ten hosts of 16 cpus on four machines of 32: eight fit, two need one more machine.
    let problem = Problem {
        machines: four_switches()[..4].to_vec(),
        existing: vec![],
        rules: BTreeMap::new(),
        requests: (0..10)
            .map(|i| request(&format!("big-{i}"), "big", 16, 8))
            .collect(),
    };
    let p = placed(&problem);
    assert_eq!(p.assigned.len(), 8);
    assert_eq!(p.unplaced.len(), 2);
    for u in &p.unplaced {
        assert_eq!(
            u.explanation,
            "needs 1 more machine with ≥ 16 cpus free: the machines can take 8 of the 10 new big \
             hosts; add machines or shrink the class"
        );
    }
}

#[test]
fn a_tight_class_is_placed_around_the_large_ones() {
    // One rack rule leaves no slack: the six c2 hosts (at most one per machine, three per rack)
    // need six distinct machines over both racks, while the large hosts alone would fill three
    // machines of rack r0 first by name. Ordering by size alone strands c2 hosts; placing the
    // tight class first (or repairing) places everything.
    let machines: Vec<Machine> = (0..6)
        .map(|i| machine(&format!("m{i}"), &format!("r{}", i / 3), "sw", 8, 32))
        .collect();
    let mut requests: Vec<Request> = (0..6)
        .map(|i| request(&format!("c2-{i}"), "c2", 2, 2))
        .collect();
    requests.extend((0..6).map(|i| request(&format!("big-{i}"), "big", 6, 8)));
    let problem = Problem {
        machines,
        existing: vec![],
        rules: BTreeMap::from([(
            "c2".into(),
            rules(&[("machine", 1), ("rack", 3)], Strategy::Pack),
        )]),
        requests,
    };
    let p = placed(&problem);
    assert!(p.unplaced.is_empty(), "{:?}", p.unplaced);
    let first_pass = kloud::place::place_with(
        &problem,
        &kloud::place::Options {
            work_budget: 0,
            ..Default::default()
        },
    );
    assert_sound(&problem, &first_pass);
    assert!(first_pass.unplaced.is_empty(), "{:?}", first_pass.unplaced);
}
