//! Expanding the decoded declarations into the machines and hosts they stand for (names
//! rendered, FQDNs claimed once across both), then the cross-checks that need them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::diag::{did_you_mean, Diagnostic, Diagnostics};
use super::load::{
    fitting_prefix, item_attr_span, render_fqdn, template_error, usable_addresses, usable_for,
    ClassSpans, Fqdns, Item,
};
use super::model::*;
use super::names::NameRenderer;
use kloud_provider_api::compute::Connect;

/// Every machine of every group, sorted by name.
pub(super) fn machines(
    machine_groups: &BTreeMap<String, MachineGroup>,
    group_items: &BTreeMap<String, Item>,
    machine_classes: &BTreeMap<String, MachineClass>,
    settings: &Settings,
    fqdns: &mut Fqdns,
    diags: &mut Diagnostics,
) -> Vec<Machine> {
    let mut machines = Vec::new();
    for (gname, g) in machine_groups {
        let item = group_items[gname];
        let Some(mc) = machine_classes.get(&g.class) else {
            continue;
        };
        let name_span = item_attr_span(item, "name");
        let renderer = match NameRenderer::new(&g.name_template) {
            Ok(r) => r,
            Err(e) => {
                diags.push(template_error(&e, item.file, name_span.clone()));
                continue;
            }
        };
        let connect = match NameRenderer::new(&g.connect_template) {
            Ok(r) => Some(r),
            Err(e) => {
                diags.push(template_error(
                    &e,
                    item.file,
                    item_attr_span(item, "connect"),
                ));
                None
            }
        };
        for index in 1..=g.count {
            let vars = [("group", gname.as_str()), ("class", g.class.as_str())];
            let fqdn = match render_fqdn(
                &renderer,
                index,
                &vars,
                &settings.domain,
                item.file,
                &name_span,
            ) {
                Ok(f) => f,
                Err(d) => {
                    diags.push(d);
                    break;
                }
            };
            let connect = match connect.as_ref().map(|c| {
                c.render(
                    index,
                    &[
                        ("name", fqdn.as_str()),
                        ("group", gname),
                        ("class", &g.class),
                    ],
                )
            }) {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    diags.push(template_error(
                        &e,
                        item.file,
                        item_attr_span(item, "connect"),
                    ));
                    break;
                }
                None => break,
            };
            if let Err(e) = connect.parse::<Connect>() {
                // The drivers' own parser decides; a string of another scheme reads as before.
                let message = if connect != "local" && !connect.starts_with("ssh://") {
                    format!("`connect` must be \"local\" or \"ssh://user@host[:port]\", found `{connect}`")
                } else {
                    format!("`connect` is not a valid connection: {e}")
                };
                diags.push(
                    Diagnostic::new("kloud::config::invalid_value", message)
                    .at(item.file, item_attr_span(item, "connect"))
                    .label("unsupported connection")
                    .help("use \"local\" to run the driver on this computer, or \"ssh://root@{{ name }}\""),
                );
                break;
            }
            if let Err(d) = fqdns.claim(
                &fqdn,
                ("machine", format!("machines \"{gname}\"")),
                (item.file, &name_span),
                "give the groups different name templates",
            ) {
                diags.push(d);
                break;
            }
            machines.push(Machine {
                name: fqdn,
                group: gname.clone(),
                class: g.class.clone(),
                cpu: mc.cpu,
                memory_mib: mc.memory_mib,
                disk_gib: mc.disk_gib,
                overcommit_cpu: mc.overcommit_cpu,
                labels: g.labels.clone(),
                driver: g.driver.clone(),
                connect,
            });
        }
    }
    machines.sort_by(|a, b| a.name.cmp(&b.name));

    machines
}

