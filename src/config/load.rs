//! Loading a config directory: parse every `*.hcl`, decode each block, expand, cross-check.
//!
//! Loading never stops at the first problem: every file is parsed, every block decoded, and
//! the cross-checks run on whatever decoded cleanly, so one run reports everything it can.

use std::collections::{BTreeMap, BTreeSet};

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hcl_edit::structure::{Block, BlockLabel, Body, Structure};
use hcl_edit::Span;
use sha2::{Digest, Sha256};

use super::diag::{did_you_mean, Diagnostic, Diagnostics, SourceFile};
use super::eval::Evaluator;
use super::model::*;
use super::names::{domain_problem, label_problem, suggest_label, NameRenderer};
use super::reader::{header_span, Reader};
use super::schema::*;
use super::{decode, expand};

/// Variable values given on the command line (`--var NAME=VALUE`).
pub type VarOverrides = BTreeMap<String, String>;

/// A parsed file and its top-level blocks.
struct Parsed {
    file: Arc<SourceFile>,
    body: Body,
}

/// A host class block with the spans of its `name` and `max_per`.
pub(super) type ClassSpans<'a> = (Item<'a>, Option<Range<usize>>, Option<Range<usize>>);

/// A top-level block with the file it came from.
#[derive(Clone, Copy)]
pub(super) struct Item<'a> {
    pub(super) file: &'a Arc<SourceFile>,
    pub(super) block: &'a Block,
}

impl Item<'_> {
    pub(super) fn label(&self) -> &str {
        match self.block.labels.first() {
            Some(BlockLabel::String(s)) => s.as_str(),
            Some(BlockLabel::Ident(i)) => i.as_str(),
            None => "",
        }
    }

    pub(super) fn label_span(&self) -> Range<usize> {
        self.block
            .labels
            .first()
            .and_then(|l| l.span())
            .unwrap_or_else(|| header_span(self.block))
    }
}

/// Read `*.hcl` in `dir` (sorted by name) into source files; I/O problems become diagnostics.
pub fn read_dir(dir: &Path, diags: &mut Diagnostics) -> Vec<Arc<SourceFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(
                Diagnostic::new(
                    "kloud::config::io",
                    format!("cannot read config directory `{}`: {e}", dir.display()),
                )
                .help("pass the directory that holds your *.hcl files"),
            );
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "hcl") && p.is_file())
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let shown = display_path(&path);
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => files.push(Arc::new(SourceFile::new(shown, text))),
                Err(_) => diags.push(
                    Diagnostic::new("kloud::config::io", format!("`{shown}` is not UTF-8 text"))
                        .help("save the file as UTF-8"),
                ),
            },
            Err(e) => diags.push(Diagnostic::new(
                "kloud::config::io",
                format!("cannot read `{shown}`: {e}"),
            )),
        }
    }
    if files.is_empty() && diags.is_empty() {
        diags.push(
            Diagnostic::new(
                "kloud::config::no_config",
                format!("no *.hcl files in `{}`", display_path(dir)),
            )
            .help("run kloud in a config directory or pass it as an argument, e.g. `kloud validate examples/quickstart`"),
        );
    }
    files
}

fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let shown = cwd
        .as_deref()
        .and_then(|c| path.strip_prefix(c).ok())
        .unwrap_or(path);
    shown.display().to_string()
}

/// Load and validate the config in `dir`.
pub fn load(dir: &Path, overrides: &VarOverrides) -> Result<Config, Diagnostics> {
    let mut diags = Diagnostics::default();
    let files = read_dir(dir, &mut diags);
    let env_vars: BTreeMap<String, String> = std::env::vars()
        .filter_map(|(k, v)| k.strip_prefix("KLOUD_VAR_").map(|n| (n.to_string(), v)))
        .collect();
    let config = load_sources(dir, files, overrides, &env_vars, &mut diags);
    diags.sort();
    match config {
        Some(c) if diags.is_empty() => Ok(c),
        _ => {
            if diags.is_empty() {
                diags.push(Diagnostic::new(
                    "kloud::config::invalid",
                    "the config is invalid",
                ));
            }
            Err(diags)
        }
    }
}

