//! One decoder per top-level block type: each reads its blocks' attributes, reports every
//! problem with a span, and returns what decoded cleanly (with the blocks, for later
//! diagnostics). The loader (`load.rs`) calls them in order; expansion is in `expand.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;

use super::diag::{did_you_mean, Diagnostic, Diagnostics};
use super::eval::Evaluator;
use super::load::{
    checked_driver, clamp_u32, first_host, first_of_each, json_type, reader, undefined, ClassSpans,
    Item,
};
use super::model::*;
use super::reader::{header_span, Reader};
use super::schema::*;
use crate::providers;
use crate::{Overcommit, OvercommitError};

/// `machine_class "NAME" { cpu, memory, disk }`.
pub(super) fn machine_classes(
    items: &[Item],
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> BTreeMap<String, MachineClass> {
    let mut machine_classes = BTreeMap::new();
    for item in first_of_each(items) {
        let mut r = reader(item, MACHINE_CLASS_ATTRS, &[], eval, diags);
        let cpu = r.cpu("cpu", true);
        let memory = r.size("memory", MEMORY_UNIT, true);
        let disk = r.size("disk", DISK_UNIT, true);
        let overcommit = overcommit(&mut r);
        if let (Some(cpu), Some(memory_mib), Some(disk_gib), Some(overcommit_cpu)) =
            (cpu, memory, disk, overcommit)
        {
            let name = item.label().to_string();
            machine_classes.insert(
                name.clone(),
                MachineClass {
                    name,
                    cpu,
                    memory_mib,
                    disk_gib,
                    overcommit_cpu,
                },
            );
        }
    }
    machine_classes
}

/// `overcommit = { cpu = N }` of a machine class (absent: no overcommit); `None` after
/// reporting a bad value.
fn overcommit(r: &mut Reader) -> Option<Overcommit> {
    if !r.has("overcommit") {
        return Some(Overcommit::NONE);
    }
    let (v, span) = r.value("overcommit")?;
    let bad = |message: String, label: &str, help: String| {
        Diagnostic::new("kloud::config::bad_overcommit", message)
            .at(r.file, span.clone())
            .label(label.to_string())
            .help(help)
    };
    let example = "write `overcommit = { cpu = 2 }`: a number ≥ 1 (1.5 is allowed)";
    let hcl::Value::Object(o) = &v else {
        let d = bad(
            "`overcommit` must be an object such as { cpu = 2 }".into(),
            "not an object",
            example.into(),
        );
        r.report(d);
        return None;
    };
    let mut factor = Some(Overcommit::NONE);
    for (k, item) in o {
        if !OVERCOMMIT_KEYS.contains(&k.as_str()) {
            let help = if k == "memory" || k == "disk" {
                format!("{k} is never overcommitted; only `cpu` can be")
            } else {
                did_you_mean(k, OVERCOMMIT_KEYS.iter().copied())
                    .unwrap_or_else(|| "the only key of `overcommit` is `cpu`".into())
            };
            let d = bad(
                format!("`overcommit` has no key `{k}`"),
                "unknown key",
                help,
            );
            r.report(d);
            factor = None;
            continue;
        }
        let parsed = match item {
            hcl::Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| OvercommitError::Syntax(n.to_string()))
                .and_then(Overcommit::from_f64),
            other => {
                let d = bad(
                    format!(
                        "`overcommit.cpu` must be a number, found {}",
                        super::eval::type_name(other)
                    ),
                    "not a number",
                    example.into(),
                );
                r.report(d);
                factor = None;
                continue;
            }
        };
        match parsed {
            Ok(f) if factor.is_some() => factor = Some(f),
            Ok(_) => {}
            Err(e) => {
                let d = bad(
                    format!("`overcommit.cpu` is not a valid factor: {e}"),
                    "bad factor",
                    example.into(),
                );
                r.report(d);
                factor = None;
            }
        }
    }
    factor
}

