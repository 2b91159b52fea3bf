//! `kloud fmt`: the canonical layout of a config file, keeping every comment.
//!
//! The layout is Terraform's: two-space indentation by nesting depth, one space around `=`,
//! the `=` of consecutive single-line attributes aligned, no trailing whitespace, at most one
//! blank line in a row, one newline at the end. Strings, heredocs and comments are never
//! rewritten. The result is parsed again and compared with the input's structure, so `fmt` can
//! never change what a file means; and formatting formatted text changes nothing.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FmtError {
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("formatting would change the meaning of the file (a bug in kloud fmt); the file was left as it is")]
    Changed,
}

/// Format one file's text.
pub fn format(text: &str) -> Result<String, FmtError> {
    let before = parse(text)?;
    let lines = scan(text);
    let out = layout(&lines);
    let after = parse(&out).map_err(|_| FmtError::Changed)?;
    if before != after {
        return Err(FmtError::Changed);
    }
    Ok(out)
}

fn parse(text: &str) -> Result<hcl::Body, FmtError> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| FmtError::Syntax {
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().to_string(),
    })?;
    Ok(hcl::Body::from(body))
}

/// What `scan` learns about one source line.
#[derive(Debug)]
struct Line<'a> {
    text: &'a str,
    /// Bracket depth at the start of the line.
    depth: usize,
    /// Bracket depth at the end of the line.
    depth_after: usize,
    /// Closing brackets the line starts with.
    leading_closers: usize,
    /// The line starts inside a heredoc or block comment: keep it byte for byte.
    verbatim: bool,
}

#[derive(PartialEq)]
enum Mode {
    Code,
    /// Inside a quoted string; the number is the bracket depth of its interpolation, if any.
    Str,
    BlockComment,
    Heredoc,
}

/// Walk the text once, tracking strings, comments, heredocs and bracket depth.
fn scan(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut depth: usize = 0;
    let mut mode = Mode::Code;
    // Interpolations inside strings: the bracket depth at which each `${` opened.
    let mut interp: Vec<usize> = Vec::new();
    let mut heredoc_marker = String::new();
    let mut pending_heredoc: Option<String> = None;
    for raw in text.split_inclusive('\n') {
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let start_depth = depth;
        let verbatim = matches!(mode, Mode::Heredoc | Mode::BlockComment);
        if mode == Mode::Heredoc {
            if line.trim() == heredoc_marker {
                mode = Mode::Code;
            }
            out.push(Line {
                text: line,
                depth: start_depth,
                depth_after: depth,
                leading_closers: 0,
                verbatim: true,
            });
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        let mut leading_closers = 0;
        let mut seen_other = false;
        while i < bytes.len() {
            let c = bytes[i];
            match mode {
                Mode::BlockComment => {
                    if c == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        mode = Mode::Code;
                        i += 1;
                    }
                }
                Mode::Str => match c {
                    b'\\' => i += 1,
                    b'"' => mode = Mode::Code,
                    b'$' | b'%' if bytes.get(i + 1) == Some(&b'{') => {
                        interp.push(depth);
                        depth += 1;
                        mode = Mode::Code;
                        i += 1;
                    }
                    _ => {}
                },
                Mode::Heredoc => {}
                Mode::Code => match c {
                    b'#' => break,
                    b'/' if bytes.get(i + 1) == Some(&b'/') => break,
                    b'/' if bytes.get(i + 1) == Some(&b'*') => {
                        mode = Mode::BlockComment;
                        seen_other = true;
                        i += 1;
                    }
                    b'"' => {
                        mode = Mode::Str;
                        seen_other = true;
                    }
                    b'<' if bytes.get(i + 1) == Some(&b'<') => {
                        let rest = &line[i + 2..];
                        let rest = rest.strip_prefix('-').unwrap_or(rest);
                        let marker: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !marker.is_empty() {
                            pending_heredoc = Some(marker);
                        }
                        seen_other = true;
                        i += 1;
                    }
                    b'{' | b'[' | b'(' => {
                        depth += 1;
                        seen_other = true;
                    }
                    b'}' | b']' | b')' => {
                        depth = depth.saturating_sub(1);
                        if interp.last() == Some(&depth) {
                            interp.pop();
                            mode = Mode::Str;
                        } else if !seen_other {
                            leading_closers += 1;
                        }
                    }
                    c if is_blank(c as char) => {}
                    _ => seen_other = true,
                },
            }
            i += 1;
        }
        if let Some(marker) = pending_heredoc.take() {
            heredoc_marker = marker;
            mode = Mode::Heredoc;
        }
        out.push(Line {
            text: line,
            depth: start_depth,
            depth_after: depth,
            leading_closers,
            verbatim,
        });
    }
    out
}

/// Blank characters inside a line. `scan` (which closers lead a line) and `layout` (what is
/// trimmed) must agree on them, or a line like `\r}` is indented differently the second time.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r')
}

/// The key of a line that starts an attribute (`key = ...`), if it does.
fn attribute_key(trimmed: &str) -> Option<(&str, &str)> {
    let key_end = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(trimmed.len());
    if key_end == 0 {
        return None;
    }
    let (key, rest) = trimmed.split_at(key_end);
    let rest = rest.trim_start();
    let value = rest.strip_prefix('=')?;
    if value.starts_with('=') {
        return None; // `==` is a comparison, not an assignment
    }
    Some((key, value.trim_start()))
}