/// Load from in-memory sources (used by `load`, tests and the fuzz target).
pub fn load_sources(
    dir: &Path,
    files: Vec<Arc<SourceFile>>,
    overrides: &VarOverrides,
    env_vars: &BTreeMap<String, String>,
    diags: &mut Diagnostics,
) -> Option<Config> {
    let parsed = parse_files(&files, diags);
    let by_type = sort_blocks(&parsed, diags);
    let items = |kind: &str| by_type.get(kind).cloned().unwrap_or_default();
    check_names(&by_type, diags);

    // Variables first: every other block may refer to them.
    let variables = decode_variables(&items("variable"), overrides, env_vars, diags);
    let eval = Evaluator::with_variables(variables.clone());
    let had_syntax_errors = parsed.len() < files.len();
    let settings = decode_settings(
        &items("kloud"),
        &eval,
        diags,
        files.is_empty() || had_syntax_errors,
    );
    let machine_classes = decode::machine_classes(&items("machine_class"), &eval, diags);
    let (networks, net_items) = decode::networks(&items("network"), &eval, diags);
    let tags = decode::tags(&items("tag"), &eval, diags);
    let (machine_groups, group_items) = decode::machine_groups(
        &items("machines"),
        &labels_of(&items("machine_class")),
        &eval,
        diags,
    );
    let (host_classes, class_items) = decode::host_classes(
        &items("host_class"),
        &labels_of(&items("network")),
        &labels_of(&items("tag")),
        &eval,
        diags,
    );
    let providers = decode::providers(&items("provider"), &eval, diags);
    let templates = super::template::decode_templates(
        items("template").iter().map(|i| (i.file, i.block)),
        dir,
        &eval,
        diags,
    );
    let settings = settings?;

    let mut fqdns = Fqdns::default();
    let machines = expand::machines(
        &machine_groups,
        &group_items,
        &machine_classes,
        &settings,
        &mut fqdns,
        diags,
    );
    let hosts = expand::hosts(&host_classes, &class_items, &settings, &mut fqdns, diags);
    expand::check_classes(&host_classes, &class_items, &machines, diags);
    expand::check_network_sizes(&host_classes, &networks, &net_items, diags);

    // Logins, first boot and resolvers (design §9): decoded in config/login.rs.
    let blocks = |kind: &str| -> Vec<_> {
        first_of_each(&items(kind))
            .iter()
            .map(|i| (i.file, i.block))
            .collect()
    };
    let login = super::login::decode(&blocks("host_class"), &blocks("network"), &eval, diags);

    let auth_items: Vec<_> = items("auth").iter().map(|i| (i.file, i.block)).collect();
    let auth = super::auth::decode(&auth_items, dir, &eval, diags);
    let offers = super::offer::offers(
        &items("offer"),
        &labels_of(&items("network")),
        &labels_of(&items("tag")),
        &eval,
        diags,
    );

    let digest = digest(&files, &variables);
    Some(Config {
        dir: dir.to_path_buf(),
        settings,
        machine_classes,
        machine_groups,
        networks,
        tags,
        host_classes,
        providers,
        templates,
        machines,
        hosts,
        digest,
        login,
        auth,
        offers,
    })
}

/// The labels (names) of blocks of one type.
fn labels_of(items: &[Item]) -> BTreeSet<String> {
    items.iter().map(|i| i.label().to_string()).collect()
}

/// Parse every file; a syntax error is one diagnostic and the file is left out.
fn parse_files(files: &[Arc<SourceFile>], diags: &mut Diagnostics) -> Vec<Parsed> {
    let mut parsed = Vec::new();
    for file in files {
        match hcl_edit::parser::parse_body(&file.text) {
            Ok(body) => parsed.push(Parsed {
                file: Arc::clone(file),
                body,
            }),
            Err(e) => diags.push(syntax_error(file, &e)),
        }
    }
    parsed
}

