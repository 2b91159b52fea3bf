//! What the engine reports while it works: typed events, rendered by whoever drives it.
//!
//! The CLI turns them into a progress bar or plain lines (`cli::view`); a server can stream
//! them as JSON. The engine never prints. Every diagnostic a driver or an integration returns
//! arrives here as [`Event::Diagnostic`], so nothing a provider says is dropped.

use std::sync::Mutex;
use std::time::Duration;

use kloud_provider_api::diag::{Diagnostic, Severity};
use serde::Serialize;

use crate::apply::Outcome;
use crate::plan::Action;

/// One thing that happened during plan or apply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A line of `refresh` drift (what a machine really runs against HostDB).
    Drift { line: String },
    /// The apply lock was taken.
    Locked { lock_id: String },
    /// Work on the hosts starts: `total` changes will be reported.
    Started { total: usize },
    /// One host is done (or failed, or was skipped).
    Host {
        address: String,
        action: Action,
        outcome: Outcome,
        #[serde(with = "millis")]
        took: Duration,
        machine: Option<String>,
        ip: Option<String>,
    },
    /// A provider said something: a warning, or an error that did not fail the step.
    Diagnostic {
        /// The provider (`lxc`, `dns`, …).
        source: String,
        /// The host it concerns, if any.
        host: Option<String>,
        error: bool,
        summary: String,
        detail: Option<String>,
    },
    /// An integration converged.
    Integration {
        name: String,
        added: usize,
        updated: usize,
        removed: usize,
    },
    /// An integration could not converge.
    IntegrationFailed { name: String, error: String },
    /// A template was rendered (`outcome` says whether the file changed).
    Template { name: String, outcome: String },
    /// A template could not be rendered, checked or written.
    TemplateFailed { name: String, error: String },
    /// The lease could not be renewed; the engine stops starting new hosts.
    LockTrouble { error: String },
}

impl Event {
    /// A provider diagnostic as an event.
    pub fn diagnostic(source: &str, host: Option<&str>, d: &Diagnostic) -> Event {
        Event::Diagnostic {
            source: source.to_string(),
            host: host.map(str::to_string),
            error: d.severity == Severity::Error,
            summary: d.summary.clone(),
            detail: d.detail.clone(),
        }
    }
}

/// Whoever listens to the engine. Called from worker threads.
pub trait Events: Sync {
    fn emit(&self, event: Event);
}

/// Listens to nothing.
pub struct Silent;

impl Events for Silent {
    fn emit(&self, _: Event) {}
}

/// Keeps every event, in order (tests, and servers that answer once the work is done).
#[derive(Default)]
pub struct Recorded(Mutex<Vec<Event>>);

impl Recorded {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Events for Recorded {
    fn emit(&self, event: Event) {
        if let Ok(mut e) = self.0.lock() {
            e.push(event);
        }
    }
}

impl<F: Fn(Event) + Sync> Events for F {
    fn emit(&self, event: Event) {
        self(event)
    }
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
