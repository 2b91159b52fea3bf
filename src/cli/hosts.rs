//! `kloud hosts`: list hosts recorded in HostDB, or show one with its derived config.
//!
//! HostDB is found as every command finds it (`config::locate`). Human output is an aligned
//! table; `--json` prints JSON.

use std::process::ExitCode;

use miette::{miette, IntoDiagnostic};
use serde_json::{json, Map, Value};

use super::common::print_json;
use super::store::{open_reading, store_error, HostdbFlag};
use super::table::{dash, key_value, parse_kind, print_table, size};
use crate::hostdb::{HostQuery, Kind, Store};

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
    let store = open_reading(args.db.hostdb.as_deref())?;
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
    let hosts = store.all_hosts(&q).map_err(store_error)?;
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
    let host = store.get_host(name).map_err(store_error)?.ok_or_else(|| {
        miette!(
            code = "kloud::hostdb::not_found",
            "no host `{name}` in HostDB"
        )
    })?;
    let config = store
        .derived_config(name)
        .map_err(store_error)?
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

pub fn print_map(title: &str, map: &Map<String, Value>) -> miette::Result<()> {
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