/// A parse error as a diagnostic. hcl-edit refuses an attribute set twice while parsing; that
/// one gets its own code and a help that fits it.
fn syntax_error(file: &Arc<SourceFile>, e: &hcl_edit::parser::Error) -> Diagnostic {
    let loc = e.location();
    let start = file.offset_of(loc.line(), loc.column());
    if e.message().contains("redefined attribute") {
        let key: String = file.text[start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let end = (start + key.len().max(1)).min(file.text.len());
        return Diagnostic::new(
            "kloud::config::duplicate_attribute",
            format!("`{key}` is set twice in this block"),
        )
        .at(file, start..end)
        .label("set again here")
        .help("remove one of them");
    }
    let end = (start + 1).min(file.text.len()).max(start);
    Diagnostic::new(
        "kloud::config::syntax",
        format!("syntax error: {}", e.message()),
    )
    .at(file, start..end)
    .label("here")
    .help("check for a missing `}`, `]`, `\"` or `=` just before this point")
}

/// Top-level blocks by type; stray attributes, unknown blocks and bad labels are reported.
fn sort_blocks<'a>(
    parsed: &'a [Parsed],
    diags: &mut Diagnostics,
) -> BTreeMap<&'static str, Vec<Item<'a>>> {
    // Sort top-level blocks by type; report stray attributes, unknown blocks, bad labels.
    let mut by_type: BTreeMap<&str, Vec<Item>> = BTreeMap::new();
    for p in parsed {
        for s in p.body.iter() {
            match s {
                Structure::Attribute(a) => diags.push(
                    Diagnostic::new(
                        "kloud::config::unknown_attribute",
                        format!("`{}` cannot be set at the top level", a.key.as_str()),
                    )
                    .at(&p.file, a.key.span().unwrap_or(0..0))
                    .label("outside any block")
                    .help("settings belong in a block, e.g. `kloud { domain = \"...\" }`"),
                ),
                Structure::Block(b) => {
                    let ident = b.ident.as_str();
                    let Some(&(kind, nlabels)) = BLOCKS.iter().find(|(k, _)| *k == ident) else {
                        diags.push(
                            Diagnostic::new(
                                "kloud::config::unknown_block",
                                format!("unknown block type `{ident}`"),
                            )
                            .at(&p.file, header_span(b))
                            .label("unknown block")
                            .help(
                                did_you_mean(ident, BLOCKS.iter().map(|(k, _)| *k)).unwrap_or_else(
                                    || {
                                        let names: Vec<&str> =
                                            BLOCKS.iter().map(|(k, _)| *k).collect();
                                        format!("the block types are: {}", names.join(", "))
                                    },
                                ),
                            ),
                        );
                        continue;
                    };
                    if b.labels.len() != nlabels {
                        let example = if nlabels == 0 {
                            format!("{kind} {{ ... }}")
                        } else {
                            format!("{kind} \"NAME\" {{ ... }}")
                        };
                        diags.push(
                            Diagnostic::new(
                                "kloud::config::block_labels",
                                format!(
                                    "a `{kind}` block takes {nlabels} label{}, found {}",
                                    if nlabels == 1 { "" } else { "s" },
                                    b.labels.len()
                                ),
                            )
                            .at(&p.file, header_span(b))
                            .label("wrong number of labels")
                            .help(format!("write it as `{example}`")),
                        );
                        continue;
                    }
                    by_type.entry(kind).or_default().push(Item {
                        file: &p.file,
                        block: b,
                    });
                }
            }
        }
    }
    by_type
}

/// Names: valid, and unique per block type across all files.
fn check_names(by_type: &BTreeMap<&'static str, Vec<Item>>, diags: &mut Diagnostics) {
    let items = |kind: &str| by_type.get(kind).cloned().unwrap_or_default();
    for (kind, _) in BLOCKS.iter().filter(|(_, n)| *n == 1) {
        let mut seen: BTreeMap<String, Item> = BTreeMap::new();
        for item in items(kind) {
            let name = item.label().to_string();
            let problem = match *kind {
                "variable" => (!is_identifier(&name)).then(|| {
                    format!("`{name}` is not a valid variable name: use letters, digits and `_`")
                }),
                "provider" => None,
                _ => label_problem(&name),
            };
            if let Some(problem) = problem {
                let help = if *kind == "variable" {
                    "start with a letter; use letters, digits and `_`".to_string()
                } else {
                    suggest_label(&name)
                };
                diags.push(
                    Diagnostic::new("kloud::config::invalid_name", problem)
                        .at(item.file, item.label_span())
                        .label("invalid name")
                        .help(help),
                );
            }
            if let Some(first) = seen.get(&name) {
                let (line, col) = first.file.line_col(first.label_span().start);
                diags.push(
                    Diagnostic::new(
                        "kloud::config::duplicate_name",
                        format!("{kind} `{name}` is declared more than once"),
                    )
                    .at(item.file, item.label_span())
                    .label("declared again here")
                    .help(format!(
                        "first declared at {}:{line}:{col}; rename or remove one",
                        first.file.name
                    )),
                );
            } else {
                seen.insert(name, item);
            }
        }
    }
}

