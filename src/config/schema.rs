//! What each block of the language may contain: the single list the loader and `fmt` share
//! (provider blocks: [`crate::providers`], the table every provider crate is listed in).

use crate::size::Unit;

/// Top-level block types, with the number of labels each takes.
pub const BLOCKS: &[(&str, usize)] = &[
    ("kloud", 0),
    ("variable", 1),
    ("machine_class", 1),
    ("machines", 1),
    ("network", 1),
    ("tag", 1),
    ("host_class", 1),
    ("provider", 1),
    ("template", 1),
    ("auth", 0),
    ("offer", 1),
];

pub const AUTH_ATTRS: &[&str] = &["roles", "session_ttl"];
pub const AUTH_BLOCKS: &[&str] = &["ldap", "hostdb_v1"];
pub const AUTH_LDAP_ATTRS: &[&str] = &[
    "url",
    "user_dn",
    "groups",
    "ssh_key_attribute",
    "start_tls",
    "ca_file",
    "timeout",
];
pub const AUTH_HOSTDB_V1_ATTRS: &[&str] = &["anonymous_read", "writers"];
pub const KLOUD_ATTRS: &[&str] = &["domain", "hostdb", "owner"];
pub const VARIABLE_ATTRS: &[&str] = &["default", "description"];
pub const MACHINE_CLASS_ATTRS: &[&str] = &["cpu", "memory", "disk", "overcommit"];
/// The keys of `overcommit = { ... }` in a machine class: only cpu is ever overcommitted.
pub const OVERCOMMIT_KEYS: &[&str] = &["cpu"];
pub const MACHINES_ATTRS: &[&str] = &["class", "count", "name", "labels", "driver", "connect"];
pub const NETWORK_ATTRS: &[&str] = &["cidr", "gateway", "dns"];
pub const TAG_ATTRS: &[&str] = &["properties", "description"];
pub const HOST_CLASS_ATTRS: &[&str] = &[
    "count",
    "cpu",
    "memory",
    "disk",
    "image",
    "network",
    "name",
    "tags",
    "properties",
    "puppet_roles",
    "driver",
    "first_boot",
];
pub const HOST_CLASS_BLOCKS: &[&str] = &["placement", "login"];
/// The `login {}` block of a host class (decoded in `config/login.rs`).
pub const LOGIN_ATTRS: &[&str] = &["user", "ssh_keys", "sudo"];
/// `offer "NAME" { … }` (design §10): what a person may ask `kloud serve` for.
pub const OFFER_ATTRS: &[&str] = &[
    "cpu",
    "memory",
    "disk",
    "image",
    "network",
    "per_user",
    "tags",
    "properties",
    "driver",
];
pub const OFFER_BLOCKS: &[&str] = &["placement", "login"];
/// An offer's `login {}`: the user and keys are the person's own.
pub const OFFER_LOGIN_ATTRS: &[&str] = &["sudo"];
pub const PLACEMENT_ATTRS: &[&str] = &["max_per", "strategy", "solver"];
pub const TEMPLATE_ATTRS: &[&str] = &[
    "source",
    "destination",
    "hosts",
    "check",
    "on_change",
    "timeout",
    "vars",
];
/// The keys of a template's `hosts` filter.
pub const TEMPLATE_HOSTS_KEYS: &[&str] = &["tags", "class", "owner", "state"];

// Provider blocks and `driver` names are not listed here: each provider crate exports its
// attributes, and `crate::providers::PROVIDERS` is the table the loader reads.

/// Units of the size attributes.
pub const MEMORY_UNIT: Unit = Unit::MiB;
pub const DISK_UNIT: Unit = Unit::GiB;
