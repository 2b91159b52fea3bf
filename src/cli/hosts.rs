//! `kloud hosts`, `kloud tags` and `kloud history`: reading (and tagging) HostDB for people.
//!
//! HostDB is found through `--hostdb URL`, else `KLOUD_HOSTDB`, else the config in the current
//! directory (see `hostdb::url`). Human output is an aligned table; `--json` prints JSON.

use std::process::ExitCode;

use miette::{miette, IntoDiagnostic};
use serde_json::{json, Map, Value};

use super::common::print_json;
use crate::hostdb::url::resolve;
use crate::hostdb::util::format_time;
use crate::hostdb::{Actor, Change, Expect, Host, HostQuery, Kind, Store, StoreError, Tag, Write};

/// Render a store error for a person.
pub(crate) fn report(e: StoreError) -> miette::Report {
    let help = match &e {
        StoreError::Unauthorized(_) => {
            "set KLOUD_HOSTDB_TOKEN to a token from `kloud hostdb token create`"
        }
        StoreError::Forbidden(_) => "this needs a token with a higher role",
        StoreError::Unavailable(_) => "check that the HostDB server or database is up, then retry",
        StoreError::Conflict { .. } => "someone else changed it meanwhile; read it again and retry",
        StoreError::Url { .. } => {
            "HostDB URLs look like `sqlite:PATH`, `postgres://…` or `http://HOST:PORT`"
        }
        _ => "",
    };
    if help.is_empty() {
        miette!(code = format!("kloud::hostdb::{}", e.code()), "{e}")
    } else {
        miette!(
            code = format!("kloud::hostdb::{}", e.code()),
            help = help,
            "{e}"
        )
    }
}

/// Open HostDB for a reading command; a missing SQLite file is an error, not a new database.
pub(crate) fn open_store(flag: Option<&str>) -> miette::Result<Box<dyn Store>> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    let loc = resolve(flag, &cwd).map_err(report)?;
    if let Some(path) = loc.sqlite_path() {
        if !path.exists() {
            return Err(miette!(
                code = "kloud::hostdb::no_database",
                help = "run in a config directory, or pass `--hostdb URL` or set KLOUD_HOSTDB",
                "no HostDB at `{}` (from {})",
                path.display(),
                loc.source
            ));
        }
    }
    crate::hostdb::open(&loc.url, &loc.base_dir).map_err(report)
}

/// Who CLI writes are recorded for.
fn cli_actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    Actor {
        name: format!("{user} (kloud cli)"),
        message: None,
    }
}

/// Print rows as a table with a header, columns padded to their widest cell.
pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                let pad = widths[i] - c.chars().count() + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn dash(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".to_string())
}

fn size(h: &Host) -> String {
    let mut parts = Vec::new();
    if let Some(c) = h.cpu {
        parts.push(format!("{c}cpu"));
    }
    if let Some(m) = h.memory_mib {
        parts.push(if m % 1024 == 0 {
            format!("{}GiB", m / 1024)
        } else {
            format!("{m}MiB")
        });
    }
    if let Some(d) = h.disk_gib {
        parts.push(format!("{d}GiB disk"));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(" ")
    }
}

/// Parse `K=V`.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("expected `machine` or `container`, got `{s}`"))
}

#[derive(Debug, clap::Args)]
pub struct HostdbFlag {
    /// HostDB URL (`sqlite:PATH`, `postgres://…`, `http://HOST:PORT`); default from
    /// KLOUD_HOSTDB or the config in the current directory
    #[arg(long, global = true, value_name = "URL")]
    pub hostdb: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub command: Option<HostsCommand>,
    /// Only hosts with this tag (directly or through a nested tag); repeat for all of several
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only hosts whose own property KEY has this value; repeat for all of several
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = key_value)]
    pub properties: Vec<(String, String)>,
    /// Only machines or only containers
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<Kind>,
    /// Only hosts of this class
    #[arg(long)]
    pub class: Option<String>,
    /// Only hosts owned by this config
    #[arg(long)]
    pub owner: Option<String>,
    /// Only containers on this machine
    #[arg(long)]
    pub machine: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: HostdbFlag,
}