pub(super) fn reader<'a>(
    item: Item<'a>,
    attrs: &[&str],
    blocks: &[&str],
    eval: &'a Evaluator,
    diags: &'a mut Diagnostics,
) -> Reader<'a> {
    let what = format!("{} \"{}\"", item.block.ident.as_str(), item.label());
    Reader::new(
        item.file,
        what,
        header_span(item.block),
        &item.block.body,
        attrs,
        blocks,
        eval,
        diags,
    )
}

/// Duplicates were already reported; decode only the first of each name.
pub(super) fn first_of_each<'a>(items: &[Item<'a>]) -> Vec<Item<'a>> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .filter(|i| seen.insert(i.label().to_string()))
        .copied()
        .collect()
}

pub(super) fn item_attr_span(item: Item, name: &str) -> Range<usize> {
    item.block
        .body
        .get_attribute(name)
        .and_then(|a| a.value.span())
        .unwrap_or_else(|| item.label_span())
}

pub(super) fn checked_driver(r: &mut Reader, item: Item) -> Option<String> {
    let driver = r
        .string("driver", false)
        .unwrap_or_else(|| "lxc".to_string());
    if DRIVERS.contains(&driver.as_str()) {
        return Some(driver);
    }
    let span = r.span_or_header("driver");
    r.report(
        Diagnostic::new(
            "kloud::config::unknown_driver",
            format!("unknown driver `{driver}`"),
        )
        .at(item.file, span)
        .label("no such driver")
        .help(
            did_you_mean(&driver, DRIVERS.iter().copied())
                .unwrap_or_else(|| format!("the drivers are: {}", DRIVERS.join(", "))),
        ),
    );
    None
}

pub(super) fn undefined(
    kind: &str,
    name: &str,
    known: &BTreeSet<String>,
    file: &Arc<SourceFile>,
    span: Range<usize>,
) -> Diagnostic {
    Diagnostic::new(
        "kloud::config::undefined_reference",
        format!("{kind} `{name}` is not declared"),
    )
    .at(file, span)
    .label(format!("no {kind} with this name"))
    .help(
        did_you_mean(name, known.iter().map(String::as_str))
            .unwrap_or_else(|| format!("declare it: {kind} \"{name}\" {{ ... }}")),
    )
}

pub(super) fn template_error(
    message: &str,
    file: &Arc<SourceFile>,
    span: Range<usize>,
) -> Diagnostic {
    Diagnostic::new(
        "kloud::config::template",
        format!("name template cannot be rendered: {message}"),
    )
    .at(file, span)
    .label("in this template")
    .help("name templates are minijinja; the variables are `index` and `class` (and `group`, `name` for machines)")
}

/// Every FQDN the config produces (machines and hosts share one namespace) and the block that
/// produced it first, so a second producer is reported where it is declared.
#[derive(Default)]
pub(super) struct Fqdns(BTreeMap<String, (String, Arc<SourceFile>, Range<usize>)>);

impl Fqdns {
    /// Claim `fqdn` for `owner`, a `(noun, block)` pair such as `("host", "host_class \"web\"")`
    /// whose name template is at `at`; if another block produced it already, the diagnostic,
    /// ending with `hint`.
    pub(super) fn claim(
        &mut self,
        fqdn: &str,
        owner: (&str, String),
        at: (&Arc<SourceFile>, &Range<usize>),
        hint: &str,
    ) -> Result<(), Diagnostic> {
        let (noun, block) = owner;
        let (file, span) = at;
        if let Some((other, f, s)) = self.0.get(fqdn) {
            let (line, col) = f.line_col(s.start);
            return Err(Diagnostic::new(
                "kloud::config::duplicate_fqdn",
                format!("{noun} `{fqdn}` of {block} is also named by {other}"),
            )
            .at(file, span.clone())
            .label("produces a name already taken")
            .help(format!("{other} is at {}:{line}:{col}; {hint}", f.name)));
        }
        self.0
            .insert(fqdn.to_string(), (block, Arc::clone(file), span.clone()));
        Ok(())
    }
}

