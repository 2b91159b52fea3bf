//! The HostDB records apply writes, built from a plan's states: a machine's, and a container's
//! at each step of its lifecycle. Tests and benchmarks that stand in for an apply use these too,
//! so what they record is what an apply records.

use kloud_provider_api::compute::BootFailure;

use crate::hostdb::{Expect, Host, State, Write};
use crate::plan::{Action, HostState, MachineState, Plan};

/// A machine's record, owned by `owner` (the config that declares it).
pub fn machine(m: &MachineState, owner: &str) -> Host {
    let mut h = Host::machine(&m.name);
    h.cpu = Some(m.cpu);
    h.cpu_overcommit = m.cpu_overcommit;
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

/// The property of a `failed` record that says which first-boot step failed and how.
pub const FIRST_BOOT_PROPERTY: &str = "kloud_first_boot";

/// A container's `failed` record after its first boot failed: the step, its exit status and
/// the tail of its output under [`FIRST_BOOT_PROPERTY`]. The next apply replaces a failed host,
/// and the record it then writes has no such property.
pub fn first_boot_failed(
    h: &HostState,
    owner: &str,
    driver_id: Option<String>,
    f: &BootFailure,
) -> Host {
    let mut host = container(h, owner, State::Failed, driver_id);
    host.properties.insert(
        FIRST_BOOT_PROPERTY.to_string(),
        serde_json::json!({ "step": f.step, "exit": f.exit, "output": f.output }),
    );
    host
}

/// Whether a replace can adopt the existing container instead of destroying it: the record
/// was left `creating` or `failed` by an earlier apply, on the same machine, address, image
/// and size as wanted. Adopting lets first boot finish the steps that did not finish.
pub fn resumable(recorded: Option<&Host>, after: Option<&HostState>) -> bool {
    let (Some(r), Some(a)) = (recorded, after) else {
        return false;
    };
    matches!(r.state, Some(State::Creating | State::Failed))
        && r.machine.is_some()
        && r.machine == a.machine
        && r.ip == a.ip
        && r.image.as_deref() == Some(a.image.as_str())
        && (r.cpu, r.memory_mib, r.disk_gib) == (Some(a.cpu), Some(a.memory_mib), Some(a.disk_gib))
}

/// A host's state as `kloud hosts` shows it: the state word, and for a failed first boot the
/// step and its exit status (`failed (first boot: command 2, exit 3)`).
pub fn state_cell(h: &Host) -> String {
    let word = h.state.map_or("-", |s| s.as_str());
    match h.properties.get(FIRST_BOOT_PROPERTY) {
        Some(fb) if h.state == Some(State::Failed) => {
            let step = fb.get("step").and_then(|s| s.as_str()).unwrap_or("?");
            let exit = fb
                .get("exit")
                .and_then(|e| e.as_i64())
                .map_or_else(|| "no exit status".to_string(), |e| format!("exit {e}"));
            format!("{word} (first boot: {step}, {exit})")
        }
        _ => word.to_string(),
    }
}
