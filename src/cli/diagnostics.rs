//! Rendering config diagnostics at the edge: miette reports for people, JSON for tools.

use std::process::ExitCode;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceCode};

use crate::config::{self, Config, Diagnostic, Diagnostics, VarOverrides};

/// A config diagnostic as a miette report.
#[derive(Debug)]
pub struct Rendered {
    diag: Diagnostic,
    source: Option<NamedSource<Arc<str>>>,
}

impl Rendered {
    pub fn new(diag: Diagnostic) -> Self {
        let source = diag.location.as_ref().map(|l| {
            NamedSource::new(l.file.name.clone(), Arc::clone(&l.file.text)).with_language("hcl")
        });
        Self { diag, source }
    }
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let loc = self.diag.location.as_ref()?;
        let len = loc.span.end.saturating_sub(loc.span.start);
        let label = (!self.diag.label.is_empty()).then(|| self.diag.label.clone());
        Some(Box::new(std::iter::once(LabeledSpan::new(
            label,
            loc.span.start,
            len,
        ))))
    }
}

/// Print every diagnostic to stderr as a miette report.
pub fn eprint_all(diags: &Diagnostics) {
    for d in &diags.0 {
        eprintln!("{:?}", miette::Report::new(Rendered::new(d.clone())));
    }
}

/// Parse `NAME=VALUE` pairs from `--var`.
pub fn parse_vars(vars: &[String]) -> miette::Result<VarOverrides> {
    let mut out = VarOverrides::new();
    for v in vars {
        let Some((name, value)) = v.split_once('=') else {
            return Err(miette::miette!(
                code = "kloud::cli::bad_var",
                help = "write it as --var NAME=VALUE",
                "`--var {v}` has no `=`"
            ));
        };
        out.insert(name.trim().to_string(), value.to_string());
    }
    Ok(out)
}

/// A failure whose diagnostics have been printed already (several, each with its source, as
/// no single report can hold them): `main` prints nothing more and exits with `code`.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("the problems were reported above (exit code {code})")]
#[diagnostic(code(kloud::cli::reported))]
pub struct Reported {
    pub code: u8,
}

impl Reported {
    /// The exit code of a failure that is already reported; `None` for any other error.
    pub fn exit_code(report: &miette::Report) -> Option<ExitCode> {
        report
            .downcast_ref::<Reported>()
            .map(|r| ExitCode::from(r.code))
    }
}

/// Load a config for a command; on failure print every diagnostic and a count, and return
/// [`Reported`] (exit code 1).
pub fn load_or_report(dir: &std::path::Path, vars: &[String]) -> miette::Result<Config> {
    let overrides = parse_vars(vars)?;
    config::load(dir, &overrides).map_err(|diags| {
        eprint_all(&diags);
        eprintln!("{} in {}", plural(diags.len(), "error"), dir.display());
        Reported { code: 1 }.into()
    })
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else if word.ends_with('s') {
        format!("{n} {word}es")
    } else {
        format!("{n} {word}s")
    }
}