/// Render a name template for one index and make it an FQDN, or say why it cannot be one.
pub(super) fn render_fqdn(
    renderer: &NameRenderer,
    index: u32,
    vars: &[(&str, &str)],
    domain: &str,
    file: &Arc<SourceFile>,
    span: &Range<usize>,
) -> Result<String, Diagnostic> {
    let short = renderer
        .render(index, vars)
        .map_err(|e| template_error(&e, file, span.clone()))?;
    if let Some(problem) = label_problem(&short) {
        return Err(rendered_name_error(
            &problem,
            &short,
            index,
            file,
            span.clone(),
        ));
    }
    Ok(format!("{short}.{domain}"))
}

fn rendered_name_error(
    problem: &str,
    rendered: &str,
    index: u32,
    file: &Arc<SourceFile>,
    span: Range<usize>,
) -> Diagnostic {
    Diagnostic::new(
        "kloud::config::invalid_name",
        format!("the name template renders `{rendered}` for index {index}: {problem}"),
    )
    .at(file, span)
    .label("renders an invalid name")
    .help(suggest_label(rendered))
}

fn decode_settings(
    items: &[Item],
    eval: &Evaluator,
    diags: &mut Diagnostics,
    incomplete: bool,
) -> Option<Settings> {
    let Some(item) = items.first() else {
        // With no files, or a file that did not parse, the block may well exist: don't guess.
        if incomplete {
            return None;
        }
        diags.push(
            Diagnostic::new(
                "kloud::config::missing_block",
                "the config has no `kloud` block",
            )
            .help("add `kloud { domain = \"dc1.example.internal\" }` to one of the files"),
        );
        return None;
    };
    for extra in &items[1..] {
        let (line, col) = item.file.line_col(header_span(item.block).start);
        diags.push(
            Diagnostic::new(
                "kloud::config::duplicate_name",
                "the `kloud` block is declared more than once",
            )
            .at(extra.file, header_span(extra.block))
            .label("declared again here")
            .help(format!(
                "first declared at {}:{line}:{col}; merge them",
                item.file.name
            )),
        );
    }
    let mut r = Reader::new(
        item.file,
        "the `kloud` block".into(),
        header_span(item.block),
        &item.block.body,
        KLOUD_ATTRS,
        &[],
        eval,
        diags,
    );
    let domain = r.string("domain", true)?;
    if let Some(problem) = domain_problem(&domain) {
        let span = r.span_or_header("domain");
        r.report(
            Diagnostic::new(
                "kloud::config::invalid_name",
                format!("domain `{domain}`: {problem}"),
            )
            .at(item.file, span)
            .label("invalid domain")
            .help("use dot-separated RFC 1123 labels, e.g. \"dc1.example.internal\""),
        );
        return None;
    }
    let hostdb = r
        .string("hostdb", false)
        .unwrap_or_else(|| "sqlite:.kloud/hostdb.db".to_string());
    let known_scheme = [
        "sqlite:",
        "postgres://",
        "postgresql://",
        "http://",
        "https://",
    ];
    if !known_scheme.iter().any(|s| hostdb.starts_with(s)) {
        let span = r.span_or_header("hostdb");
        r.report(
            Diagnostic::new(
                "kloud::config::invalid_value",
                format!("unsupported HostDB URL `{hostdb}`"),
            )
            .at(item.file, span)
            .label("unknown scheme")
            .help("use \"sqlite:PATH\", \"postgres://…\" or \"http(s)://host:port\""),
        );
        return None;
    }
    let owner = r.string("owner", false).unwrap_or_else(|| domain.clone());
    Some(Settings {
        domain,
        hostdb,
        owner,
    })
}

