//! Configuration diagnostics: what went wrong, where (file, line, column), and a way out.
//!
//! The loader collects every problem it finds into [`Diagnostics`] instead of stopping at the
//! first, so an operator fixes a whole directory in one pass. Each [`Diagnostic`] has a stable
//! `code` (`kloud::config::unknown_attribute`, …) that editors, CI bots and our snapshot tests key
//! on. Rendering (miette, JSON) lives in `src/cli`; here they are plain data.

use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

/// One source file of a config directory.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as shown to the user (relative to the working directory when possible).
    pub name: String,
    pub text: Arc<str>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// Byte offset of a 1-based line and column (as parser errors report them).
    pub fn offset_of(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(col.saturating_sub(1))
            .map_or(self.text.len(), |(i, _)| start + i)
    }
}

/// Where a diagnostic points.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: Arc<SourceFile>,
    pub span: Range<usize>,
}

/// One problem found in a config.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: &'static str,
    pub message: String,
    /// The text shown under the offending source.
    pub label: String,
    pub help: Option<String>,
    pub location: Option<Location>,
}

impl Diagnostic {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            label: String::new(),
            help: None,
            location: None,
        }
    }

    pub fn at(mut self, file: &Arc<SourceFile>, span: Range<usize>) -> Self {
        self.location = Some(Location {
            file: Arc::clone(file),
            span,
        });
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:col` of the start of the span, if any.
    pub fn position(&self) -> Option<(String, usize, usize)> {
        self.location.as_ref().map(|l| {
            let (line, col) = l.file.line_col(l.span.start);
            (l.file.name.clone(), line, col)
        })
    }

    /// The JSON shape printed by `kloud validate --json`.
    pub fn to_json(&self) -> JsonDiagnostic {
        let (file, start, end) = match &self.location {
            Some(l) => {
                let (sl, sc) = l.file.line_col(l.span.start);
                let (el, ec) = l.file.line_col(l.span.end);
                (
                    Some(l.file.name.clone()),
                    Some(JsonPos {
                        line: sl,
                        column: sc,
                    }),
                    Some(JsonPos {
                        line: el,
                        column: ec,
                    }),
                )
            }
            None => (None, None, None),
        };
        JsonDiagnostic {
            severity: "error",
            code: self.code,
            message: self.message.clone(),
            label: (!self.label.is_empty()).then(|| self.label.clone()),
            help: self.help.clone(),
            file,
            start,
            end,
        }
    }
}

/// A line/column pair, both 1-based.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JsonPos {
    pub line: usize,
    pub column: usize,
}

/// A diagnostic as JSON, for editors and CI bots.
#[derive(Debug, Clone, Serialize)]
pub struct JsonDiagnostic {
    pub severity: &'static str,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    pub file: Option<String>,
    pub start: Option<JsonPos>,
    pub end: Option<JsonPos>,
}

/// Every problem found in one load, in source order.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Order by file, then position, then code, so output is stable whatever order checks ran in.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            let ka = a
                .location
                .as_ref()
                .map(|l| (l.file.name.clone(), l.span.start));
            let kb = b
                .location
                .as_ref()
                .map(|l| (l.file.name.clone(), l.span.start));
            ka.cmp(&kb)
                .then(a.code.cmp(b.code))
                .then(a.message.cmp(&b.message))
        });
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.0 {
            match d.position() {
                Some((file, line, col)) => {
                    writeln!(f, "{file}:{line}:{col}: {} [{}]", d.message, d.code)?
                }
                None => writeln!(f, "{} [{}]", d.message, d.code)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest of `candidates` to `name`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let f = SourceFile::new("a.hcl", "ab\nçd = 1\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        assert_eq!(f.line_col(6), (2, 3)); // after the two-byte ç and `d`
        assert_eq!(f.offset_of(2, 3), 6);
    }

    #[test]
    fn suggestions_only_for_near_names() {
        assert_eq!(
            did_you_mean("memroy", ["memory", "cpu"]).as_deref(),
            Some("did you mean `memory`?")
        );
        assert_eq!(did_you_mean("zzz", ["memory", "cpu"]), None);
    }
}
