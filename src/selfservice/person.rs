//! A person's hosts as a config: HostDB records owned by `user:NAME` turned back into the
//! desired state the engine plans (design §8, §10).
//!
//! Every record of the person that is not being given back is desired as it was recorded;
//! its class is its offer (the offer's placement rules apply); its login is the person's name,
//! with the keys recorded on the host and the offer's sudo. The config keeps the operators'
//! machines (those already recorded: a person's plan never creates a machine), networks,
//! tags and providers, so capacity, addresses and integrations are the fleet's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::login::{ClassBoot, Login};
use crate::config::{Config, DesiredHost, HostClass, Offer};
use crate::hostdb::model::{Host, HostQuery, Kind, State};
use crate::hostdb::{Store, StoreError};

use super::OWNER_PREFIX;

/// The record label that asks the worker to destroy and create a host again.
pub const RECREATE_LABEL: &str = "kloud.recreate";
/// The record property holding the public keys the person logs in with.
pub const KEYS_PROPERTY: &str = "ssh_keys";

/// What the API calls a record's state: `recreating` while a recreate is pending.
pub fn state_of(h: &Host) -> &'static str {
    if h.labels.contains_key(RECREATE_LABEL) && h.state != Some(State::Deleting) {
        return "recreating";
    }
    h.state.map_or("unknown", State::as_str)
}

/// The self-service containers of `owner`, or of every person.
pub fn hosts_of(store: &dyn Store, owner: Option<String>) -> Result<Vec<Host>, StoreError> {
    let hosts = store.all_hosts(&HostQuery {
        kind: Some(Kind::Container),
        owner,
        ..HostQuery::default()
    })?;
    Ok(hosts
        .into_iter()
        .filter(|h| {
            h.owner
                .as_deref()
                .is_some_and(|o| o.starts_with(OWNER_PREFIX))
        })
        .collect())
}

/// The hosts `{offer}-{user}-{n}` start with.
pub fn name_prefix(offer: &str, user: &str) -> String {
    format!("{offer}-{user}-")
}

/// `n` of `{offer}-{user}-{n}.{domain}`, if `name` is one.
pub fn index_of(name: &str, offer: &str, user: &str) -> Option<u32> {
    let short = name.split('.').next()?;
    short.strip_prefix(&name_prefix(offer, user))?.parse().ok()
}

/// The config that plans `owner`'s hosts: `records` (their current records, `extra` a host
/// being asked for now) over `base`'s fleet. Hosts being deleted are not desired.
pub fn config_for(
    base: &Config,
    owner: &str,
    records: &[Host],
    extra: Option<DesiredHost>,
    recorded_machines: &BTreeSet<String>,
) -> Config {
    let user = owner.strip_prefix(OWNER_PREFIX).unwrap_or(owner);
    let mut hosts: Vec<DesiredHost> = records
        .iter()
        .filter(|h| h.state != Some(State::Deleting))
        .filter_map(|h| desired_of(base, user, h))
        .collect();
    hosts.extend(extra);
    let mut config = base.clone();
    config.settings.owner = owner.to_string();
    config.host_classes = classes_for(base, &hosts);
    config.login.classes = logins_for(base, user, &hosts);
    config
        .machines
        .retain(|m| recorded_machines.contains(&m.name));
    config.templates.clear();
    config.digest = format!("{}+{owner}", base.digest);
    config.hosts = hosts;
    config
}