/// `network "NAME" { cidr, gateway }`, with each network's block.
pub(super) fn networks<'a>(
    items: &[Item<'a>],
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> (BTreeMap<String, Network>, BTreeMap<String, Item<'a>>) {
    let mut networks = BTreeMap::new();
    let mut net_items = BTreeMap::new();
    for item in first_of_each(items) {
        let mut r = reader(item, NETWORK_ATTRS, &[], eval, diags);
        let cidr = r
            .string("cidr", true)
            .and_then(|c| match c.parse::<ipnet::IpNet>() {
                Ok(net) => Some(net),
                Err(_) => {
                    let span = r.span_or_header("cidr");
                    r.report(
                        Diagnostic::new(
                            "kloud::config::invalid_value",
                            format!("`{c}` is not a CIDR"),
                        )
                        .at(item.file, span)
                        .label("not a network")
                        .help("write an address and prefix length, e.g. \"10.40.0.0/16\""),
                    );
                    None
                }
            });
        let gateway = r
            .string("gateway", false)
            .and_then(|g| match g.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    let span = r.span_or_header("gateway");
                    r.report(
                        Diagnostic::new(
                            "kloud::config::invalid_value",
                            format!("`{g}` is not an IP address"),
                        )
                        .at(item.file, span)
                        .label("not an address")
                        .help("write an address inside the network's cidr, e.g. \"10.40.0.1\""),
                    );
                    None
                }
            });
        if let (Some(net), Some(gw)) = (cidr, gateway) {
            if !net.contains(&gw) {
                let span = r.span_or_header("gateway");
                r.report(
                    Diagnostic::new(
                        "kloud::config::invalid_value",
                        format!("gateway {gw} is outside the network {net}"),
                    )
                    .at(item.file, span)
                    .label("outside the cidr")
                    .help(format!(
                        "use an address inside {net}, e.g. {}",
                        first_host(&net)
                    )),
                );
            }
        }
        if let Some(cidr) = cidr {
            let name = item.label().to_string();
            net_items.insert(name.clone(), item);
            networks.insert(
                name.clone(),
                Network {
                    name,
                    cidr: cidr.trunc(),
                    gateway,
                },
            );
        }
    }
    (networks, net_items)
}

