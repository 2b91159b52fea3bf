//! What a template sees (design §12): `hosts`, `machines`, `tags`, read from HostDB.
//!
//! [`Fleet::read`] reads HostDB once (containers, machines, tags); every template of a round
//! filters and renders from that one read. A host's view is its [`HostRecord`] (machine,
//! labels, derived properties: the same record the integrations get, built by
//! [`crate::hostdb::records::record`]) plus what templates also need: owner, state, size.

use crate::Cpu;
use std::collections::{BTreeMap, BTreeSet};

use kloud_provider_api::integration::HostRecord;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{HostFilter, Template};
use crate::hostdb::records::record;
use crate::hostdb::{Host, HostQuery, Kind, Store, StoreError, Tag};

/// Everything in HostDB a template can see, read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// The HostDB index read before the data (the data is at least this new).
    pub index: u64,
    /// Every container, sorted by name.
    pub containers: Vec<Host>,
    /// Every machine, sorted by name.
    pub machines: Vec<Host>,
    /// Every tag, by name.
    pub tags: BTreeMap<String, Tag>,
}

impl Fleet {
    /// Read containers, machines and tags (three reads; over HTTP three requests).
    pub fn read(store: &dyn Store) -> Result<Fleet, StoreError> {
        let index = store.index()?;
        let of_kind = |kind| {
            store.all_hosts(&HostQuery {
                kind: Some(kind),
                ..HostQuery::default()
            })
        };
        let mut containers = of_kind(Kind::Container)?;
        let mut machines = of_kind(Kind::Machine)?;
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        machines.sort_by(|a, b| a.name.cmp(&b.name));
        let tags = store
            .list_tags()?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        Ok(Fleet {
            index,
            containers,
            machines,
            tags,
        })
    }

    /// Every tag `host` is a member of, directly or through nested tags.
    fn memberships(&self, host: &Host) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = host.tags.clone();
        while let Some(t) = todo.pop() {
            if seen.insert(t.clone()) {
                if let Some(tag) = self.tags.get(&t) {
                    todo.extend(tag.tags.iter().cloned());
                }
            }
        }
        seen
    }
}

/// One container as a template sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostView {
    /// FQDN.
    pub name: String,
    /// The first label of the name (`web-1` of `web-1.dc1.example.internal`).
    pub short: String,
    /// Empty when HostDB has no address for it yet.
    pub ip: String,
    pub class: String,
    pub owner: String,
    /// `creating`, `running`, `failed` or `deleting`.
    pub state: String,
    pub machine: String,
    /// Its machine's labels (rack, switch, …).
    pub labels: BTreeMap<String, String>,
    /// Direct tag memberships, sorted.
    pub tags: Vec<String>,
    pub roles: Vec<String>,
    /// Derived config: its tags' properties merged (nearest wins), then its own.
    pub properties: Map<String, Value>,
    pub image: String,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
}

/// One machine.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MachineView {
    pub name: String,
    pub short: String,
    pub class: String,
    pub labels: BTreeMap<String, String>,
    pub driver: String,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub properties: Map<String, Value>,
}

/// One tag, with the hosts of this template that are members of it (directly or through
/// nested tags).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TagView {
    pub name: String,
    pub properties: Map<String, Value>,
    /// The tags it is nested in.
    pub tags: Vec<String>,
    /// Names of the template's hosts that are members, sorted.
    pub hosts: Vec<String>,
}

/// The whole context of one render.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Context {
    /// The containers the template's `hosts` filter selects, sorted by name.
    pub hosts: Vec<HostView>,
    /// Every machine, sorted by name.
    pub machines: Vec<MachineView>,
    /// Every tag, by name.
    pub tags: BTreeMap<String, TagView>,
    /// The template's name.
    pub template: String,
    /// The config's domain.
    pub domain: String,
    /// The block's `vars`.
    pub vars: Map<String, Value>,
}

fn short(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_string()
}

/// Whether `host` passes `filter`.
fn selected(filter: &HostFilter, host: &Host, memberships: &BTreeSet<String>) -> bool {
    let state_ok = host.state.is_some_and(|s| filter.states.contains(&s));
    let class_ok = filter.classes.is_empty()
        || host
            .class
            .as_ref()
            .is_some_and(|c| filter.classes.contains(c));
    let owner_ok = filter
        .owner
        .as_ref()
        .is_none_or(|o| host.owner.as_ref() == Some(o));
    let tags_ok = filter.tags.iter().all(|t| memberships.contains(t));
    state_ok && class_ok && owner_ok && tags_ok
}

fn host_view(host: &Host, rec: HostRecord) -> HostView {
    HostView {
        short: short(&rec.fqdn),
        name: rec.fqdn,
        ip: rec.ip,
        class: rec.class,
        owner: host.owner.clone().unwrap_or_default(),
        state: host
            .state
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        machine: rec.machine,
        labels: rec.labels,
        tags: rec.tags,
        roles: rec.roles,
        properties: rec.properties,
        image: host.image.clone().unwrap_or_default(),
        cpu: host.cpu.unwrap_or_default(),
        memory_mib: host.memory_mib.unwrap_or(0),
        disk_gib: host.disk_gib.unwrap_or(0),
    }
}

