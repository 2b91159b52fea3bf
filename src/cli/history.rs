//! `kloud history NAME`: the recorded changes of a host or tag, oldest first.

use std::process::ExitCode;

use miette::miette;
use serde_json::Value;

use super::common::print_json;
use super::store::{open_reading, store_error, HostdbFlag};
use super::table::print_table;
use crate::hostdb::util::format_time;
use crate::hostdb::Change;

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
    let store = open_reading(args.db.hostdb.as_deref())?;
    let changes = store.history(&args.name).map_err(store_error)?;
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
