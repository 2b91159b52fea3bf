//! The machine map: switch → rack → machine, each machine with the cpu, memory and disk its
//! containers use against what it has, counting every container placed on it whoever owns
//! it (a config's, a person's: design §8).
//!
//! The topology is the machines' labels `switch` and `rack` (as in `examples/`); a machine
//! without one is drawn under "(no switch)" / "(no rack)". Building the map reads every
//! machine and placed container, so it is kept per HostDB index ([`Cache`]) and rebuilt only
//! after a change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

use super::authz::{allowed, Action};
use super::pages::{blocking, forbidden, store_error};
use super::session::require;
use super::Ui;
use crate::hostdb::model::{Host, Kind};
use crate::hostdb::{Store, StoreError};
use crate::Cpu;

/// The label naming a machine's switch.
pub const SWITCH_LABEL: &str = "switch";
/// The label naming a machine's rack.
pub const RACK_LABEL: &str = "rack";

/// Used against total of one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Use {
    pub used: u64,
    pub total: u64,
    /// The bar's fill in tenths (0–10, capped), for a CSS class: the page has no inline style.
    pub tenths: u64,
}

impl Use {
    pub fn new(used: u64, total: u64) -> Use {
        // No capacity recorded: full as soon as anything is there.
        let tenths = used
            .saturating_mul(10)
            .checked_div(total)
            .unwrap_or(u64::from(used > 0) * 10)
            .min(10);
        Use {
            used,
            total,
            tenths,
        }
    }

    /// Over capacity (a machine shrunk, or records written by hand).
    pub fn over(&self) -> bool {
        self.used > self.total
    }
}

/// Cpu used against total: like [`Use`], in cores that may be fractional (`0.5/2`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuUse {
    pub used: Cpu,
    pub total: Cpu,
    pub tenths: u64,
}

impl CpuUse {
    pub fn new(used: Cpu, total: Cpu) -> CpuUse {
        let u = Use::new(u64::from(used.millis()), u64::from(total.millis()));
        CpuUse {
            used,
            total,
            tenths: u.tenths,
        }
    }

    pub fn over(&self) -> bool {
        self.used > self.total
    }
}

/// One machine as the map draws it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineUse {
    pub name: String,
    pub class: Option<String>,
    pub cpu: CpuUse,
    pub memory_mib: Use,
    pub disk_gib: Use,
    /// Containers placed on it.
    pub hosts: usize,
    /// Any resource used beyond what the machine has.
    pub over: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rack {
    pub name: String,
    pub machines: Vec<MachineUse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Switch {
    pub name: String,
    pub racks: Vec<Rack>,
}

/// The whole map, in name order at every level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MachineMap {
    pub switches: Vec<Switch>,
    pub machines: usize,
    pub hosts: usize,
}

/// The map of `machines` with the use of `containers` (any container naming a machine that
/// is not in `machines` is ignored).
pub fn machine_map(machines: &[Host], containers: &[Host]) -> MachineMap {
    let mut used: BTreeMap<&str, (Cpu, u64, u64, usize)> = BTreeMap::new();
    for c in containers.iter().filter(|c| c.kind == Kind::Container) {
        if let Some(m) = c.machine.as_deref() {
            let e = used.entry(m).or_default();
            e.0 = e.0.saturating_add(c.cpu.unwrap_or_default());
            e.1 += c.memory_mib.unwrap_or(0);
            e.2 += c.disk_gib.unwrap_or(0);
            e.3 += 1;
        }
    }
    let mut tree: BTreeMap<String, BTreeMap<String, Vec<MachineUse>>> = BTreeMap::new();
    let mut hosts = 0;
    for m in machines.iter().filter(|m| m.kind == Kind::Machine) {
        let (cpu, mem, disk, n) = used.get(m.name.as_str()).copied().unwrap_or_default();
        hosts += n;
        let label = |k: &str, none: &str| m.labels.get(k).cloned().unwrap_or(none.to_string());
        tree.entry(label(SWITCH_LABEL, "(no switch)"))
            .or_default()
            .entry(label(RACK_LABEL, "(no rack)"))
            .or_default()
            .push(machine_use(m, cpu, mem, disk, n));
    }
    let mut count = 0;
    let switches = tree
        .into_iter()
        .map(|(name, racks)| Switch {
            name,
            racks: racks
                .into_iter()
                .map(|(name, mut machines)| {
                    machines.sort_by(|a, b| a.name.cmp(&b.name));
                    count += machines.len();
                    Rack { name, machines }
                })
                .collect(),
        })
        .collect();
    MachineMap {
        switches,
        machines: count,
        hosts,
    }
}

/// Machine `m` using `cpu`, `mem` and `disk` for `hosts` containers.
fn machine_use(m: &Host, cpu: Cpu, mem: u64, disk: u64, hosts: usize) -> MachineUse {
    // Against what placement may hand out: the cpu times its overcommit factor.
    let total = m
        .cpu_overcommit
        .unwrap_or_default()
        .apply(m.cpu.unwrap_or_default());
    let cpu = CpuUse::new(cpu, total);
    let memory_mib = Use::new(mem, m.memory_mib.unwrap_or(0));
    let disk_gib = Use::new(disk, m.disk_gib.unwrap_or(0));
    MachineUse {
        name: m.name.clone(),
        class: m.class.clone(),
        over: cpu.over() || memory_mib.over() || disk_gib.over(),
        cpu,
        memory_mib,
        disk_gib,
        hosts,
    }
}

