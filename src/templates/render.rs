//! Rendering a template's text, and its commands, with minijinja.

use serde::Serialize;

use crate::config::template::{describe, environment};
use crate::config::Template;

/// Why a template could not be rendered; names the template file and line.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{file}{}: {message}{}", .line.map(|l| format!(" line {l}")).unwrap_or_default(), excerpt(.text))]
pub struct RenderError {
    /// The template file as shown in messages.
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
    /// The template's line, trimmed.
    pub text: Option<String>,
}

fn excerpt(text: &Option<String>) -> String {
    text.as_ref()
        .map(|t| format!(" (in `{t}`)"))
        .unwrap_or_default()
}

/// Render `template`'s source with `ctx`.
pub fn render(template: &Template, ctx: &impl Serialize) -> Result<String, RenderError> {
    let source = &template.source;
    let env = environment();
    let error = |e: minijinja::Error| {
        let line = e.line();
        RenderError {
            file: source.name.clone(),
            line,
            message: describe(&e),
            text: line
                .and_then(|l| source.text.lines().nth(l.saturating_sub(1)))
                .map(|t| t.trim().to_string()),
        }
    };
    let compiled = env
        .template_from_named_str(&source.name, &source.text)
        .map_err(error)?;
    compiled.render(ctx).map_err(error)
}

/// Render a `check` or `on_change` command: `path` is the file it is about, `destination` the
/// template's destination, `name` the template's name.
pub fn command(text: &str, path: &str, template: &Template) -> Result<String, RenderError> {
    let env = environment();
    let destination = template.destination.display().to_string();
    let ctx =
        minijinja::context! { path => path, destination => destination, name => &template.name };
    env.render_str(text, ctx).map_err(|e| RenderError {
        file: format!("the command of template \"{}\"", template.name),
        line: None,
        message: describe(&e),
        text: Some(text.to_string()),
    })
}
