//! `kloud plan [DIR]`: show what apply would change.

use std::path::PathBuf;
use std::process::ExitCode;

use super::common::{make_plan, print_human, print_json, save_plan, PlanOpts};
use crate::plan::render;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub plan: PlanOpts,
    /// Print the plan as JSON (same as --format json)
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// One line per change
    #[arg(long)]
    pub compact: bool,
    /// Save the plan to FILE for `kloud apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan the deletion of every host the config manages
    #[arg(long)]
    pub destroy: bool,
    /// Succeed even when some hosts cannot be placed
    #[arg(long)]
    pub allow_partial: bool,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let (_config, _store, plan) = make_plan(&args.dir, &args.plan, args.destroy)?;
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Human => print_human(&plan, args.compact),
        Format::Json => print_json(&plan)?,
        Format::Markdown => print!("{}", render::markdown(&plan)),
    }
    if let Some(out) = &args.out {
        save_plan(&plan, out)?;
        if format == Format::Human {
            println!(
                "\nSaved the plan to {}; apply it with `kloud apply {}`.",
                out.display(),
                out.display()
            );
        }
    }
    if !plan.unplaced.is_empty() && !args.allow_partial {
        eprintln!(
            "Error: {} host(s) cannot be placed (see above); add machines, relax the rules, or pass --allow-partial",
            plan.unplaced.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
