//! The HostDB records apply writes, built from a plan's states: a machine's, and a container's
//! at each step of its lifecycle. Tests and benchmarks that stand in for an apply use these too,
//! so what they record is what an apply records.

use crate::hostdb::{Expect, Host, State, Write};
use crate::plan::{Action, HostState, MachineState, Plan};

/// A machine's record, owned by `owner` (the config that declares it).
pub fn machine(m: &MachineState, owner: &str) -> Host {
    let mut h = Host::machine(&m.name);
    h.cpu = Some(m.cpu);
    h.memory_mib = Some(m.memory_mib);
    h.disk_gib = Some(m.disk_gib);
    h.labels = m.labels.clone();
    h.driver = Some(m.driver.clone());
    h.connect = Some(m.connect.clone());
    h.owner = Some(owner.to_string());
    h
}

/// A container's record in `state`, with the driver's id for it once there is one.
pub fn container(h: &HostState, owner: &str, state: State, driver_id: Option<String>) -> Host {
    let mut host = Host::container(&h.name);
    host.class = Some(h.class.clone());
    host.owner = Some(owner.to_string());
    host.machine = h.machine.clone();
    host.ip = h.ip.clone();
    host.image = Some(h.image.clone());
    host.roles = h.puppet_roles.clone();
    host.tags = h.tags.clone();
    host.properties = (*h.properties).clone();
    host.cpu = Some(h.cpu);
    host.memory_mib = Some(h.memory_mib);
    host.disk_gib = Some(h.disk_gib);
    host.labels = (*h.labels).clone();
    host.state = Some(state);
    host.driver_id = driver_id;
    host
}

/// The writes that leave HostDB as a complete, successful apply of `plan` would: machine
/// records synced, every host `running` (or gone). Apply itself writes host by host; this is
/// for tests, benchmarks and tools that stand in for an apply without containers.
pub fn as_applied(plan: &Plan, owner: &str) -> Vec<Write> {
    let mut writes = Vec::new();
    for m in &plan.machines {
        match (m.action, &m.after) {
            (Action::Delete, _) => writes.push(Write::DeleteHost {
                name: m.address.clone(),
                expect: Expect::Any,
            }),
            (Action::Create | Action::Update, Some(a)) => writes.push(Write::PutHost {
                host: machine(a, owner),
                expect: Expect::Any,
            }),
            _ => {}
        }
    }
    for c in &plan.changes {
        match (c.action, &c.after) {
            (Action::Delete, _) => writes.push(Write::DeleteHost {
                name: c.address.clone(),
                expect: Expect::Any,
            }),
            (_, Some(a)) => writes.push(Write::PutHost {
                host: container(a, owner, State::Running, None),
                expect: Expect::Any,
            }),
            _ => {}
        }
    }
    writes
}
