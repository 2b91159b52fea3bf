//! The `template "NAME"` block (design §12): a file rendered from HostDB and kept true.
//!
//! ```hcl
//! template "haproxy" {
//!   source      = "templates/haproxy.cfg.j2"   # minijinja, relative to the config directory
//!   destination = "/etc/haproxy/haproxy.cfg"
//!   hosts       = { tags = ["web"] }           # default: every running container
//!   check       = "haproxy -c -f {{ path }}"
//!   on_change   = "systemctl reload haproxy"
//!   timeout     = "30s"                        # for each command; default 30 s
//!   vars        = { bind = ":80" }             # values the template sees as `vars`
//! }
//! ```
//!
//! Decoding reads the source file and compiles it, so a syntax error in a template is a
//! `validate` diagnostic pointing into the template file (another source file, with its own
//! line:col), and compiles the two commands, which are minijinja too. Rendering and writing
//! live in [`crate::templates`].

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hcl_edit::structure::{Block, BlockLabel};

use super::diag::{did_you_mean, Diagnostic, Diagnostics, SourceFile};
use super::eval::Evaluator;
use super::reader::{header_span, Reader};
use super::schema::{TEMPLATE_ATTRS, TEMPLATE_HOSTS_KEYS};
use crate::hostdb::State;

/// How long `check` and `on_change` may run when the block does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A `template "NAME"` block, decoded.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    /// The template text, as read (and compiled) when the config was loaded; its name in
    /// messages is `source.name`.
    pub source: Arc<SourceFile>,
    /// Where the source was read from.
    pub source_path: PathBuf,
    /// Where the rendered file goes (relative paths are taken from the config directory).
    pub destination: PathBuf,
    pub hosts: HostFilter,
    /// Run on the new file before it replaces the old; `{{ path }}` is the new file.
    pub check: Option<String>,
    /// Run after the file changed; `{{ path }}` is the destination.
    pub on_change: Option<String>,
    /// Longest either command may run.
    pub timeout: Duration,
    /// The block's `vars`: values the template sees as `vars` (HCL variables welcome).
    pub vars: serde_json::Map<String, serde_json::Value>,
}

/// Which containers a template sees. Every given filter must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFilter {
    /// Member of every one of these tags, directly or through nested tags.
    pub tags: Vec<String>,
    /// Of one of these classes (any class when empty).
    pub classes: Vec<String>,
    /// Owned by this owner (any owner when `None`).
    pub owner: Option<String>,
    /// In one of these lifecycle states; `running` unless the block says otherwise.
    pub states: Vec<State>,
}

impl Default for HostFilter {
    fn default() -> Self {
        HostFilter {
            tags: Vec::new(),
            classes: Vec::new(),
            owner: None,
            states: vec![State::Running],
        }
    }
}

/// The minijinja environment templates are compiled and rendered in: trailing newlines kept
/// (config files end with one), a block tag's own line removed (`trim_blocks`,
/// `lstrip_blocks`), and printing an undefined value an error (a typo is caught, not rendered
/// as nothing), while `{% if x is defined %}` and `x | default(…)` still work.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_debug(true);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    env
}

/// Decode every `template` block (`items`: each block with the file it is in). Names were
/// checked (valid, unique) by the loader; only the first block of each name comes here.
pub fn decode_templates<'a>(
    items: impl IntoIterator<Item = (&'a Arc<SourceFile>, &'a Block)>,
    dir: &Path,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> std::collections::BTreeMap<String, Template> {
    let mut out = std::collections::BTreeMap::new();
    for (file, block) in items {
        let name = match block.labels.first() {
            Some(BlockLabel::String(s)) => s.to_string(),
            Some(BlockLabel::Ident(i)) => i.to_string(),
            None => continue,
        };
        if out.contains_key(&name) {
            continue;
        }
        if let Some(t) = decode_one(&name, file, block, dir, eval, diags) {
            out.insert(name, t);
        }
    }
    out
}

