//! `kloud validate [DIR] [--json]`: report every problem in a config directory.

use std::path::PathBuf;
use std::process::ExitCode;

use super::diagnostics::{eprint_all, parse_vars, plural};
use crate::config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Print the diagnostics as JSON on stdout (for editors and CI bots)
    #[arg(long)]
    pub json: bool,
    /// Set a variable: NAME=VALUE (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let overrides = parse_vars(&args.vars)?;
    let result = config::load(&args.dir, &overrides);
    if args.json {
        let (valid, diags) = match &result {
            Ok(_) => (true, Vec::new()),
            Err(d) => (false, d.0.iter().map(|d| d.to_json()).collect()),
        };
        let out = serde_json::json!({
            "format_version": "1.0",
            "valid": valid,
            "error_count": diags.len(),
            "diagnostics": diags,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::from(u8::from(!valid)));
    }
    match result {
        Ok(c) => {
            println!(
                "The config in {} is valid: {}, {}, {}.",
                args.dir.display(),
                plural(c.machines.len(), "machine"),
                plural(c.host_classes.len(), "host class"),
                plural(c.hosts.len(), "host"),
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            eprint_all(&diags);
            eprintln!("{} in {}", plural(diags.len(), "error"), args.dir.display());
            Ok(ExitCode::from(1))
        }
    }
}
