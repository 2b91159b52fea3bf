//! The HostDB records apply writes, built from a plan's states: a machine's, and a container's
//! at each step of its lifecycle. Tests and benchmarks that stand in for an apply use these too,
//! so what they record is what an apply records.

use crate::hostdb::{Host, State};
use crate::plan::{HostState, MachineState};

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
