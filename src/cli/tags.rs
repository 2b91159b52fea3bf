//! `kloud tags`: list tags, show one with its members, and tag or untag hosts.

use std::process::ExitCode;

use miette::{miette, IntoDiagnostic};
use serde_json::{json, Value};

use super::common::print_json;
use super::hosts::print_map;
use super::store::{open_reading, store_error, HostdbFlag};
use super::table::cli_actor;
use super::table::{key_value, print_table};
use crate::hostdb::{Expect, Tag, Write};

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
    let store = open_reading(args.db.hostdb.as_deref())?;
    match args.command.unwrap_or(TagsCommand::List) {
        TagsCommand::List => {
            let tags = store.list_tags().map_err(store_error)?;
            if args.json {
                print_json(&tags)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = Vec::new();
            for t in &tags {
                let members = store.tag_members(&t.name).map_err(store_error)?;
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
            let tag = store.get_tag(&name).map_err(store_error)?;
            let members = store.tag_members(&name).map_err(store_error)?;
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
                .map_err(store_error)?;
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
                .map_err(store_error)?;
            println!("tag `{name}` deleted at index {index}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
