//! What several commands share: opening HostDB for a config, making a plan, printing it.

use std::io::IsTerminal;
use std::path::Path;

use miette::miette;

use super::diagnostics::load_or_report;
use super::store::open_for;
use super::view::Lines;
use crate::apply::Drivers;
use crate::config::Config;
use crate::hostdb::Store;
use crate::ops;
use crate::plan::{self, render, Plan};

/// Options that choose what to plan, shared by plan, apply and destroy.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanOpts {
    /// Set a variable: NAME=VALUE (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Only plan these host classes (repeatable)
    #[arg(long = "target", value_name = "CLASS")]
    pub targets: Vec<String>,
    /// Allow deleting more than 30% of the managed hosts
    #[arg(long)]
    pub force: bool,
    /// Use this HostDB instead of the one the config names
    #[arg(long, value_name = "URL", env = "KLOUD_HOSTDB")]
    pub hostdb: Option<String>,
    /// First ask every machine what it really runs (as `kloud refresh` does), so containers that
    /// vanished behind kloud's back are planned again
    #[arg(long)]
    pub refresh: bool,
    /// Destroy and create this host again (its FQDN; repeatable): the only way an existing
    /// container is replaced without a config change
    #[arg(long = "replace", value_name = "FQDN")]
    pub replace: Vec<String>,
    /// Place new hosts with an exact search (small plans; within a budget, falling back to the
    /// heuristic with a note), as `placement { solver = "exact" }` does
    #[arg(long)]
    pub exact: bool,
}

/// Load the config, snapshot HostDB and diff.
pub fn make_plan(
    dir: &Path,
    opts: &PlanOpts,
    destroy: bool,
) -> miette::Result<(Config, Box<dyn Store>, Plan)> {
    let config = load_or_report(dir, &opts.vars)?;
    let store = open_for(&config, opts.hostdb.as_deref())?;
    let req = ops::PlanRequest {
        destroy,
        targets: opts.targets.clone(),
        force: opts.force,
        refresh: opts.refresh,
        replace: opts.replace.clone(),
        exact: opts.exact,
    };
    let plan = ops::plan(
        &config,
        store.as_ref(),
        &Drivers::for_config(&config),
        &req,
        &Lines::new(),
    )
    .map_err(miette::Report::from)?;
    Ok((config, store, plan))
}

/// Whether to colour output: a terminal, and `NO_COLOR` unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Print a plan for people.
pub fn print_human(plan: &Plan, compact: bool) {
    print!(
        "{}",
        render::human(
            plan,
            render::Style {
                colour: colour(),
                compact,
            }
        )
    );
}

/// Print a value as pretty JSON, streamed to stdout: a plan of 100,000 hosts is never held as
/// one string.
pub fn print_json(value: &impl serde::Serialize) -> miette::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| miette!("cannot write JSON: {e}"))?;
    writeln!(out)
        .and_then(|_| out.flush())
        .map_err(|e| miette!("cannot write JSON: {e}"))
}

/// Save a plan to a file (JSON; it holds no secrets: provider settings are not part of a plan).
pub fn save_plan(plan: &Plan, path: &Path) -> miette::Result<()> {
    // 0600 from the start, through a temp file created new (never a planted symlink).
    let body = serde_json::to_vec_pretty(plan)
        .map_err(|e| miette!(code = "kloud::plan::save", "cannot encode the plan: {e}"))?;
    kloud_provider_api::integration::write_atomically_with_mode(path, &body, Some(0o600)).map_err(
        |e| {
            miette!(
                code = "kloud::plan::save",
                "cannot write `{}`: {e}",
                path.display()
            )
        },
    )
}

/// Read a saved plan.
pub fn read_plan(path: &Path) -> miette::Result<Plan> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        miette!(
            code = "kloud::plan::read",
            "cannot read `{}`: {e}",
            path.display()
        )
    })?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        miette!(
            code = "kloud::plan::read",
            help = "make a plan with `kloud plan --out FILE`",
            "`{}` is not a kloud plan: {e}",
            path.display()
        )
    })?;
    if plan.format_version != plan::FORMAT_VERSION {
        return Err(miette!(
            code = "kloud::plan::version",
            "`{}` has plan format {}, this kloud reads {}",
            path.display(),
            plan.format_version,
            plan::FORMAT_VERSION
        ));
    }
    Ok(plan)
}
