//! Containers recorded in HostDB as the integrations and templates see them: one
//! [`HostRecord`] per host, with its machine's labels and its derived config.

use std::collections::BTreeMap;

use kloud_provider_api::integration::HostRecord;

use super::derive::derive_config;
use super::{Host, HostQuery, Kind, State, Store, StoreError, Tag};

/// Whether a container belongs in the desired set the integrations converge to: running, or
/// being created with its address already reserved (so DNS resolves while it boots). A host
/// being deleted or failed is left out, which removes its records.
pub fn wanted(host: &Host) -> bool {
    match host.state {
        Some(State::Running) => true,
        Some(State::Creating) => host.ip.as_deref().is_some_and(|ip| !ip.is_empty()),
        _ => false,
    }
}

/// One host as the integrations see it. `machines` gives the labels of each machine; `tags`
/// every tag, for the derived config.
fn record(
    host: &Host,
    machines: &BTreeMap<String, BTreeMap<String, String>>,
    tags: &BTreeMap<String, Tag>,
) -> Result<HostRecord, StoreError> {
    let properties = derive_config(host, |name| Ok(tags.get(name).cloned()))?;
    let (machine, labels) = match host.kind {
        // A machine classified by `kloud enc` is its own machine.
        Kind::Machine => (host.name.clone(), host.labels.clone()),
        Kind::Container => {
            let machine = host.machine.clone().unwrap_or_default();
            let labels = machines.get(&machine).cloned().unwrap_or_default();
            (machine, labels)
        }
    };
    let mut host_tags = host.tags.clone();
    host_tags.sort();
    host_tags.dedup();
    Ok(HostRecord {
        fqdn: host.name.clone(),
        // An empty address tells the providers "unknown": DNS keeps what it has, Prometheus
        // makes no target, Nagios checks by name.
        ip: host.ip.clone().unwrap_or_default(),
        class: host.class.clone().unwrap_or_default(),
        tags: host_tags,
        labels,
        machine,
        roles: host.roles.clone(),
        properties,
    })
}

/// Every container in HostDB the integrations should know about (of `owner` when given, all
/// containers when `None`), sorted by FQDN. Reads machines, tags and containers once each and
/// derives every host's config in memory (the same merge as [`Store::derived_config`]), so the
/// cost does not grow with one query per host.
pub fn host_records(store: &dyn Store, owner: Option<&str>) -> Result<Vec<HostRecord>, StoreError> {
    let containers = store.all_hosts(&HostQuery {
        kind: Some(Kind::Container),
        owner: owner.map(str::to_string),
        ..HostQuery::default()
    })?;
    let containers: Vec<Host> = containers.into_iter().filter(wanted).collect();
    if containers.is_empty() {
        return Ok(Vec::new());
    }
    let machines: BTreeMap<String, BTreeMap<String, String>> = store
        .all_hosts(&HostQuery {
            kind: Some(Kind::Machine),
            ..HostQuery::default()
        })?
        .into_iter()
        .map(|m| (m.name, m.labels))
        .collect();
    let tags: BTreeMap<String, Tag> = store
        .list_tags()?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut out = containers
        .iter()
        .map(|h| record(h, &machines, &tags))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.fqdn.cmp(&b.fqdn));
    Ok(out)
}

/// The record of one host by name, whatever its state (Puppet asks about hosts while they are
/// being created); `None` when HostDB does not know it.
pub fn host_record(store: &dyn Store, name: &str) -> Result<Option<HostRecord>, StoreError> {
    let Some(host) = store.get_host(name)? else {
        return Ok(None);
    };
    let mut machines = BTreeMap::new();
    if let Some(m) = host.machine.as_deref().filter(|m| !m.is_empty()) {
        if let Some(machine) = store.get_host(m)? {
            machines.insert(machine.name, machine.labels);
        }
    }
    let properties = store.derived_config(name)?.unwrap_or_default();
    let mut rec = record(&host, &machines, &BTreeMap::new())?;
    rec.properties = properties;
    Ok(Some(rec))
}

