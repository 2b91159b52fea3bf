//! `kloud show [--json] FILE`: show a saved plan.

use std::path::PathBuf;
use std::process::ExitCode;

use super::common::{print_human, print_json, read_plan};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A plan saved with `kloud plan --out FILE`
    pub file: PathBuf,
    /// Print the plan as JSON
    #[arg(long)]
    pub json: bool,
    /// One line per change
    #[arg(long)]
    pub compact: bool,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let plan = read_plan(&args.file)?;
    if args.json {
        print_json(&plan)?;
    } else {
        print_human(&plan, args.compact);
    }
    Ok(ExitCode::SUCCESS)
}
