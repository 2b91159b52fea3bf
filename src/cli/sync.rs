//! `kloud sync dns|prometheus|nagios [DIR] [--watch]`: converge one integration from HostDB.
//!
//! Once by default; with `--watch`, keep converging as HostDB changes (see
//! [`crate::integrations::follow`]) until interrupted. One line per converge goes to stdout
//! (what HostDB changed, what the integration did, how long it took); provider diagnostics,
//! failures and reconnects go to stderr.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use kloud_provider_api::integration::ConvergeResponse;
use kloud_provider_api::Severity;
use miette::miette;

use super::diagnostics::load_or_report;
use super::store::open_at;
use crate::config::locate;
use crate::hostdb::util::{format_time, now_ms, parse_duration};
use crate::integrations::follow::{self, Delta, Event};
use crate::integrations::{self};
use crate::providers;

/// What `kloud sync` converges: an integration of the provider table that syncs on its own
/// (puppet pulls through `kloud enc` instead), or `template` blocks
/// (`kloud sync template [NAME] [DIR]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Integration(&'static str),
    Template,
}

impl Which {
    /// The names `kloud sync` takes, in the provider table's order, then `template`.
    fn names() -> Vec<&'static str> {
        let mut names: Vec<_> = providers::PROVIDERS
            .iter()
            .filter(|p| providers::syncable(p.name))
            .map(|p| p.name)
            .collect();
        names.push("template");
        names
    }

    fn parse(name: String) -> Self {
        match Self::names().into_iter().find(|n| *n == name) {
            Some(n) if n != "template" => Which::Integration(n),
            _ => Which::Template,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The integration to converge (`template`: the config's `template` blocks)
    #[arg(value_parser = PossibleValuesParser::new(Which::names()).map(Which::parse))]
    pub integration: Which,
    /// The config directory holding the provider block (for `template`: NAME, then DIR)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// For `template`: the config directory after a template NAME
    #[arg(value_name = "DIR")]
    pub template_dir: Option<PathBuf>,
    /// Keep converging whenever HostDB changes, until interrupted
    #[arg(long)]
    pub watch: bool,
    /// Allow deleting more than 30% of the records kloud manages
    #[arg(long)]
    pub force: bool,
    /// Use this HostDB instead of the one the config names
    #[arg(long, value_name = "URL", env = "KLOUD_HOSTDB")]
    pub hostdb: Option<String>,
    /// Only the containers of this owner (default: every container in HostDB)
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    /// With --watch: how often to read the index of a SQLite or PostgreSQL HostDB (a HostDB
    /// server is followed by blocking queries and answers at once)
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = duration)]
    pub poll: Duration,
    /// With --watch: converge this often even without changes, to repair drift
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub resync: Duration,
    /// With --watch, for templates: after a change, wait until HostDB is quiet this long
    /// (at most 1 s) so a burst of writes renders once
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = parse_duration_or_zero)]
    pub coalesce: Duration,
    /// Set a variable: NAME=VALUE (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

fn duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{s}` is not a duration such as 200ms, 5s or 5m")),
    }
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("`{s}` is not a duration such as 0, 20ms or 1s"))
}

fn now() -> String {
    format_time(now_ms())
}

/// `web-1.dc1 web-2.dc1 +3 more`, for a line that stays short.
fn names(prefix: char, list: &[String], out: &mut Vec<String>) {
    const SHOWN: usize = 3;
    for n in list.iter().take(SHOWN) {
        out.push(format!("{prefix}{n}"));
    }
    if list.len() > SHOWN {
        out.push(format!("{prefix}{} more", list.len() - SHOWN));
    }
}

fn summary(
    kind: &str,
    index: u64,
    hosts: usize,
    delta: Option<&Delta>,
    r: &ConvergeResponse,
    ms: f64,
) -> String {
    let mut changed = Vec::new();
    if let Some(d) = delta {
        names('+', &d.added, &mut changed);
        names('~', &d.changed, &mut changed);
        names('-', &d.removed, &mut changed);
    }
    let changed = if changed.is_empty() {
        String::new()
    } else {
        format!(" ({})", changed.join(" "))
    };
    format!(
        "{} {kind}: index {index}, {hosts} hosts{changed}: {} added, {} updated, {} removed in {ms:.0} ms",
        now(),
        r.added,
        r.updated,
        r.removed
    )
}

/// Print diagnostics not printed last time (a watch would repeat them on every converge).
fn print_diagnostics(kind: &str, r: &ConvergeResponse, shown: &mut BTreeSet<String>) -> usize {
    let mut now_shown = BTreeSet::new();
    let mut errors = 0;
    for d in &r.diagnostics {
        let level = match d.severity {
            Severity::Error => {
                errors += 1;
                "error"
            }
            Severity::Warning => "warning",
        };
        let line = match &d.detail {
            Some(detail) => format!("{level}: {kind}: {} ({detail})", d.summary),
            None => format!("{level}: {kind}: {}", d.summary),
        };
        if !shown.contains(&line) {
            eprintln!("{line}");
        }
        now_shown.insert(line);
    }
    *shown = now_shown;
    errors
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let Which::Integration(kind) = args.integration else {
        return super::template::run(args);
    };
    let config = load_or_report(&args.dir, &args.vars)?;
    let integration = integrations::one_provider(&config, kind).map_err(|e| {
        miette!(
            code = "kloud::sync::provider",
            help = format!("declare `provider \"{kind}\" {{ … }}` in the config"),
            "{e}"
        )
    })?;
    let location = locate::for_config(args.hostdb.as_deref(), &config);
    let owner = args.owner.as_deref();

    if !args.watch {
        let store = open_at(&location, true)?;
        let started = std::time::Instant::now();
        let index = store
            .index()
            .map_err(|e| miette!(code = "kloud::hostdb::read", "cannot read HostDB: {e}"))?;
        let (hosts, resp) = follow::converge_once(&*store, &*integration, owner, args.force)
            .map_err(|e| miette!(code = "kloud::sync::failed", "{kind}: {e}"))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        println!("{}", summary(kind, index, hosts.len(), None, &resp, ms));
        let errors = print_diagnostics(kind, &resp, &mut BTreeSet::new());
        return Ok(if errors > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // Without a handler (another one is installed) Ctrl-C still ends the process.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let opts = follow::Options {
        poll: args.poll,
        resync: args.resync,
        force: args.force,
        owner: args.owner.clone(),
        ..follow::Options::default()
    };
    let mut shown = BTreeSet::new();
    let url = location.redacted();
    follow::follow(
        &location,
        &*integration,
        &opts,
        &stop,
        &mut |event| match event {
            Event::Connected { index, first } => {
                let what = if first { "following" } else { "reconnected to" };
                eprintln!("{} {kind}: {what} HostDB `{url}` at index {index}", now());
            }
            Event::Unchanged { .. } => {}
            Event::Converged {
                index,
                hosts,
                delta,
                response,
                took,
            } => {
                let ms = took.as_secs_f64() * 1000.0;
                println!("{}", summary(kind, index, hosts, Some(delta), response, ms));
                print_diagnostics(kind, response, &mut shown);
            }
            Event::Failed { error, retry_in } => match retry_in {
                Some(d) => eprintln!(
                    "{} {kind}: {error}; retrying in {} ms",
                    now(),
                    d.as_millis()
                ),
                None => eprintln!(
                    "{} {kind}: {error}; waiting for the next HostDB change",
                    now()
                ),
            },
        },
    );
    Ok(ExitCode::SUCCESS)
}
