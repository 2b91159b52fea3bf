//! `kloud fmt [--check] [--diff] [DIR]`: rewrite config files in the canonical layout.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::{miette, IntoDiagnostic, WrapErr};

use crate::config::fmt::{format, FmtError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config directory (or a single .hcl file)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Change nothing; list the files that are not formatted and exit 1 if there are any
    #[arg(long)]
    pub check: bool,
    /// Show the changes as a unified diff
    #[arg(long)]
    pub diff: bool,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let files = if args.dir.is_file() {
        vec![args.dir.clone()]
    } else {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read `{}`", args.dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "hcl") && p.is_file())
            .collect();
        files.sort();
        files
    };
    let mut unformatted = 0;
    let mut failed = 0;
    for path in &files {
        let text = std::fs::read_to_string(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read `{}`", path.display()))?;
        let formatted = match format(&text) {
            Ok(f) => f,
            Err(FmtError::Syntax {
                line,
                column,
                message,
            }) => {
                eprintln!("{}:{line}:{column}: syntax error: {message} (not formatted; `kloud validate` shows more)", path.display());
                failed += 1;
                continue;
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        unformatted += 1;
        println!("{}", path.display());
        if args.diff {
            let diff = similar::TextDiff::from_lines(&text, &formatted);
            print!(
                "{}",
                diff.unified_diff()
                    .header(&path.display().to_string(), &path.display().to_string())
            );
        }
        if !args.check {
            write_atomically(path, &formatted)?;
        }
    }
    if failed > 0 {
        return Err(miette!(
            code = "kloud::fmt::failed",
            help = "fix the syntax errors above, then run `kloud fmt` again",
            "{failed} file(s) could not be formatted"
        ));
    }
    Ok(if args.check && unformatted > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Replace a file without ever leaving it half-written.
fn write_atomically(path: &std::path::Path, text: &str) -> miette::Result<()> {
    let tmp = path.with_extension("hcl.kloud-fmt.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write `{}`", path.display()))
}