fn machine_view(m: &Host) -> MachineView {
    MachineView {
        name: m.name.clone(),
        short: short(&m.name),
        class: m.class.clone().unwrap_or_default(),
        labels: m.labels.clone(),
        driver: m.driver.clone().unwrap_or_default(),
        cpu: m.cpu.unwrap_or_default(),
        memory_mib: m.memory_mib.unwrap_or(0),
        disk_gib: m.disk_gib.unwrap_or(0),
        properties: m.properties.clone(),
    }
}

/// The context `template` renders with from `fleet`.
pub fn context(template: &Template, fleet: &Fleet, domain: &str) -> Result<Context, StoreError> {
    let labels: BTreeMap<String, BTreeMap<String, String>> = fleet
        .machines
        .iter()
        .map(|m| (m.name.clone(), m.labels.clone()))
        .collect();
    let mut hosts = Vec::new();
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for host in &fleet.containers {
        let memberships = fleet.memberships(host);
        if !selected(&template.hosts, host, &memberships) {
            continue;
        }
        for t in memberships {
            members.entry(t).or_default().push(host.name.clone());
        }
        hosts.push(host_view(host, record(host, &labels, &fleet.tags)?));
    }
    let tags = fleet
        .tags
        .values()
        .map(|t| {
            let view = TagView {
                name: t.name.clone(),
                properties: t.properties.clone(),
                tags: t.tags.clone(),
                hosts: members.remove(&t.name).unwrap_or_default(),
            };
            (t.name.clone(), view)
        })
        .collect();
    Ok(Context {
        hosts,
        machines: fleet.machines.iter().map(machine_view).collect(),
        tags,
        template: template.name.clone(),
        domain: domain.to_string(),
        vars: template.vars.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostdb::State;
    use serde_json::json;

    fn container(name: &str, class: &str, tags: &[&str], state: State) -> Host {
        let mut h = Host::container(name);
        h.class = Some(class.into());
        h.owner = Some("me".into());
        h.state = Some(state);
        h.ip = Some("10.0.0.1".into());
        h.machine = Some("hw-1.t".into());
        h.tags = tags.iter().map(|t| t.to_string()).collect();
        h
    }

    fn fleet() -> Fleet {
        let mut m = Host::machine("hw-1.t");
        m.labels = BTreeMap::from([("rack".into(), "r1".into())]);
        let mut web = Tag::new("web");
        web.tags = vec!["prod".into()];
        web.properties = json!({"port": 8080})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut prod = Tag::new("prod");
        prod.properties = json!({"env": "prod", "port": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        Fleet {
            index: 7,
            containers: vec![
                container("a.t", "web", &["web"], State::Running),
                container("b.t", "web", &["web"], State::Creating),
                container("c.t", "db", &["prod"], State::Running),
                container("d.t", "web", &[], State::Running),
            ],
            machines: vec![m],
            tags: [web, prod]
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
        }
    }

    fn template(filter: HostFilter) -> Template {
        Template {
            name: "t".into(),
            source: std::sync::Arc::new(crate::config::SourceFile::new("t.j2", "")),
            source_path: "t.j2".into(),
            destination: "out".into(),
            hosts: filter,
            check: None,
            on_change: None,
            timeout: std::time::Duration::from_secs(1),
            vars: Map::new(),
        }
    }

    fn names(c: &Context) -> Vec<&str> {
        c.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn the_default_filter_is_every_running_container() {
        let c = context(&template(HostFilter::default()), &fleet(), "t").unwrap();
        assert_eq!(names(&c), ["a.t", "c.t", "d.t"]);
    }

    #[test]
    fn tags_match_through_nesting_and_every_filter_must_hold() {
        let f = fleet();
        let by_tag = |tags: &[&str]| HostFilter {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..HostFilter::default()
        };
        let c = context(&template(by_tag(&["prod"])), &f, "t").unwrap();
        assert_eq!(names(&c), ["a.t", "c.t"], "web is nested in prod");
        let c = context(&template(by_tag(&["prod", "web"])), &f, "t").unwrap();
        assert_eq!(names(&c), ["a.t"]);
        let mut filter = by_tag(&["web"]);
        filter.states = vec![State::Running, State::Creating];
        filter.classes = vec!["web".into()];
        let c = context(&template(filter), &f, "t").unwrap();
        assert_eq!(names(&c), ["a.t", "b.t"]);
        assert_eq!(c.tags["prod"].hosts, ["a.t", "b.t"]);
        let filter = HostFilter {
            owner: Some("someone-else".into()),
            ..HostFilter::default()
        };
        assert!(context(&template(filter), &f, "t")
            .unwrap()
            .hosts
            .is_empty());
    }

    #[test]
    fn a_host_carries_derived_properties_labels_owner_and_state() {
        let c = context(&template(HostFilter::default()), &fleet(), "dc").unwrap();
        let a = &c.hosts[0];
        assert_eq!(a.short, "a");
        assert_eq!(a.owner, "me");
        assert_eq!(a.state, "running");
        assert_eq!(a.labels["rack"], "r1");
        // Nearest tag wins: web's port over prod's.
        assert_eq!(a.properties["port"], json!(8080));
        assert_eq!(a.properties["env"], json!("prod"));
        assert_eq!(c.machines[0].name, "hw-1.t");
        assert_eq!(c.domain, "dc");
    }
}