#[derive(Debug, clap::Subcommand)]
pub enum HostsCommand {
    /// Show one host with its derived config
    Show {
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run_hosts(args: HostsArgs) -> miette::Result<ExitCode> {
    let store = open_store(args.db.hostdb.as_deref())?;
    if let Some(HostsCommand::Show { name, json }) = args.command {
        return show_host(&*store, &name, json);
    }
    let q = HostQuery {
        tags: args.tags,
        properties: args.properties,
        kind: args.kind,
        class: args.class,
        owner: args.owner,
        machine: args.machine,
        after: None,
        limit: None,
    };
    let hosts = store.all_hosts(&q).map_err(report)?;
    if args.json {
        print_json(&hosts)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.kind.as_str().to_string(),
                dash(&h.class),
                crate::apply::records::state_cell(h),
                dash(&h.machine),
                dash(&h.ip),
                size(h),
                if h.tags.is_empty() {
                    "-".to_string()
                } else {
                    h.tags.join(",")
                },
            ]
        })
        .collect();
    print_table(
        &[
            "NAME", "KIND", "CLASS", "STATE", "MACHINE", "IP", "SIZE", "TAGS",
        ],
        &rows,
    );
    eprintln!("{} host(s)", hosts.len());
    Ok(ExitCode::SUCCESS)
}

