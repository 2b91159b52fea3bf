//! How the CLI shows the engine's events: a live bar on a terminal, plain lines otherwise.
//!
//! Host lines and the summary go to stdout; diagnostics, drift and lock trouble to stderr
//! (stdout may be a JSON or markdown plan).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use crate::apply::Outcome;
use crate::ops::{ApplyOutcome, Event, Events};
use crate::plan::Action;

/// Renders events as they come.
pub struct Lines {
    bar: Mutex<Option<indicatif::ProgressBar>>,
    terminal: bool,
}

impl Lines {
    pub fn new() -> Lines {
        Lines {
            bar: Mutex::new(None),
            terminal: std::io::stdout().is_terminal(),
        }
    }

    fn out(&self, line: &str, advance: bool) {
        match self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(b) => {
                b.println(line);
                if advance {
                    b.inc(1);
                }
            }
            None => println!("{line}"),
        }
    }

    fn err(&self, line: &str) {
        match self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn start_bar(&self, total: usize) {
        if !self.terminal || total == 0 {
            return;
        }
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} hosts, {elapsed}")
        {
            bar.set_style(style);
        }
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(bar);
        }
    }

    /// Clear the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(b) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            b.finish_and_clear();
        }
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Events for Lines {
    fn emit(&self, event: Event) {
        match event {
            Event::Drift { line } => self.err(&line),
            Event::Locked { .. } => {}
            Event::Started { total } => self.start_bar(total),
            Event::Host {
                address,
                action,
                outcome,
                took,
                machine,
                ip,
            } => self.out(
                &host_line(&address, action, &outcome, took, machine, ip),
                true,
            ),
            Event::Diagnostic {
                source,
                host,
                error,
                summary,
                detail,
            } => {
                let level = if error { "error" } else { "warning" };
                let about = host.map(|h| format!(" {h}:")).unwrap_or_default();
                let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
                self.err(&format!("{level}: {source}:{about} {summary}{detail}"));
            }
            Event::Integration {
                name,
                added,
                updated,
                removed,
            } => self.out(
                &format!("{name}: {added} added, {updated} updated, {removed} removed"),
                false,
            ),
            Event::IntegrationFailed { name, error } => self.err(&format!(
                "{name}: FAILED: {error} (run `kloud sync {name}` to retry)"
            )),
            Event::LockTrouble { error } => self.err(&format!("warning: {error}")),
            Event::Template { name, outcome } => {
                self.out(&format!("template {name}: {outcome}"), false)
            }
            Event::TemplateFailed { name, error } => self.err(&format!(
                "template {name}: FAILED: {error} (run `kloud sync template {name}` to retry)"
            )),
        }
    }
}

/// One host's line, e.g. `web-1.dc1: created on hw-1 (10.0.0.2) in 1.2s`.
pub fn host_line(
    address: &str,
    action: Action,
    outcome: &Outcome,
    took: Duration,
    machine: Option<String>,
    ip: Option<String>,
) -> String {
    let verb = match action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Delete => "destroyed",
        Action::NoOp => "unchanged",
    };
    let on = if action == Action::Delete {
        String::new()
    } else {
        format!(
            " on {} ({})",
            machine.as_deref().unwrap_or("?"),
            ip.as_deref().unwrap_or("?")
        )
    };
    match outcome {
        Outcome::Done => format!("{address}: {verb}{on} in {:.1}s", took.as_secs_f64()),
        Outcome::Failed(e) => format!("{address}: FAILED to be {verb}: {e}"),
        Outcome::Skipped => format!("{address}: skipped (interrupted)"),
    }
}

/// The closing summary of an apply; the exit status says whether it was complete.
pub fn summary(outcome: &ApplyOutcome) -> bool {
    let r = &outcome.hosts;
    println!(
        "\nApply {}: {} done, {} failed, {} skipped, {} machine record(s) synced, in {:.1}s.",
        if r.failed() == 0 && r.skipped() == 0 {
            "complete"
        } else {
            "incomplete"
        },
        outcome.done(),
        r.failed(),
        r.skipped(),
        r.machines_synced,
        outcome.took.as_secs_f64()
    );
    for (name, (_, o, _)) in &r.results {
        if let Outcome::Failed(e) = o {
            eprintln!("  {name}: {e}");
        }
    }
    if r.failed() > 0 {
        eprintln!("Failed hosts are recorded as `failed` in HostDB; the next apply retries them.");
    }
    if outcome.lock_trouble {
        eprintln!("The apply lock could not always be renewed (see the warnings above).");
    }
    outcome.complete()
}
