//! `kloud sync template [NAME] [DIR] [--watch]`: converge `template` blocks from HostDB.
//!
//! With one argument after `template`, it is the config directory when it contains a `/` or
//! starts with `.` (`./conf`, `examples/quickstart`), otherwise a template name. Once by
//! default (exit 1 if a template failed); with `--watch`, following HostDB until interrupted
//! ([`crate::templates::follow`]). One line per template converged goes to stdout; failures
//! and reconnects go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use miette::miette;

use super::diagnostics::load_or_report;
use super::store::open_at;
use super::sync::Args;
use crate::config::locate;
use crate::hostdb::util::{format_time, now_ms};
use crate::templates::follow::{self, Event};
use crate::templates::{self, Converged, Fleet, Outcome};

/// The template name and config directory the arguments give.
fn name_and_dir(args: &Args) -> (Option<String>, PathBuf) {
    let first = args.dir.to_string_lossy().into_owned();
    if let Some(dir) = &args.template_dir {
        return (Some(first), dir.clone());
    }
    if first.contains('/') || first.starts_with('.') {
        (None, args.dir.clone())
    } else {
        (Some(first), PathBuf::from("."))
    }
}

/// Print one line per result (stdout for a converge, stderr for a failure); the number failed.
fn print(results: &[Converged], index: u64, ms: f64, all: bool) -> usize {
    let mut failed = 0;
    for (name, r) in results {
        match r {
            Ok(Outcome::Unchanged { .. }) if !all => {}
            Ok(o) => println!(
                "{} template {name}: index {index}, {o} in {ms:.0} ms",
                format_time(now_ms())
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{} template {name}: FAILED: {e}", format_time(now_ms()));
            }
        }
    }
    failed
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let (name, dir) = name_and_dir(&args);
    let mut config = load_or_report(&dir, &args.vars)?;
    if let Some(owner) = &args.owner {
        for t in config.templates.values_mut() {
            t.hosts.owner.get_or_insert_with(|| owner.clone());
        }
    }
    let chosen = templates::select(&config, name.as_deref()).map_err(|e| {
        miette!(
            code = "kloud::sync::template",
            help = "declare `template \"NAME\" { source = …, destination = … }` in the config",
            "{e}"
        )
    })?;
    let location = locate::for_config(args.hostdb.as_deref(), &config);

    if !args.watch {
        let store = open_at(&location, true)?;
        let started = std::time::Instant::now();
        let fleet = Fleet::read(&*store)
            .map_err(|e| miette!(code = "kloud::hostdb::read", "cannot read HostDB: {e}"))?;
        let results = templates::converge_these(&config, &chosen, &fleet);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let failed = print(&results, fleet.index, ms, true);
        return Ok(if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let opts = follow::Options {
        poll: args.poll,
        resync: args.resync,
        coalesce: args.coalesce,
        ..follow::Options::default()
    };
    let url = location.redacted();
    let mut first_round = true;
    follow::follow(
        &location,
        &config,
        &chosen,
        &opts,
        &stop,
        &mut |event| match event {
            Event::Connected { index, first } => {
                let what = if first { "following" } else { "reconnected to" };
                eprintln!(
                    "{} template: {what} HostDB `{url}` at index {index}",
                    format_time(now_ms())
                );
            }
            Event::Converged {
                index,
                results,
                took,
            } => {
                print(results, index, took.as_secs_f64() * 1000.0, first_round);
                first_round = false;
            }
            Event::Failed { error, retry_in } => eprintln!(
                "{} template: HostDB: {error}; retrying in {} ms",
                format_time(now_ms()),
                retry_in.as_millis()
            ),
        },
    );
    Ok(ExitCode::SUCCESS)
}