/// `tag "NAME" { properties, description }`.
pub(super) fn tags(
    items: &[Item],
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Tag> {
    let mut tags = BTreeMap::new();
    for item in first_of_each(items) {
        let mut r = reader(item, TAG_ATTRS, &[], eval, diags);
        let properties = r.json_map("properties").unwrap_or_default();
        let _ = r.string("description", false);
        let name = item.label().to_string();
        tags.insert(name.clone(), Tag { name, properties });
    }
    tags
}

/// `machines "NAME" { class, count, name, labels, driver, connect }`, with each group's block.
pub(super) fn machine_groups<'a>(
    items: &[Item<'a>],
    known_classes: &BTreeSet<String>,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> (BTreeMap<String, MachineGroup>, BTreeMap<String, Item<'a>>) {
    let mut machine_groups = BTreeMap::new();
    let mut group_items = BTreeMap::new();
    for item in first_of_each(items) {
        let mut r = reader(item, MACHINES_ATTRS, &[], eval, diags);
        let class = r.string("class", true);
        if let Some(class) = &class {
            if !known_classes.contains(class) {
                let span = r.span_or_header("class");
                r.report(undefined(
                    "machine_class",
                    class,
                    known_classes,
                    item.file,
                    span,
                ));
            }
        }
        let count = r.uint("count", true, 0);
        let name_template = r
            .string("name", false)
            .unwrap_or_else(|| "{{ group }}-{{ index }}".to_string());
        let labels = r.string_map("labels").unwrap_or_default();
        let driver = checked_driver(&mut r, item);
        let connect_template = r
            .string("connect", false)
            .unwrap_or_else(|| "ssh://root@{{ name }}".to_string());
        if let (Some(class), Some(count), Some(driver)) = (class, count, driver) {
            let name = item.label().to_string();
            group_items.insert(name.clone(), item);
            machine_groups.insert(
                name.clone(),
                MachineGroup {
                    name,
                    class,
                    count: clamp_u32(count),
                    name_template,
                    labels,
                    driver,
                    connect_template,
                },
            );
        }
    }

    (machine_groups, group_items)
}

/// `host_class "NAME" { … placement { … } }`, with each class's block and spans.
pub(super) fn host_classes<'a>(
    items: &[Item<'a>],
    known_networks: &BTreeSet<String>,
    known_tags: &BTreeSet<String>,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> (
    BTreeMap<String, HostClass>,
    BTreeMap<String, ClassSpans<'a>>,
) {
    let mut host_classes = BTreeMap::new();
    // Per class: its block, and the spans of `name` and `max_per` for later diagnostics.
    let mut class_items: BTreeMap<String, ClassSpans> = BTreeMap::new();
    for item in first_of_each(items) {
        let mut r = reader(item, HOST_CLASS_ATTRS, HOST_CLASS_BLOCKS, eval, diags);
        let count = r.uint("count", true, 0);
        let cpu = r.cpu("cpu", true);
        let memory = r.size("memory", MEMORY_UNIT, true);
        let disk = r.size("disk", DISK_UNIT, true);
        let image = r.string("image", true);
        let network = r.string("network", true);
        if let Some(n) = &network {
            if !known_networks.contains(n) {
                let span = r.span_or_header("network");
                r.report(undefined("network", n, known_networks, item.file, span));
            }
        }
        let name_template = r
            .string("name", false)
            .unwrap_or_else(|| "{{ class }}-{{ index }}".to_string());
        let class_tags = r.string_list("tags").unwrap_or_default();
        for t in &class_tags {
            if !known_tags.contains(t) {
                let span = r.span_or_header("tags");
                r.report(undefined("tag", t, known_tags, item.file, span));
            }
        }
        let properties = r.json_map("properties").unwrap_or_default();
        let puppet_roles = r.string_list("puppet_roles").unwrap_or_default();
        let driver = checked_driver(&mut r, item);
        let name_span = r.value_span("name");
        let (placement, max_per_span) = placement(item, eval, diags);
        if let (
            Some(count),
            Some(cpu),
            Some(memory_mib),
            Some(disk_gib),
            Some(image),
            Some(network),
            Some(driver),
        ) = (count, cpu, memory, disk, image, network, driver)
        {
            let name = item.label().to_string();
            class_items.insert(name.clone(), (item, name_span, max_per_span));
            let mut class_tags = class_tags;
            class_tags.sort();
            class_tags.dedup();
            host_classes.insert(
                name.clone(),
                HostClass {
                    name,
                    count: clamp_u32(count),
                    cpu,
                    memory_mib,
                    disk_gib,
                    image,
                    network,
                    name_template,
                    tags: class_tags,
                    properties,
                    puppet_roles,
                    driver,
                    placement,
                },
            );
        }
    }

    (host_classes, class_items)
}

/// "a host class" or "an offer": what the block is, for messages.
fn kind_of(item: Item) -> &'static str {
    match item.block.ident.as_str() {
        "offer" => "an offer",
        _ => "a host class",
    }
}

/// The one unlabelled `placement { max_per, strategy }` of a host class or offer, and the span of its
/// `max_per`.
pub(super) fn placement(
    item: Item,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> (Placement, Option<Range<usize>>) {
    let mut placement = Placement::default();
    let mut max_per_span = None;
    for (i, pb) in item.block.body.get_blocks("placement").enumerate() {
        if !pb.labels.is_empty() || i > 0 {
            diags.push(
                Diagnostic::new(
                    "kloud::config::block_labels",
                    format!("{} takes one unlabelled `placement` block", kind_of(item)),
                )
                .at(item.file, header_span(pb))
                .label("unexpected")
                .help("merge the rules into a single `placement { ... }`"),
            );
            continue;
        }
        let mut pr = Reader::new(
            item.file,
            format!(
                "the placement of {} \"{}\"",
                item.block.ident.as_str(),
                item.label()
            ),
            header_span(pb),
            &pb.body,
            PLACEMENT_ATTRS,
            &[],
            eval,
            diags,
        );
        if let Some(m) = pr.uint_map("max_per", 1) {
            placement.max_per = m.into_iter().map(|(k, v)| (k, clamp_u32(v))).collect();
        }
        max_per_span = pr.value_span("max_per");
        if let Some(s) = pr.string("strategy", false) {
            match s.as_str() {
                "pack" => placement.strategy = Strategy::Pack,
                "spread" => placement.strategy = Strategy::Spread,
                other => {
                    let span = pr.span_or_header("strategy");
                    pr.report(
                        Diagnostic::new(
                            "kloud::config::invalid_value",
                            format!("unknown placement strategy `{other}`"),
                        )
                        .at(item.file, span)
                        .label("unknown strategy")
                        .help(
                            did_you_mean(other, ["pack", "spread"])
                                .unwrap_or_else(|| "use \"pack\" or \"spread\"".into()),
                        ),
                    );
                }
            }
        }
        if let Some(s) = pr.string("solver", false) {
            match s.as_str() {
                "heuristic" => placement.solver = Solver::Heuristic,
                "exact" => placement.solver = Solver::Exact,
                other => {
                    let span = pr.span_or_header("solver");
                    pr.report(
                        Diagnostic::new(
                            "kloud::config::invalid_value",
                            format!("unknown placement solver `{other}`"),
                        )
                        .at(item.file, span)
                        .label("unknown solver")
                        .help(
                            did_you_mean(other, ["heuristic", "exact"])
                                .unwrap_or_else(|| "use \"heuristic\" or \"exact\"".into()),
                        ),
                    );
                }
            }
        }
    }
    (placement, max_per_span)
}

/// `provider "KIND" { … }`, checked against the provider's own attribute list.
pub(super) fn providers(
    items: &[Item],
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Provider> {
    let mut providers = BTreeMap::new();
    for item in first_of_each(items) {
        let kind = item.label().to_string();
        let Some(attrs) = providers::find(&kind).map(|p| p.attributes) else {
            diags.push(
                Diagnostic::new(
                    "kloud::config::unknown_provider",
                    format!("unknown provider `{kind}`"),
                )
                .at(item.file, item.label_span())
                .label("no such provider")
                .help(did_you_mean(&kind, providers::names()).unwrap_or_else(|| {
                    let names: Vec<&str> = providers::names().collect();
                    format!("the providers are: {}", names.join(", "))
                })),
            );
            continue;
        };
        let names: Vec<&str> = attrs.iter().map(|a| a.name).collect();
        let mut r = reader(item, &names, &[], eval, diags);
        let mut values = BTreeMap::new();
        let mut unset = Vec::new();
        let mut ok = true;
        for a in attrs.iter() {
            if !r.has(a.name) {
                if a.required {
                    ok = false;
                    let header = r.header.clone();
                    r.report(
                        Diagnostic::new(
                            "kloud::config::missing_attribute",
                            format!(
                                "provider \"{kind}\" is missing the required attribute `{}`",
                                a.name
                            ),
                        )
                        .at(item.file, header)
                        .label(format!("`{}` is required here", a.name))
                        .help(format!(
                            "add `{} = ...` ({})",
                            a.name,
                            a.ty.describe()
                        )),
                    );
                }
                continue;
            }
            if let Some(var) = r.unset_env(a.name) {
                unset.push((a.name.to_string(), var));
                continue;
            }
            match r.json(a.name) {
                Some((v, _)) if a.ty.accepts(&v) => {
                    values.insert(a.name.to_string(), v);
                }
                Some((v, span)) => {
                    ok = false;
                    r.report(
                        Diagnostic::new(
                            "kloud::config::wrong_type",
                            format!(
                                "`{}` must be {}, found {}",
                                a.name,
                                a.ty.describe(),
                                json_type(&v)
                            ),
                        )
                        .at(item.file, span)
                        .label(format!("expected {}", a.ty.describe()))
                        .help(format!(
                            "write `{}` as {}",
                            a.name,
                            a.ty.describe()
                        )),
                    );
                }
                None => ok = false,
            }
        }
        let sensitive = std::mem::take(&mut r.sensitive);
        if ok {
            providers.insert(
                kind.clone(),
                Provider {
                    kind,
                    attributes: values,
                    sensitive,
                    unset,
                },
            );
        }
    }

    providers
}