/// A record as the host it should stay: its offer's network, its own size and keys.
fn desired_of(base: &Config, user: &str, h: &Host) -> Option<DesiredHost> {
    let offer_name = h.class.clone()?;
    let offer = base.offers.get(&offer_name);
    let network = offer
        .map(|o| o.network.clone())
        .or_else(|| network_of(base, h))?;
    Some(DesiredHost {
        name: h.name.clone(),
        index: index_of(&h.name, &offer_name, user).unwrap_or(0),
        class: offer_name,
        cpu: h
            .cpu
            .or(offer.map(|o| o.cpu))
            .unwrap_or(crate::Cpu::from_cores(1)),
        memory_mib: h.memory_mib.or(offer.map(|o| o.memory_mib)).unwrap_or(0),
        disk_gib: h.disk_gib.or(offer.map(|o| o.disk_gib)).unwrap_or(0),
        image: h.image.clone().or(offer.map(|o| o.image.clone()))?,
        network,
        tags: h.tags.clone(),
        properties: Arc::new(h.properties.clone()),
        puppet_roles: h.roles.clone(),
        driver: offer.map_or_else(|| "lxc".to_string(), |o| o.driver.clone()),
    })
}

/// The network whose range holds the record's address (an offer that is gone).
fn network_of(base: &Config, h: &Host) -> Option<String> {
    let ip: std::net::IpAddr = h.ip.as_deref()?.parse().ok()?;
    base.networks
        .values()
        .find(|n| n.cidr.contains(&ip))
        .map(|n| n.name.clone())
}

/// A new host of `offer` for `user`: `{offer}-{user}-{n}.{domain}`.
pub fn new_host(base: &Config, offer: &Offer, user: &str, n: u32, keys: &[String]) -> DesiredHost {
    let mut properties = offer.properties.clone();
    properties.insert(KEYS_PROPERTY.into(), serde_json::json!(keys));
    DesiredHost {
        name: format!(
            "{}{n}.{}",
            name_prefix(&offer.name, user),
            base.settings.domain
        ),
        class: offer.name.clone(),
        index: n,
        cpu: offer.cpu,
        memory_mib: offer.memory_mib,
        disk_gib: offer.disk_gib,
        image: offer.image.clone(),
        network: offer.network.clone(),
        tags: offer.tags.clone(),
        properties: Arc::new(properties),
        puppet_roles: Vec::new(),
        driver: offer.driver.clone(),
    }
}

/// One host class per offer the hosts use, sized and ruled by the offer.
fn classes_for(base: &Config, hosts: &[DesiredHost]) -> BTreeMap<String, HostClass> {
    let mut classes: BTreeMap<String, HostClass> = BTreeMap::new();
    for h in hosts {
        let class = classes.entry(h.class.clone()).or_insert_with(|| {
            let offer = base.offers.get(&h.class);
            HostClass {
                name: h.class.clone(),
                count: 0,
                cpu: h.cpu,
                memory_mib: h.memory_mib,
                disk_gib: h.disk_gib,
                image: h.image.clone(),
                network: h.network.clone(),
                name_template: "{{ class }}-{{ index }}".into(),
                tags: h.tags.clone(),
                properties: (*h.properties).clone(),
                puppet_roles: Vec::new(),
                driver: h.driver.clone(),
                placement: offer.map(|o| o.placement.clone()).unwrap_or_default(),
            }
        });
        class.count += 1;
    }
    classes
}

/// The person logs into every host of theirs with their own name and the keys recorded.
fn logins_for(base: &Config, user: &str, hosts: &[DesiredHost]) -> BTreeMap<String, ClassBoot> {
    let mut out: BTreeMap<String, ClassBoot> = BTreeMap::new();
    for h in hosts {
        let boot = out.entry(h.class.clone()).or_insert_with(|| ClassBoot {
            login: Some(Login {
                user: user.to_string(),
                ssh_keys: Vec::new(),
                sudo: base.offers.get(&h.class).is_some_and(|o| o.sudo),
            }),
            first_boot: Vec::new(),
        });
        let keys = h
            .properties
            .get(KEYS_PROPERTY)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str());
        if let Some(login) = boot.login.as_mut() {
            for k in keys {
                if !login.ssh_keys.iter().any(|have| have == k) {
                    login.ssh_keys.push(k.to_string());
                }
            }
        }
    }
    out
}
