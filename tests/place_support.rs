//! Shared helpers for the placement tests and benchmarks: the public vector bin packing instances
//! as kloud problems, a plain first-fit-decreasing to compare with, a generated data centre, and
//! the invariant assertion every test runs on every placement it produces.
//! Included by `benches/place_*.rs` with `#[path]`; as a test target of its own it has no tests.
#![allow(dead_code)]

use kloud::place::{check, Machine, Placement, Problem, Request, Resources, Rules, Strategy};
use kloud::Cpu;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Panics with every violation if `placement` breaks an invariant of `problem`.
pub fn assert_sound(problem: &Problem, placement: &Placement) {
    let v = check::check(problem, placement);
    assert!(v.is_empty(), "invariants broken: {v:#?}");
}

/// The benchmark directory: `KLOUD_VBP_DIR` when set (an optional override), else the copy kept
/// in the repository under `benches/data/vbp`.
pub fn vbp_dir() -> Option<PathBuf> {
    if let Some(env) = std::env::var_os("KLOUD_VBP_DIR") {
        let env = PathBuf::from(env);
        return env.join("known.tsv").is_file().then_some(env);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/vbp");
    here.join("known.tsv").is_file().then_some(here)
}

/// Per instance: (LB, best_overall, best_IC, best_BC).
pub fn known(dir: &Path) -> BTreeMap<String, (usize, usize, usize, usize)> {
    let text = std::fs::read_to_string(dir.join("known.tsv")).expect("known.tsv readable");
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .expect("known.tsv column")
    };
    let (lb, best, ic, bc) = (
        col("LB"),
        col("best_overall"),
        col("best_IC"),
        col("best_BC"),
    );
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < header.len() {
            continue;
        }
        let n = |i: usize| f[i].parse::<usize>().expect("number in known.tsv");
        out.insert(f[0].to_string(), (n(lb), n(best), n(ic), n(bc)));
    }
    out
}

/// One `.vbp` instance as a problem: as many identical machines as items, no rules.
pub fn load_vbp(path: &Path) -> Problem {
    let text = std::fs::read_to_string(path).expect("instance readable");
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(|t| t.parse().expect("number in .vbp"))
        .collect();
    assert_eq!(nums[0], 3, "3-dimensional instances only");
    let cap = Resources::new(Cpu::from_cores(nums[1] as u32), nums[2], nums[3]);
    let types = nums[4] as usize;
    let mut requests = Vec::new();
    for t in 0..types {
        let r = &nums[5 + t * 4..9 + t * 4];
        for _ in 0..r[3] {
            requests.push(Request {
                name: format!("h{:04}", requests.len()),
                class: "item".into(),
                size: Resources::new(Cpu::from_cores(r[0] as u32), r[1], r[2]),
                driver: "vbp".into(),
            });
        }
    }
    let machines = (0..requests.len())
        .map(|i| Machine {
            name: format!("m{i:04}"),
            capacity: cap,
            labels: BTreeMap::new(),
            driver: "vbp".into(),
        })
        .collect();
    Problem {
        machines,
        existing: vec![],
        rules: BTreeMap::new(),
        requests,
    }
}

/// Machines used by a placement.
pub fn machines_used(p: &Placement) -> usize {
    let mut used: Vec<&String> = p.assigned.values().collect();
    used.sort();
    used.dedup();
    used.len()
}

/// Plain first-fit decreasing (by the sum of the dimensions relative to capacity), for comparison:
/// the number of bins it uses on an instance of identical machines.
pub fn ffd(problem: &Problem) -> usize {
    let cap = problem.machines[0].capacity;
    let cap = [u64::from(cap.cpu.millis()), cap.memory_mib, cap.disk_gib];
    let mut items: Vec<[u64; 3]> = problem
        .requests
        .iter()
        .map(|r| {
            [
                u64::from(r.size.cpu.millis()),
                r.size.memory_mib,
                r.size.disk_gib,
            ]
        })
        .collect();
    let key = |s: &[u64; 3]| (0..3).map(|d| s[d] as f64 / cap[d] as f64).sum::<f64>();
    items.sort_by(|a, b| key(b).total_cmp(&key(a)));
    let mut bins: Vec<[u64; 3]> = Vec::new();
    for it in items {
        match bins
            .iter_mut()
            .find(|b| (0..3).all(|d| b[d] + it[d] <= cap[d]))
        {
            Some(b) => (0..3).for_each(|d| b[d] += it[d]),
            None => bins.push(it),
        }
    }
    bins.len()
}