fn decode_variables(
    items: &[Item],
    overrides: &VarOverrides,
    env_vars: &BTreeMap<String, String>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Option<hcl::Value>> {
    let bare = Evaluator::bare();
    let mut out = BTreeMap::new();
    let declared: BTreeSet<String> = items.iter().map(|i| i.label().to_string()).collect();
    for name in overrides.keys() {
        if !declared.contains(name) {
            diags.push(
                Diagnostic::new(
                    "kloud::config::unknown_variable",
                    format!("--var `{name}` sets a variable the config does not declare"),
                )
                .help(
                    did_you_mean(name, declared.iter().map(String::as_str)).unwrap_or_else(|| {
                        format!("declare it: variable \"{name}\" {{ default = ... }}")
                    }),
                ),
            );
        }
    }
    for item in first_of_each(items) {
        let name = item.label().to_string();
        let mut r = reader(item, VARIABLE_ATTRS, &[], &bare, diags);
        let _ = r.string("description", false);
        let default = r.value("default").map(|(v, _)| v);
        let given = overrides
            .get(&name)
            .map(|v| (v, "--var"))
            .or_else(|| env_vars.get(&name).map(|v| (v, "KLOUD_VAR_")));
        let value = match (given, default) {
            (Some((text, source)), default) => {
                match parse_override(text, default.as_ref()) {
                    Ok(v) => Some(v),
                    Err(expected) => {
                        diags.push(
                        Diagnostic::new(
                            "kloud::config::bad_var_override",
                            format!("{source} value `{text}` for variable `{name}` is not {expected}"),
                        )
                        .at(item.file, item.label_span())
                        .label(format!("declared as {expected} here"))
                        .help(format!("give `{name}` {expected}")),
                    );
                        None
                    }
                }
            }
            (None, Some(d)) => Some(d),
            (None, None) => {
                diags.push(
                    Diagnostic::new(
                        "kloud::config::missing_variable",
                        format!("variable `{name}` has no value"),
                    )
                    .at(item.file, item.label_span())
                    .label("no default")
                    .help(format!(
                        "give it a default, pass `--var {name}=VALUE`, or set KLOUD_VAR_{name}"
                    )),
                );
                None
            }
        };
        // A variable without a value is still declared; `None` marks it so that attributes using
        // it are skipped rather than reported again.
        out.insert(name, value);
    }
    out
}

/// Read a `--var` value: a number or bool where the default is one, else a string.
fn parse_override(text: &str, default: Option<&hcl::Value>) -> Result<hcl::Value, &'static str> {
    match default {
        Some(hcl::Value::Number(_)) => text
            .trim()
            .parse::<i64>()
            .map(hcl::Value::from)
            .or_else(|_| text.trim().parse::<f64>().map(hcl::Value::from))
            .map_err(|_| "a number"),
        Some(hcl::Value::Bool(_)) => match text.trim() {
            "true" => Ok(hcl::Value::Bool(true)),
            "false" => Ok(hcl::Value::Bool(false)),
            _ => Err("true or false"),
        },
        Some(hcl::Value::Array(_)) | Some(hcl::Value::Object(_)) => {
            let expr = hcl_edit::parser::parse_expr(text).map_err(|_| "an HCL list or object")?;
            hcl::eval::Evaluate::evaluate(&hcl::Expression::from(expr), &hcl::eval::Context::new())
                .map_err(|_| "an HCL list or object")
        }
        _ => {
            if let Ok(i) = text.trim().parse::<i64>() {
                Ok(hcl::Value::from(i))
            } else {
                Ok(hcl::Value::String(text.to_string()))
            }
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(super) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a bool",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Addresses a network can hand to hosts: all but network, broadcast and gateway.
pub fn usable_addresses(net: &Network) -> u64 {
    usable_for(net, net.cidr.prefix_len())
}

pub(super) fn usable_for(net: &Network, prefix: u8) -> u64 {
    let bits = u32::from(net.cidr.max_prefix_len() - prefix.min(net.cidr.max_prefix_len()));
    let total: u64 = if bits >= 63 { u64::MAX } else { 1u64 << bits };
    let reserved = match net.cidr {
        ipnet::IpNet::V4(_) if bits >= 2 => 2,
        ipnet::IpNet::V4(_) => total,
        ipnet::IpNet::V6(_) => 1,
    };
    total
        .saturating_sub(reserved)
        .saturating_sub(u64::from(net.gateway.is_some()))
}

pub(super) fn fitting_prefix(net: &Network, need: u64) -> u8 {
    let mut prefix = net.cidr.prefix_len();
    while prefix > 0 && usable_for(net, prefix) < need {
        prefix -= 1;
    }
    prefix
}

pub(super) fn first_host(net: &ipnet::IpNet) -> String {
    net.hosts()
        .next()
        .map_or_else(|| net.addr().to_string(), |a| a.to_string())
}

fn digest(files: &[Arc<SourceFile>], variables: &BTreeMap<String, Option<hcl::Value>>) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    for (k, v) in variables {
        h.update(k.as_bytes());
        h.update(b"=");
        let v = v.as_ref().map(super::eval::to_json);
        h.update(serde_json::to_string(&v).unwrap_or_default().as_bytes());
        h.update([0]);
    }
    let out = h.finalize();
    out.iter().map(|b| format!("{b:02x}")).collect()
}
