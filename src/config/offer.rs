//! `offer "NAME" { … }` (design §10): what a person may ask `kloud serve` for.
//!
//! ```hcl
//! offer "small" {
//!   cpu      = 1
//!   memory   = "256MiB"
//!   disk     = "2GiB"
//!   image    = "debian-12"
//!   network  = "lab"
//!   per_user = 3                        # hosts of this offer one person may hold
//!   login { sudo = true }               # the person's own name and keys
//!   placement { max_per = { machine = 2 } }
//! }
//! ```
//!
//! An offer is a host class whose hosts are asked for one at a time by people: its hosts are
//! named `{offer}-{user}-{n}.{domain}` and owned by `user:{user}` (design §8). The
//! self-service engine (`crate::selfservice`) turns an offer into a host class when it plans.

use std::collections::{BTreeMap, BTreeSet};

use super::decode::placement;
use super::diag::{Diagnostic, Diagnostics};
use super::eval::Evaluator;
use super::load::{checked_driver, clamp_u32, first_of_each, reader, undefined, Item};
use super::model::Placement;
use super::reader::{header_span, Reader};
use super::schema::{DISK_UNIT, MEMORY_UNIT, OFFER_ATTRS, OFFER_BLOCKS, OFFER_LOGIN_ATTRS};
use crate::Cpu;

/// A decoded offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub name: String,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub image: String,
    pub network: String,
    /// How many hosts of this offer one person may hold at once.
    pub per_user: u32,
    /// Passwordless sudo for the person on their hosts.
    pub sudo: bool,
    /// Sorted, unique.
    pub tags: Vec<String>,
    pub properties: serde_json::Map<String, serde_json::Value>,
    pub driver: String,
    pub placement: Placement,
}

/// Decode every `offer` block (the first of each name; duplicates were reported).
pub(super) fn offers(
    items: &[Item],
    known_networks: &BTreeSet<String>,
    known_tags: &BTreeSet<String>,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Offer> {
    let mut out = BTreeMap::new();
    for item in first_of_each(items) {
        if let Some(offer) = offer(item, known_networks, known_tags, eval, diags) {
            out.insert(offer.name.clone(), offer);
        }
    }
    out
}

fn offer(
    item: Item,
    known_networks: &BTreeSet<String>,
    known_tags: &BTreeSet<String>,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> Option<Offer> {
    let mut r = reader(item, OFFER_ATTRS, OFFER_BLOCKS, eval, diags);
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
    let per_user = r.uint("per_user", true, 1);
    let mut tags = r.string_list("tags").unwrap_or_default();
    for t in &tags {
        if !known_tags.contains(t) {
            let span = r.span_or_header("tags");
            r.report(undefined("tag", t, known_tags, item.file, span));
        }
    }
    tags.sort();
    tags.dedup();
    let properties = r.json_map("properties").unwrap_or_default();
    let driver = checked_driver(&mut r, item);
    drop(r);
    let (placement, _) = placement(item, eval, diags);
    let sudo = login_sudo(item, eval, diags);
    Some(Offer {
        name: item.label().to_string(),
        cpu: cpu?,
        memory_mib: memory?,
        disk_gib: disk?,
        image: image?,
        network: network?,
        per_user: clamp_u32(per_user?),
        sudo,
        tags,
        properties,
        driver: driver?,
        placement,
    })
}

/// The offer's one `login { sudo }` block: sudo or not (the user and keys are the person's).
fn login_sudo(item: Item, eval: &Evaluator, diags: &mut Diagnostics) -> bool {
    let mut sudo = false;
    for (i, lb) in item.block.body.get_blocks("login").enumerate() {
        if !lb.labels.is_empty() || i > 0 {
            diags.push(
                Diagnostic::new(
                    "kloud::config::block_labels",
                    "an offer takes one unlabelled `login` block",
                )
                .at(item.file, header_span(lb))
                .label("unexpected")
                .help("merge them into a single `login { sudo = true }`"),
            );
            continue;
        }
        let mut r = Reader::new(
            item.file,
            format!("the login of offer \"{}\"", item.label()),
            header_span(lb),
            &lb.body,
            OFFER_LOGIN_ATTRS,
            &[],
            eval,
            diags,
        );
        match r.value("sudo") {
            None => {}
            Some((hcl::Value::Bool(b), _)) => sudo = b,
            Some((_, span)) => r.report(
                Diagnostic::new("kloud::config::wrong_type", "`sudo` must be true or false")
                    .at(item.file, span)
                    .label("expected true or false")
                    .help("write `sudo = true` for passwordless sudo"),
            ),
        }
    }
    sudo
}
