//! Refresh: compare what every machine really runs with HostDB, one `list` call per machine.
//!
//! A recorded container that vanished is marked `failed`, so the next plan re-creates it; one
//! left `creating` by a crashed run is adopted when it runs, marked `failed` when it does not;
//! a container no record explains is reported as an orphan and never deleted.

use std::collections::{BTreeMap, BTreeSet};

use kloud_provider_api::compute::{ContainerState, MachineRef};

use super::{ApplyError, DriverSet};
use crate::config::Config;
use crate::hostdb::{Actor, Expect, State, Store};

/// What refresh found and did, one line per finding.
#[derive(Debug, Default)]
pub struct Drift {
    pub vanished: Vec<String>,
    pub adopted: Vec<String>,
    pub orphans: Vec<(String, String)>,
    pub unreachable: Vec<(String, String)>,
    pub checked: usize,
}

impl Drift {
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in &self.vanished {
            out.push(format!("vanished: {h} is recorded but not running; marked failed, the next apply re-creates it"));
        }
        for h in &self.adopted {
            out.push(format!(
                "adopted: {h} was left `creating` and is running; marked running"
            ));
        }
        for (m, c) in &self.orphans {
            out.push(format!(
                "orphan: {c} runs on {m} but no host record explains it (left alone)"
            ));
        }
        for (m, e) in &self.unreachable {
            out.push(format!("unreachable: {m}: {e}"));
        }
        out.push(format!(
            "refresh: {} machines checked, {} vanished, {} adopted, {} orphans, {} unreachable",
            self.checked,
            self.vanished.len(),
            self.adopted.len(),
            self.orphans.len(),
            self.unreachable.len()
        ));
        out
    }
}

pub fn refresh(
    config: &Config,
    store: &dyn Store,
    drivers: &dyn DriverSet,
) -> Result<Drift, ApplyError> {
    let snapshot = store.snapshot(&config.settings.owner)?;
    let mut by_machine: BTreeMap<&str, Vec<&crate::hostdb::Host>> = BTreeMap::new();
    for h in &snapshot.hosts {
        if let Some(m) = h.machine.as_deref() {
            by_machine.entry(m).or_default().push(h);
        }
    }
    let actor = Actor {
        name: "kloud refresh".into(),
        message: Some("refresh".into()),
    };
    let mut drift = Drift::default();
    for m in &config.machines {
        let Ok(connect) = m.connect.parse() else {
            continue;
        };
        let mref = MachineRef::new(&m.name, connect);
        let driver = match drivers.get(&m.driver) {
            Ok(d) => d,
            Err(e) => {
                drift.unreachable.push((m.name.clone(), e));
                continue;
            }
        };
        let listed = match driver.list(&mref) {
            Ok(l) => l,
            Err(e) => {
                drift.unreachable.push((m.name.clone(), e.to_string()));
                continue;
            }
        };
        drift.checked += 1;
        let running: BTreeSet<&str> = listed
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.name.as_str())
            .collect();
        let present: BTreeSet<&str> = listed.containers.iter().map(|c| c.name.as_str()).collect();
        let recorded = by_machine.get(m.name.as_str()).cloned().unwrap_or_default();
        for h in &recorded {
            let is_running = running.contains(h.name.as_str());
            match h.state {
                Some(State::Running) | None if !is_running => {
                    let mut x = (*h).clone();
                    x.state = Some(State::Failed);
                    store.put_host(x, Expect::Index(h.modified_index), &actor)?;
                    drift.vanished.push(h.name.clone());
                }
                Some(State::Creating) => {
                    let mut x = (*h).clone();
                    x.state = Some(if is_running {
                        State::Running
                    } else {
                        State::Failed
                    });
                    store.put_host(x, Expect::Index(h.modified_index), &actor)?;
                    if is_running {
                        drift.adopted.push(h.name.clone());
                    } else {
                        drift.vanished.push(h.name.clone());
                    }
                }
                _ => {}
            }
        }
        let known: BTreeSet<&str> = recorded.iter().map(|h| h.name.as_str()).collect();
        for c in present {
            if !known.contains(c) {
                drift.orphans.push((m.name.clone(), c.to_string()));
            }
        }
    }
    Ok(drift)
}

/// Adopt a container no record explains: record it in HostDB as the config's host of that name,
/// on the machine where it runs. The next plan reconciles any difference (size, address).
pub fn import(
    config: &Config,
    store: &dyn Store,
    drivers: &dyn DriverSet,
    name: &str,
) -> Result<String, ApplyError> {
    let desired = config
        .hosts
        .iter()
        .find(|h| h.name == name)
        .ok_or_else(|| ApplyError::Driver(format!("the config declares no host `{name}`")))?;
    if let Some(existing) = store.get_host(name)? {
        return Err(ApplyError::Driver(format!(
            "`{name}` is already recorded (state {}); nothing to import",
            existing.state.map_or("none", |s| s.as_str())
        )));
    }
    for m in &config.machines {
        let Ok(connect) = m.connect.parse() else {
            continue;
        };
        let Ok(driver) = drivers.get(&m.driver) else {
            continue;
        };
        let Ok(listed) = driver.list(&MachineRef::new(&m.name, connect)) else {
            continue;
        };
        let Some(found) = listed.containers.into_iter().find(|c| c.name == name) else {
            continue;
        };
        let mut h = crate::hostdb::Host::container(name);
        h.class = Some(desired.class.clone());
        h.owner = Some(config.settings.owner.clone());
        h.machine = Some(m.name.clone());
        h.ip = found.ip.clone();
        h.image = Some(desired.image.clone());
        h.roles = desired.puppet_roles.clone();
        h.tags = desired.tags.clone();
        h.properties = (*desired.properties).clone();
        h.cpu = Some(desired.cpu);
        h.memory_mib = Some(desired.memory_mib);
        h.disk_gib = Some(desired.disk_gib);
        h.labels = m.labels.clone();
        h.driver_id = found.driver_id.clone();
        h.state = Some(if found.state == ContainerState::Running {
            State::Running
        } else {
            State::Failed
        });
        let actor = Actor {
            name: "kloud import".into(),
            message: Some(format!("adopted from {}", m.name)),
        };
        store.put_host(h, Expect::Absent, &actor)?;
        return Ok(format!(
            "imported {name} from {} ({}, {})",
            m.name,
            found.ip.as_deref().unwrap_or("no address"),
            found.state
        ));
    }
    Err(ApplyError::Driver(format!(
        "no machine of the config runs a container `{name}`"
    )))
}