/// A data centre for `hosts` new hosts in 20 classes: `hosts / 4` machines of 32 cpus, 128 GiB
/// and 2 TiB, 40 per rack, 5 racks per switch, every class with `max_per` on machine, rack and
/// switch, every fourth class spread, the rest packed.
pub fn datacenter(hosts: usize) -> Problem {
    let machines_n = (hosts / 4).div_ceil(40).max(1) * 40;
    let racks = machines_n.div_ceil(40);
    let switches = racks.div_ceil(5);
    let machines = (0..machines_n)
        .map(|i| {
            let rack = i / 40;
            Machine {
                name: format!("hw-r{rack:04}-{:02}", i % 40),
                capacity: Resources::new(Cpu::from_cores(32), 128 * 1024, 2048),
                labels: BTreeMap::from([
                    ("rack".to_string(), format!("r{rack:04}")),
                    ("switch".to_string(), format!("sw{:03}", rack / 5)),
                ]),
                driver: "lxc".into(),
            }
        })
        .collect();
    let classes = 20;
    let per_class = hosts / classes;
    let mut rules = BTreeMap::new();
    let mut requests = Vec::with_capacity(hosts);
    for c in 0..classes {
        let class = format!("class{c:02}");
        rules.insert(
            class.clone(),
            Rules {
                max_per: BTreeMap::from([
                    ("machine".to_string(), 1 + (c % 3) as u32),
                    (
                        "rack".to_string(),
                        (per_class.div_ceil(racks) * 3 / 2 + 2 + c % 4) as u32,
                    ),
                    (
                        "switch".to_string(),
                        (per_class.div_ceil(switches) + 5 * (1 + c % 3)) as u32,
                    ),
                ]),
                strategy: if c % 4 == 3 {
                    Strategy::Spread
                } else {
                    Strategy::Pack
                },
            },
        );
        let size = Resources::new(
            Cpu::from_cores([1, 2, 4, 8][c % 4]),
            [2, 4, 8, 16, 24][c % 5] * 1024,
            [20, 40, 80, 160][(c / 4) % 4],
        );
        for i in 0..per_class {
            requests.push(Request {
                name: format!("{class}-{i:06}"),
                class: class.clone(),
                size,
                driver: "lxc".into(),
            });
        }
    }
    Problem {
        machines,
        existing: vec![],
        rules,
        requests,
    }
}

/// The problem after `placement`: every assigned host becomes an existing one.
pub fn settle(problem: &Problem, placement: &Placement) -> Problem {
    let by_name: HashMap<&str, &Request> = problem
        .requests
        .iter()
        .map(|r| (r.name.as_str(), r))
        .collect();
    let mut next = problem.clone();
    next.requests.clear();
    for (host, machine) in &placement.assigned {
        let r = by_name[host.as_str()];
        next.existing.push(kloud::place::Existing {
            name: host.clone(),
            class: r.class.clone(),
            machine: machine.clone(),
            size: r.size,
        });
    }
    next
}

/// A small deterministic generator (xorshift64*), so that fleets are the same on every computer.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The shape of a fleet with tight rules (issue 14, "Figures 1").
#[derive(Clone, Copy, Debug)]
pub struct TightShape {
    pub hosts: usize,
    pub machines: usize,
    pub racks: usize,
    pub switches: usize,
    pub classes: usize,
}

impl TightShape {
    /// The fleets of the completeness figure: 1k / 240 (12 racks, 2 switches), 10k / 2,500
    /// (125 racks, 25 switches), 20k / 5,000 (125, 25), 100k / 25,000 (625, 125).
    pub fn standard(hosts: usize) -> TightShape {
        let (machines, racks, switches) = match hosts {
            0..=1_999 => (240 * hosts / 1000, 12, 2),
            2_000..=14_999 => (hosts / 4, 125, 25),
            15_000..=49_999 => (hosts / 4, 125, 25),
            _ => (hosts / 4, 625, 125),
        };
        TightShape {
            hosts,
            machines: machines.max(racks),
            racks,
            switches,
            classes: (hosts / 100).clamp(4, 40),
        }
    }
}