fn decode_one(
    name: &str,
    file: &Arc<SourceFile>,
    block: &Block,
    dir: &Path,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> Option<Template> {
    let mut r = Reader::new(
        file,
        format!("template \"{name}\""),
        header_span(block),
        &block.body,
        TEMPLATE_ATTRS,
        &[],
        eval,
        diags,
    );
    let source = r.string("source", true);
    let source_span = r.span_or_header("source");
    let destination = r.string("destination", true);
    let hosts = host_filter(&mut r);
    let check = r.string("check", false);
    let check_span = r.span_or_header("check");
    let on_change = r.string("on_change", false);
    let on_change_span = r.span_or_header("on_change");
    let timeout = timeout(&mut r);
    let vars = if r.has("vars") {
        r.json_map("vars")
    } else {
        Some(Default::default())
    };
    drop(r);
    for (cmd, span, attr) in [
        (&check, check_span, "check"),
        (&on_change, on_change_span, "on_change"),
    ] {
        if let Some(cmd) = cmd {
            if let Err(e) = environment().template_from_str(cmd) {
                diags.push(
                    Diagnostic::new(
                        "kloud::config::template",
                        format!("`{attr}` cannot be compiled: {}", describe(&e)),
                    )
                    .at(file, span)
                    .label("in this command")
                    .help("commands are minijinja; the variables are `path`, `destination` and `name`"),
                );
            }
        }
    }
    let source_path = dir.join(source?);
    let source = read_source(&source_path, file, source_span, diags)?;
    if let Err(e) = environment().template_from_named_str(&source.name, &source.text) {
        diags.push(syntax_error(&source, &e));
        return None;
    }
    Some(Template {
        name: name.to_string(),
        source,
        source_path,
        destination: dir.join(destination?),
        hosts: hosts?,
        check,
        on_change,
        timeout: timeout?,
        vars: vars?,
    })
}

/// The template file as a source file of the config (named as the user would write its path).
fn read_source(
    path: &Path,
    file: &Arc<SourceFile>,
    span: Range<usize>,
    diags: &mut Diagnostics,
) -> Option<Arc<SourceFile>> {
    let shown = display_path(path);
    let problem = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => return Some(Arc::new(SourceFile::new(shown, text))),
            Err(_) => format!("`{shown}` is not UTF-8 text"),
        },
        Err(e) => format!("cannot read the template `{shown}`: {e}"),
    };
    diags.push(
        Diagnostic::new("kloud::config::template_source", problem)
            .at(file, span)
            .label("template source")
            .help("`source` is a path relative to the config directory"),
    );
    None
}

fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let shown = cwd
        .as_deref()
        .and_then(|c| path.strip_prefix(c).ok())
        .unwrap_or(path);
    shown.display().to_string()
}

/// A minijinja error as one line: its kind and detail, without the source excerpt.
pub fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// A syntax error inside a template file, pointing at the offending text.
fn syntax_error(source: &Arc<SourceFile>, e: &minijinja::Error) -> Diagnostic {
    let span = e
        .range()
        .filter(|r| r.end <= source.text.len())
        .or_else(|| e.line().map(|l| line_span(source, l)))
        .unwrap_or(0..0);
    Diagnostic::new(
        "kloud::config::template_syntax",
        format!(
            "template syntax error: {}",
            e.detail()
                .map_or_else(|| e.kind().to_string(), str::to_string)
        ),
    )
    .at(source, span)
    .label("here")
    .help("templates are minijinja (Jinja2 syntax): check the `{{ }}` and `{% %}` tags")
}

/// The byte range of a 1-based line.
fn line_span(source: &SourceFile, line: usize) -> Range<usize> {
    let start = source.offset_of(line, 1);
    let end = source.text[start..]
        .find('\n')
        .map_or(source.text.len(), |i| start + i);
    start..end
}

/// The `hosts` attribute: `{ tags = [...], class = "web" | [...], owner = "...", state = ... }`.
fn host_filter(r: &mut Reader) -> Option<HostFilter> {
    let file = r.file;
    let mut filter = HostFilter::default();
    if !r.has("hosts") {
        return Some(filter);
    }
    let (value, span) = r.json("hosts")?;
    let serde_json::Value::Object(map) = value else {
        r.report(hosts_error(file, span, "`hosts` must be an object"));
        return None;
    };
    let mut ok = true;
    for (key, v) in &map {
        let parsed = match key.as_str() {
            "tags" => strings(v).map(|t| filter.tags = t),
            "class" => strings(v).map(|c| filter.classes = c),
            "owner" => v.as_str().map(|o| filter.owner = Some(o.to_string())),
            "state" => strings(v).and_then(|s| {
                s.iter()
                    .map(|w| parse_state(w))
                    .collect::<Option<Vec<_>>>()
                    .map(|s| filter.states = s)
            }),
            other => {
                ok = false;
                let help = did_you_mean(other, TEMPLATE_HOSTS_KEYS.iter().copied())
                    .unwrap_or_else(|| format!("the keys are: {}", TEMPLATE_HOSTS_KEYS.join(", ")));
                r.report(
                    hosts_error(file, span.clone(), &format!("`hosts` has no key `{other}`"))
                        .help(help),
                );
                continue;
            }
        };
        if parsed.is_none() {
            ok = false;
            let expected = match key.as_str() {
                "owner" => "a string",
                "state" => {
                    "\"creating\", \"running\", \"failed\" or \"deleting\" (or a list of them)"
                }
                _ => "a string or a list of strings",
            };
            r.report(hosts_error(
                file,
                span.clone(),
                &format!("`hosts.{key}` must be {expected}"),
            ));
        }
    }
    ok.then_some(filter)
}