fn layout(lines: &[Line]) -> String {
    // First pass: indentation and spacing, line by line.
    struct Out {
        text: String,
        /// For attribute lines: key and value, to be aligned.
        attr: Option<(String, String)>,
        indent: usize,
        single_line: bool,
        blank: bool,
    }
    let mut outs: Vec<Out> = Vec::new();
    for l in lines {
        if l.verbatim {
            outs.push(Out {
                text: l.text.to_string(),
                attr: None,
                indent: 0,
                single_line: false,
                blank: false,
            });
            continue;
        }
        let trimmed = l.text.trim_matches(is_blank);
        if trimmed.is_empty() {
            outs.push(Out {
                text: String::new(),
                attr: None,
                indent: 0,
                single_line: false,
                blank: true,
            });
            continue;
        }
        let indent = l.depth.saturating_sub(l.leading_closers);
        let attr = attribute_key(trimmed).map(|(k, v)| (k.to_string(), v.to_string()));
        outs.push(Out {
            text: trimmed.to_string(),
            attr,
            indent,
            single_line: l.depth_after == l.depth,
            blank: false,
        });
    }
    // Second pass: align `=` in runs of attributes at the same indentation.
    let mut i = 0;
    while i < outs.len() {
        if outs[i].attr.is_none() {
            i += 1;
            continue;
        }
        let indent = outs[i].indent;
        let mut j = i;
        while j < outs.len() && outs[j].attr.is_some() && outs[j].indent == indent {
            j += 1;
            if !outs[j - 1].single_line {
                break; // a multi-line value ends the run
            }
        }
        let width = outs[i..j]
            .iter()
            .filter_map(|o| o.attr.as_ref().map(|(k, _)| k.chars().count()))
            .max()
            .unwrap_or(0);
        for o in &mut outs[i..j] {
            if let Some((k, v)) = &o.attr {
                let pad = width - k.chars().count();
                o.text = if v.is_empty() {
                    format!("{k}{} =", " ".repeat(pad))
                } else {
                    format!("{k}{} = {v}", " ".repeat(pad))
                };
            }
        }
        i = j.max(i + 1);
    }
    // Third pass: write, collapsing blank lines.
    let mut text = String::new();
    let mut last_blank = true; // also drops blank lines at the top
    for o in &outs {
        if o.blank {
            if !last_blank {
                text.push('\n');
            }
            last_blank = true;
            continue;
        }
        if o.attr.is_none() && o.indent == 0 && o.text.starts_with('}') && text.ends_with("\n\n") {
            text.pop(); // no blank line before a closing brace
        }
        for _ in 0..o.indent {
            text.push_str("  ");
        }
        text.push_str(o.text.trim_end());
        text.push('\n');
        last_blank = false;
    }
    while text.ends_with("\n\n") {
        text.pop();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn carriage_returns_before_a_closing_brace_format_once() {
        // Found by the fuzzer (fuzz/artifacts/load/crash-7545…): `\r` counted as text before
        // the `}`, so the first pass indented the brace one level too deep.
        let text = "a {\n  b {\n    c = 1\n  }\n\r\r\r}\n";
        let once = format(text).unwrap();
        assert_eq!(format(&once).unwrap(), once);
        assert_eq!(once, "a {\n  b {\n    c = 1\n  }\n}\n");
    }
    use super::*;

    #[test]
    fn indents_aligns_and_keeps_comments() {
        let input = "# top\nkloud {\ndomain=\"a.b\" # the suffix\n    hostdb = \"sqlite:x\"\n}\n\n\n\nhost_class \"web\" {\n  count = 1\n placement {\n max_per = { machine = 2 }\n    }\n}\n";
        let out = format(input).unwrap();
        assert_eq!(
            out,
            "# top\nkloud {\n  domain = \"a.b\" # the suffix\n  hostdb = \"sqlite:x\"\n}\n\nhost_class \"web\" {\n  count = 1\n  placement {\n    max_per = { machine = 2 }\n  }\n}\n"
        );
        assert_eq!(
            format(&out).unwrap(),
            out,
            "fmt of fmt output changes nothing"
        );
    }

    #[test]
    fn strings_heredocs_and_block_comments_are_untouched() {
        let input = "x {\n  a = \"{ not a brace\"\n  b = <<EOT\n   keep   this\n}\nEOT\n  /* multi\n     line */\n  c = \"${var.y}-{{ index }}\"\n}\n";
        let out = format(input).unwrap();
        assert!(out.contains("   keep   this\n}\nEOT\n"));
        assert!(out.contains("  /* multi\n     line */\n"));
        assert!(out.contains("  c = \"${var.y}-{{ index }}\"\n"));
        assert_eq!(format(&out).unwrap(), out);
    }

    #[test]
    fn multi_line_values_are_indented() {
        let input = "x {\ntags = [\n\"a\",\n\"b\",\n]\nlong_name = 1\n}\n";
        let out = format(input).unwrap();
        assert_eq!(
            out,
            "x {\n  tags = [\n    \"a\",\n    \"b\",\n  ]\n  long_name = 1\n}\n"
        );
    }

    #[test]
    fn syntax_errors_are_reported_not_formatted() {
        assert!(matches!(format("x {\n"), Err(FmtError::Syntax { .. })));
    }
}