fn show_host(store: &dyn Store, name: &str, json: bool) -> miette::Result<ExitCode> {
    let host = store.get_host(name).map_err(report)?.ok_or_else(|| {
        miette!(
            code = "kloud::hostdb::not_found",
            "no host `{name}` in HostDB"
        )
    })?;
    let config = store
        .derived_config(name)
        .map_err(report)?
        .unwrap_or_default();
    if json {
        print_json(&json!({ "host": host, "config": config }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows: Vec<(&str, String)> = vec![
        ("name", host.name.clone()),
        ("kind", host.kind.as_str().to_string()),
    ];
    let opt = |s: &Option<String>| s.clone();
    for (k, v) in [
        ("class", opt(&host.class)),
        ("owner", opt(&host.owner)),
        ("state", host.state.map(|s| s.as_str().to_string())),
        ("machine", opt(&host.machine)),
        ("ip", opt(&host.ip)),
        ("image", opt(&host.image)),
        ("driver", opt(&host.driver)),
        ("connect", opt(&host.connect)),
        ("driver id", opt(&host.driver_id)),
    ] {
        if let Some(v) = v {
            rows.push((k, v));
        }
    }
    if host.cpu.is_some() || host.memory_mib.is_some() || host.disk_gib.is_some() {
        rows.push(("size", size(&host)));
    }
    if !host.tags.is_empty() {
        rows.push(("tags", host.tags.join(", ")));
    }
    if !host.roles.is_empty() {
        rows.push(("roles", host.roles.join(", ")));
    }
    if !host.labels.is_empty() {
        let labels: Vec<String> = host
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push(("labels", labels.join(", ")));
    }
    rows.push((
        "index",
        format!(
            "created {}, modified {}",
            host.created_index, host.modified_index
        ),
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows {
        println!("{k:width$}  {v}");
    }
    print_map("properties", &host.properties)?;
    print_map("derived config", &config)?;
    Ok(ExitCode::SUCCESS)
}

fn print_map(title: &str, map: &Map<String, Value>) -> miette::Result<()> {
    println!();
    if map.is_empty() {
        println!("{title}: (none)");
        return Ok(());
    }
    println!("{title}:");
    let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
    for (k, v) in map {
        let v = serde_json::to_string(v).into_diagnostic()?;
        println!("  {k:width$}  {v}");
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TagsArgs {
    #[command(subcommand)]
    pub command: Option<TagsCommand>,
    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub db: HostdbFlag,
}

#[derive(Debug, clap::Subcommand)]
pub enum TagsCommand {
    /// List every tag (the default)
    List,
    /// Show a tag: its properties, parents and members
    Show { name: String },
    /// Create or replace a tag
    Set {
        name: String,
        /// A property, KEY=VALUE; VALUE is JSON if it parses as JSON, else a string
        #[arg(long = "property", value_name = "KEY=VALUE", value_parser = key_value)]
        properties: Vec<(String, String)>,
        /// A tag this tag is nested in (its members inherit its properties)
        #[arg(long = "parent", value_name = "TAG")]
        parents: Vec<String>,
    },
    /// Delete a tag (hosts keep the membership; the tag just has no properties)
    Delete { name: String },
}

pub fn run_tags(args: TagsArgs) -> miette::Result<ExitCode> {
    let store = open_store(args.db.hostdb.as_deref())?;
    match args.command.unwrap_or(TagsCommand::List) {
        TagsCommand::List => {
            let tags = store.list_tags().map_err(report)?;
            if args.json {
                print_json(&tags)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = Vec::new();
            for t in &tags {
                let members = store.tag_members(&t.name).map_err(report)?;
                rows.push(vec![
                    t.name.clone(),
                    members.hosts.len().to_string(),
                    if t.tags.is_empty() {
                        "-".to_string()
                    } else {
                        t.tags.join(",")
                    },
                    serde_json::to_string(&t.properties).into_diagnostic()?,
                ]);
            }
            print_table(&["TAG", "HOSTS", "PARENTS", "PROPERTIES"], &rows);
        }
        TagsCommand::Show { name } => {
            let tag = store.get_tag(&name).map_err(report)?;
            let members = store.tag_members(&name).map_err(report)?;
            if tag.is_none() && members.hosts.is_empty() && members.tags.is_empty() {
                return Err(miette!(
                    code = "kloud::hostdb::not_found",
                    "no tag `{name}` in HostDB"
                ));
            }
            if args.json {
                print_json(&json!({ "tag": tag, "members": members }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let tag = tag.unwrap_or_else(|| Tag::new(&name));
            println!("tag      {}", tag.name);
            if tag.created_index == 0 {
                println!("recorded no (only referenced by members)");
            }
            println!(
                "parents  {}",
                if tag.tags.is_empty() {
                    "-".to_string()
                } else {
                    tag.tags.join(", ")
                }
            );
            println!(
                "tags     {}",
                if members.tags.is_empty() {
                    "-".to_string()
                } else {
                    members.tags.join(", ")
                }
            );
            println!("hosts    {}", members.hosts.len());
            for h in &members.hosts {
                println!("  {h}");
            }
            print_map("properties", &tag.properties)?;
        }
        TagsCommand::Set {
            name,
            properties,
            parents,
        } => {
            let mut tag = Tag::new(&name);
            for (k, v) in properties {
                let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
                tag.properties.insert(k, value);
            }
            tag.tags = parents;
            let index = store
                .put_tag(tag, Expect::Any, &cli_actor())
                .map_err(report)?;
            println!("tag `{name}` written at index {index}");
        }
        TagsCommand::Delete { name } => {
            let index = store
                .write(
                    vec![Write::DeleteTag {
                        name: name.clone(),
                        expect: Expect::Any,
                    }],
                    &cli_actor(),
                )
                .map_err(report)?;
            println!("tag `{name}` deleted at index {index}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// A host or tag name
    pub name: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: HostdbFlag,
}

/// What a change did, and to which top-level fields.
fn summarize(c: &Change) -> (String, String) {
    match (&c.before, &c.after) {
        (None, Some(_)) => ("create".to_string(), String::new()),
        (Some(_), None) => ("delete".to_string(), String::new()),
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let ignore = ["modified_index", "created_index"];
            let mut keys: Vec<&str> = b
                .keys()
                .chain(a.keys())
                .map(String::as_str)
                .filter(|k| !ignore.contains(k) && b.get(*k) != a.get(*k))
                .collect();
            keys.sort();
            keys.dedup();
            ("update".to_string(), keys.join(","))
        }
        _ => ("update".to_string(), String::new()),
    }
}

pub fn run_history(args: HistoryArgs) -> miette::Result<ExitCode> {
    let store = open_store(args.db.hostdb.as_deref())?;
    let changes = store.history(&args.name).map_err(report)?;
    if args.json {
        print_json(&changes)?;
        return Ok(ExitCode::SUCCESS);
    }
    if changes.is_empty() {
        return Err(miette!(
            code = "kloud::hostdb::not_found",
            "no recorded history for `{}`",
            args.name
        ));
    }
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            let (action, fields) = summarize(c);
            vec![
                c.index.to_string(),
                format_time(c.time_ms),
                c.kind.as_str().to_string(),
                action,
                if fields.is_empty() {
                    "-".to_string()
                } else {
                    fields
                },
                c.actor.clone(),
                c.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        &[
            "INDEX", "TIME", "KIND", "ACTION", "FIELDS", "ACTOR", "MESSAGE",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