fn hosts_error(file: &Arc<SourceFile>, span: Range<usize>, message: &str) -> Diagnostic {
    Diagnostic::new("kloud::config::invalid_value", message.to_string())
        .at(file, span)
        .label("host filter")
        .help("write e.g. `hosts = { tags = [\"web\"], class = \"web\", state = [\"running\"] }`")
}

/// A string or a list of strings.
fn strings(v: &serde_json::Value) -> Option<Vec<String>> {
    match v {
        serde_json::Value::String(s) => Some(vec![s.clone()]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

fn parse_state(s: &str) -> Option<State> {
    Some(match s {
        "creating" => State::Creating,
        "running" => State::Running,
        "failed" => State::Failed,
        "deleting" => State::Deleting,
        _ => return None,
    })
}

fn timeout(r: &mut Reader) -> Option<Duration> {
    let Some(text) = r.string("timeout", false) else {
        return (!r.has("timeout")).then_some(DEFAULT_TIMEOUT);
    };
    match crate::hostdb::util::parse_duration(&text) {
        Some(d) if !d.is_zero() => Some(d),
        _ => {
            let span = r.span_or_header("timeout");
            r.report(
                Diagnostic::new(
                    "kloud::config::invalid_value",
                    format!("`{text}` is not a duration"),
                )
                .at(r.file, span)
                .label("not a duration")
                .help("write a duration such as \"500ms\", \"30s\" or \"2m\""),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::{load, Diagnostics};

    fn load_dir(
        hcl: &str,
        template: &str,
    ) -> (
        tempfile::TempDir,
        Result<crate::config::Config, Diagnostics>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.hcl"),
            format!("kloud {{\n  domain = \"t.test\"\n}}\n{hcl}"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/a.j2"), template).unwrap();
        let r = load(dir.path(), &BTreeMap::new());
        (dir, r)
    }

    #[test]
    fn a_block_decodes_with_defaults() {
        let (dir, r) = load_dir(
            "template \"a\" {\n  source = \"templates/a.j2\"\n  destination = \"out/a\"\n  hosts = { tags = \"web\", state = [\"running\", \"creating\"] }\n}\n",
            "{{ hosts | length }}\n",
        );
        let c = r.unwrap_or_else(|d| panic!("{d}"));
        let t = &c.templates["a"];
        assert_eq!(t.destination, dir.path().join("out/a"));
        assert_eq!(t.hosts.tags, ["web"]);
        assert_eq!(t.hosts.states.len(), 2);
        assert_eq!(t.timeout, super::DEFAULT_TIMEOUT);
        assert!(t.check.is_none() && t.on_change.is_none());
    }

    #[test]
    fn a_syntax_error_points_into_the_template_file() {
        let (_dir, r) = load_dir(
            "template \"a\" {\n  source = \"templates/a.j2\"\n  destination = \"x\"\n}\n",
            "one\n{% for h in hosts %}\n  {{ h.name }\n{% endfor %}\n",
        );
        let d = r.unwrap_err();
        assert_eq!(d.len(), 1, "{d}");
        let (file, line, col) = d.0[0].position().unwrap();
        assert!(file.ends_with("templates/a.j2"), "{file}");
        assert_eq!((line, col), (3, 13));
        assert_eq!(d.0[0].code, "kloud::config::template_syntax");
    }

    #[test]
    fn bad_attributes_are_each_reported() {
        let (_dir, r) = load_dir(
            "template \"a\" {\n  source = \"templates/nope.j2\"\n  destination = \"x\"\n  hosts = { clas = \"web\" }\n  timeout = \"soon\"\n  on_change = \"{{ \"\n  colour = 1\n}\n",
            "",
        );
        let d = r.unwrap_err();
        let codes: Vec<&str> = d.0.iter().map(|x| x.code).collect();
        assert_eq!(
            codes,
            [
                "kloud::config::template_source",
                "kloud::config::invalid_value",
                "kloud::config::invalid_value",
                "kloud::config::template",
                "kloud::config::unknown_attribute",
            ],
            "{d}"
        );
    }
}