/// Every host of every class, in class then index order.
pub(super) fn hosts(
    host_classes: &BTreeMap<String, HostClass>,
    class_items: &BTreeMap<String, ClassSpans>,
    settings: &Settings,
    fqdns: &mut Fqdns,
    diags: &mut Diagnostics,
) -> Vec<DesiredHost> {
    let mut hosts = Vec::new();
    for (cname, c) in host_classes {
        let (item, name_span, _) = &class_items[cname];
        let name_span = name_span.clone().unwrap_or_else(|| item.label_span());
        let renderer = match NameRenderer::new(&c.name_template) {
            Ok(r) => r,
            Err(e) => {
                diags.push(template_error(&e, item.file, name_span));
                continue;
            }
        };
        // A host's own properties, one map for the class; tag properties are inherited in
        // HostDB's derived config.
        let host_properties = Arc::new(c.properties.clone());
        for index in 1..=c.count {
            let vars = [("class", cname.as_str())];
            let fqdn = match render_fqdn(
                &renderer,
                index,
                &vars,
                &settings.domain,
                item.file,
                &name_span,
            ) {
                Ok(f) => f,
                Err(d) => {
                    diags.push(d);
                    break;
                }
            };
            if let Err(d) = fqdns.claim(
                &fqdn,
                ("host", format!("host_class \"{cname}\"")),
                (item.file, &name_span),
                "make the name templates differ, e.g. include `{{ class }}`",
            ) {
                diags.push(d);
                break;
            }
            hosts.push(DesiredHost {
                name: fqdn,
                class: cname.clone(),
                index,
                cpu: c.cpu,
                memory_mib: c.memory_mib,
                disk_gib: c.disk_gib,
                image: c.image.clone(),
                network: c.network.clone(),
                tags: c.tags.clone(),
                properties: Arc::clone(&host_properties),
                puppet_roles: c.puppet_roles.clone(),
                driver: c.driver.clone(),
            });
        }
    }

    hosts
}

/// Each class's `max_per` keys are labels some machine has, and some machine runs its driver.
pub(super) fn check_classes(
    host_classes: &BTreeMap<String, HostClass>,
    class_items: &BTreeMap<String, ClassSpans>,
    machines: &[Machine],
    diags: &mut Diagnostics,
) {
    let label_keys: BTreeSet<&str> = machines
        .iter()
        .flat_map(|m| m.labels.keys().map(String::as_str))
        .collect();
    let drivers: BTreeSet<&str> = machines.iter().map(|m| m.driver.as_str()).collect();
    for (cname, c) in host_classes {
        let (item, _, max_per_span) = &class_items[cname];
        for key in c.placement.max_per.keys() {
            if key != "machine" && !label_keys.contains(key.as_str()) {
                let span = max_per_span.clone().unwrap_or_else(|| item.label_span());
                let mut candidates: Vec<&str> = label_keys.iter().copied().collect();
                candidates.push("machine");
                diags.push(
                    Diagnostic::new(
                        "kloud::config::unknown_max_per_key",
                        format!("max_per key `{key}` is not a label of any machine"),
                    )
                    .at(item.file, span)
                    .label(format!("no machine has a `{key}` label"))
                    .help(
                        did_you_mean(key, candidates.iter().copied()).unwrap_or_else(|| {
                            format!(
                                "use `machine` or a label your machines have: {}",
                                if label_keys.is_empty() {
                                    "(none)".to_string()
                                } else {
                                    label_keys.iter().copied().collect::<Vec<_>>().join(", ")
                                }
                            )
                        }),
                    ),
                );
            }
        }
        if c.count > 0 && !machines.is_empty() && !drivers.contains(c.driver.as_str()) {
            diags.push(
                Diagnostic::new(
                    "kloud::config::unknown_driver",
                    format!(
                        "host_class \"{cname}\" needs driver `{}`, which no machine runs",
                        c.driver
                    ),
                )
                .at(item.file, item_attr_span(*item, "driver"))
                .label("no machine offers this driver")
                .help(format!(
                    "set `driver` to one your machines run ({})",
                    drivers.iter().copied().collect::<Vec<_>>().join(", ")
                )),
            );
        }
    }
}

/// Each network holds the hosts that use it.
pub(super) fn check_network_sizes(
    host_classes: &BTreeMap<String, HostClass>,
    networks: &BTreeMap<String, Network>,
    net_items: &BTreeMap<String, Item>,
    diags: &mut Diagnostics,
) {
    let mut demand: BTreeMap<&str, u64> = BTreeMap::new();
    for c in host_classes.values() {
        *demand.entry(c.network.as_str()).or_default() += u64::from(c.count);
    }
    for (nname, net) in networks {
        let need = demand.get(nname.as_str()).copied().unwrap_or(0);
        let usable = usable_addresses(net);
        if need > usable {
            let item = net_items[nname];
            diags.push(
                Diagnostic::new(
                    "kloud::config::network_too_small",
                    format!(
                        "network \"{nname}\" ({}) has {} but {need} hosts use it",
                        net.cidr,
                        if usable == 1 {
                            "1 usable address".to_string()
                        } else {
                            format!("{usable} usable addresses")
                        }
                    ),
                )
                .at(item.file, item_attr_span(item, "cidr"))
                .label("too small")
                .help(format!(
                    "widen the cidr: a /{} holds {}",
                    fitting_prefix(net, need),
                    usable_for(net, fitting_prefix(net, need))
                )),
            );
        }
    }
}