/// A fleet with tight rules: 80% machines of 32 cpus / 128 GiB / 2 TiB and 20% of 24 cpus /
/// 64 GiB / 4 TiB, in `racks` racks spread evenly over `switches` switches; `classes` classes
/// of random size (1 cpu / 1 GiB / 10 GiB up to 16 cpus / 64 GiB / 400 GiB), each with a random
/// `max_per machine` of 1 to 4, `max_per rack` = ⌈count / racks⌉ + 1 and `max_per switch` =
/// ⌈count / switches⌉ + 2.
pub fn tight_fleet(shape: TightShape, seed: u64) -> Problem {
    let mut rng = Rng::new(seed);
    let per_rack = shape.machines.div_ceil(shape.racks);
    let racks_per_switch = shape.racks.div_ceil(shape.switches);
    let machines = (0..shape.machines)
        .map(|i| {
            let rack = i / per_rack;
            let capacity = if rng.below(5) == 0 {
                Resources::new(Cpu::from_cores(24), 64 * 1024, 4096)
            } else {
                Resources::new(Cpu::from_cores(32), 128 * 1024, 2048)
            };
            Machine {
                name: format!("hw-r{rack:03}-{:03}", i % per_rack),
                capacity,
                labels: BTreeMap::from([
                    ("rack".to_string(), format!("r{rack:03}")),
                    (
                        "switch".to_string(),
                        format!("sw{:03}", rack / racks_per_switch),
                    ),
                ]),
                driver: "lxc".into(),
            }
        })
        .collect();
    // Class sizes: random weights, scaled to the host count.
    let weights: Vec<u64> = (0..shape.classes).map(|_| 1 + rng.below(10)).collect();
    let total: u64 = weights.iter().sum();
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|w| (*w as usize * shape.hosts) / total as usize)
        .collect();
    let short = shape.hosts - counts.iter().sum::<usize>();
    counts[0] += short;
    let mut rules = BTreeMap::new();
    let mut requests = Vec::with_capacity(shape.hosts);
    for (c, &count) in counts.iter().enumerate() {
        let class = format!("c{c}");
        let cpu = rng.pick(&[1u32, 1, 2, 2, 4, 4, 8, 16]);
        let memory = (u64::from(cpu) * rng.pick(&[1u64, 2, 4])).clamp(1, 64) * 1024;
        let disk = rng.pick(&[10u64, 20, 40, 80, 160, 400]);
        rules.insert(
            class.clone(),
            Rules {
                max_per: BTreeMap::from([
                    ("machine".to_string(), 1 + rng.below(4) as u32),
                    ("rack".to_string(), (count.div_ceil(shape.racks) + 1) as u32),
                    (
                        "switch".to_string(),
                        (count.div_ceil(shape.switches) + 2) as u32,
                    ),
                ]),
                strategy: Strategy::Pack,
            },
        );
        for i in 0..count {
            requests.push(Request {
                name: format!("{class}-{i:05}"),
                class: class.clone(),
                size: Resources::new(Cpu::from_cores(cpu), memory, disk),
                driver: "lxc".into(),
            });
        }
    }
    Problem {
        machines,
        existing: vec![],
        rules,
        requests,
    }
}

/// A small fleet for the quality figure: 3 to 6 classes of 3 to 10 hosts, on 8 to 16 machines in
/// 4 racks behind 2 switches, with the rules of [`tight_fleet`]; the referee says whether it is
/// feasible and how few machines suffice.
pub fn small_fleet(seed: u64) -> Problem {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let classes = 3 + rng.below(4) as usize;
    let machines = 8 + rng.below(9) as usize;
    tight_fleet(
        TightShape {
            hosts: classes * (3 + rng.below(8) as usize),
            machines,
            racks: 4,
            switches: 2,
            classes,
        },
        seed,
    )
}
