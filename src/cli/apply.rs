//! `kloud apply`, `destroy`, `refresh`, `import` and `force-unlock`: changing infrastructure.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use miette::miette;

use super::common::{make_plan, print_human, read_plan, PlanOpts};
use super::diagnostics::load_or_report;
use super::store::open_for;
use super::view::{self, Lines};
use crate::apply::{self, Drivers};
use crate::ops;
use crate::plan::Plan;

/// Set by Ctrl-C: apply starts no new host and finishes those in flight.
static CANCEL: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A config directory (plan and apply), or a plan file saved with `kloud plan --out`
    #[arg(default_value = ".")]
    pub path: PathBuf,
    #[command(flatten)]
    pub plan: PlanOpts,
    /// Apply without asking for confirmation
    #[arg(long)]
    pub auto_approve: bool,
    /// How many hosts to work on at once
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    /// Apply even when some hosts cannot be placed (they are left out)
    #[arg(long)]
    pub allow_partial: bool,
}

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    /// The config directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub plan: PlanOpts,
    #[arg(long)]
    pub auto_approve: bool,
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    if args.path.is_file() {
        let plan = read_plan(&args.path)?;
        let dir = plan
            .config
            .as_ref()
            .map(|c| PathBuf::from(&c.dir))
            .ok_or_else(|| miette!("the plan file does not say which config it was made from"))?;
        let config = load_or_report(&dir, &args.plan.vars)?;
        let store = open_for(&config, args.plan.hostdb.as_deref())?;
        // A saved plan was reviewed already: apply it without asking again.
        return execute(&plan, &config, store.as_ref(), args.parallelism);
    }
    let (config, store, plan) = make_plan(&args.path, &args.plan, false)?;
    confirm_and_execute(
        &plan,
        &config,
        store.as_ref(),
        args.auto_approve,
        args.allow_partial,
        args.parallelism,
    )
}

pub fn run_destroy(args: DestroyArgs) -> miette::Result<ExitCode> {
    let (config, store, plan) = make_plan(&args.dir, &args.plan, true)?;
    confirm_and_execute(
        &plan,
        &config,
        store.as_ref(),
        args.auto_approve,
        false,
        args.parallelism,
    )
}

fn confirm_and_execute(
    plan: &Plan,
    config: &crate::config::Config,
    store: &dyn crate::hostdb::Store,
    auto_approve: bool,
    allow_partial: bool,
    parallelism: usize,
) -> miette::Result<ExitCode> {
    print_human(plan, plan.changes.len() > 50);
    ops::apply::check_placed(plan, allow_partial)?;
    if !plan.has_changes() {
        return Ok(ExitCode::SUCCESS);
    }
    if !auto_approve && !confirmed()? {
        println!("Apply cancelled.");
        return Ok(ExitCode::from(1));
    }
    execute(plan, config, store, parallelism)
}

/// Ask on the terminal; only `yes` goes ahead.
fn confirmed() -> miette::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(miette!(
            code = "kloud::apply::not_approved",
            help = "pass --auto-approve, or apply a reviewed plan file",
            "refusing to apply without confirmation: standard input is not a terminal"
        ));
    }
    print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(answer.trim() == "yes")
}

fn execute(
    plan: &Plan,
    config: &crate::config::Config,
    store: &dyn crate::hostdb::Store,
    parallelism: usize,
) -> miette::Result<ExitCode> {
    let req = ops::ApplyRequest {
        parallelism,
        actor: format!(
            "{}@{} (pid {})",
            std::env::var("USER").unwrap_or_else(|_| "root".into()),
            hostname(),
            std::process::id()
        ),
        cancel: CANCEL.clone(),
        lock_ttl: apply::TTL,
    };
    let _ = ctrlc::set_handler(|| {
        if CANCEL.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now; the next apply repairs what is in flight");
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: finishing the hosts in flight, starting no new ones (Ctrl-C again to exit now)");
    });
    let view = Lines::new();
    let outcome = ops::apply(
        plan,
        config,
        store,
        &Drivers::for_config(config),
        &req,
        &view,
    );
    view.finish();
    Ok(if view::summary(&outcome?) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[derive(Debug, clap::Args)]
pub struct RefreshArgs {
    /// The config directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_name = "URL", env = "KLOUD_HOSTDB")]
    pub hostdb: Option<String>,
}

pub fn run_refresh(args: RefreshArgs) -> miette::Result<ExitCode> {
    let config = load_or_report(&args.dir, &[])?;
    let store = open_for(&config, args.hostdb.as_deref())?;
    let drivers = Drivers::for_config(&config);
    let drift = apply::refresh::refresh(&config, store.as_ref(), &drivers)
        .map_err(|e| miette!(code = "kloud::refresh::failed", "{e}"))?;
    for line in drift.lines() {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The FQDN of the container to adopt; the config must declare a host of that name
    pub name: String,
    /// The config directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_name = "URL", env = "KLOUD_HOSTDB")]
    pub hostdb: Option<String>,
}

pub fn run_import(args: ImportArgs) -> miette::Result<ExitCode> {
    let config = load_or_report(&args.dir, &[])?;
    let store = open_for(&config, args.hostdb.as_deref())?;
    let drivers = Drivers::for_config(&config);
    let imported =
        apply::refresh::import(&config, store.as_ref(), &drivers, &args.name).map_err(|e| {
            miette!(
                code = "kloud::import::failed",
                help = "run `kloud refresh` to list orphans",
                "{e}"
            )
        })?;
    println!("{imported}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct ForceUnlockArgs {
    /// The lock id shown by the apply that holds it
    pub id: String,
    /// The config directory (to find HostDB)
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_name = "URL", env = "KLOUD_HOSTDB")]
    pub hostdb: Option<String>,
}

pub fn run_force_unlock(args: ForceUnlockArgs) -> miette::Result<ExitCode> {
    let config = load_or_report(&args.dir, &[])?;
    let store = open_for(&config, args.hostdb.as_deref())?;
    store
        .lock_force_release(&args.id)
        .map_err(|e| report_err(&e.to_string()))?;
    println!("Released lock {}.", args.id);
    Ok(ExitCode::SUCCESS)
}

fn report_err(msg: &str) -> miette::Report {
    miette!(code = "kloud::lock::force_unlock", "{msg}")
}