/// The map of the latest index, built once per index.
#[derive(Default)]
pub struct Cache {
    latest: Mutex<Option<(u64, Arc<MachineMap>)>>,
}

impl Cache {
    /// The map at the store's current index.
    pub fn get(&self, store: &dyn Store) -> Result<Arc<MachineMap>, StoreError> {
        let index = store.index()?;
        if let Ok(guard) = self.latest.lock() {
            if let Some((i, map)) = guard.as_ref() {
                if *i == index {
                    return Ok(map.clone());
                }
            }
        }
        // Every machine and every placed container, whoever owns it, at one index.
        let snap = store.snapshot("")?;
        let containers: Vec<Host> = snap.hosts.into_iter().chain(snap.others).collect();
        let map = Arc::new(machine_map(&snap.machines, &containers));
        if let Ok(mut guard) = self.latest.lock() {
            *guard = Some((snap.index, map.clone()));
        }
        Ok(map)
    }
}

/// `GET /ui/map`.
pub async fn page(State(ui): State<Arc<Ui>>, headers: HeaderMap, uri: Uri) -> Response {
    let who = match require(&ui, &headers, &uri).await {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    if !allowed(who.role, Action::ReadFleet) {
        return forbidden(&ui, &who);
    }
    let worker = ui.clone();
    let map = match blocking(move || worker.map_cache.get(worker.store.as_ref())).await {
        Ok(m) => m,
        Err(e) => return store_error(&ui, e, &who),
    };
    ui.page(
        StatusCode::OK,
        "map.html",
        context! { title => "Machines", me => who, nav => "map", map => map.as_ref() },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str, switch: &str, rack: &str) -> Host {
        let mut m = Host::machine(name);
        m.cpu = Some(Cpu::from_cores(2));
        m.memory_mib = Some(2048);
        m.disk_gib = Some(20);
        m.labels.insert("switch".into(), switch.into());
        m.labels.insert("rack".into(), rack.into());
        m
    }

    fn container(name: &str, on: &str, owner: &str) -> Host {
        let mut c = Host::container(name);
        c.machine = Some(on.into());
        c.owner = Some(owner.into());
        c.cpu = Some(Cpu::from_cores(1));
        c.memory_mib = Some(256);
        c.disk_gib = Some(2);
        c
    }

    #[test]
    fn groups_by_switch_then_rack_and_counts_every_owner() {
        let machines = [
            machine("node-b1", "sw-b", "r2"),
            machine("node-a2", "sw-a", "r1"),
            machine("node-a1", "sw-a", "r1"),
            Host::machine("loose"),
        ];
        let containers = [
            container("web-1", "node-a1", "quickstart"),
            container("small-carol-1", "node-a1", "user:carol"),
            container("lb-1", "node-b1", "quickstart"),
            container("ghost", "gone", "x"),
        ];
        let map = machine_map(&machines, &containers);
        // (switch, [(rack, [machine])])
        type Shape = Vec<(String, Vec<(String, Vec<String>)>)>;
        let shape: Shape = map
            .switches
            .iter()
            .map(|s| {
                let racks = s
                    .racks
                    .iter()
                    .map(|r| {
                        (
                            r.name.clone(),
                            r.machines.iter().map(|m| m.name.clone()).collect(),
                        )
                    })
                    .collect();
                (s.name.clone(), racks)
            })
            .collect();
        assert_eq!(
            format!("{shape:?}"),
            r#"[("(no switch)", [("(no rack)", ["loose"])]), ("sw-a", [("r1", ["node-a1", "node-a2"])]), ("sw-b", [("r2", ["node-b1"])])]"#
        );
        let a1 = &map.switches[1].racks[0].machines[0];
        assert_eq!(
            a1.cpu,
            CpuUse {
                used: Cpu::from_cores(2),
                total: Cpu::from_cores(2),
                tenths: 10
            }
        );
        assert_eq!(a1.memory_mib, Use::new(512, 2048));
        assert_eq!((a1.memory_mib.tenths, a1.disk_gib.tenths), (2, 2));
        assert_eq!(a1.disk_gib, Use::new(4, 20));
        assert_eq!(a1.hosts, 2);
        assert_eq!((map.machines, map.hosts), (4, 3));
    }

    #[test]
    fn the_map_page_draws_each_machine_with_meters() {
        let machines = [
            machine("node-a1", "sw-a", "r1"),
            machine("node-b1", "sw-b", "r2"),
        ];
        let mut big = container("db-1", "node-b1", "dc1");
        big.cpu = Some(Cpu::from_cores(3));
        let containers = [container("web-1", "node-a1", "quickstart"), big];
        let map = machine_map(&machines, &containers);
        let html = crate::ui::render::Templates::new()
            .html(
                "map.html",
                minijinja::context! { title => "Machines", map, index => 7 },
            )
            .unwrap();
        let start = html.find("<div id=\"live\">").unwrap();
        let end = html.rfind("</main>").unwrap();
        insta::assert_snapshot!(&html[start..end]);
    }
}
