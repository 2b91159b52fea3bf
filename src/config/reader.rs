//! Reading one block's body: allowed attributes and nested blocks, then typed values.
//!
//! A [`Reader`] is made per block. Creating it reports unknown and duplicated attributes and
//! unknown nested blocks (with "did you mean"); its getters evaluate an attribute and convert it
//! to the type the block needs, reporting a diagnostic under the attribute's value when that
//! fails. Getters return `None` after reporting, so decoding carries on and finds more problems.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::Span;

use super::diag::{did_you_mean, Diagnostic, Diagnostics, SourceFile};
use super::eval::{to_json, type_name, Evaluator};
use crate::size::{self, Unit};
use crate::{Cpu, CpuError};

/// The header of a block (`host_class "web"`), for diagnostics about the block as a whole.
pub fn header_span(block: &Block) -> Range<usize> {
    let start = block.ident.span().map_or(0, |s| s.start);
    let end = block
        .labels
        .last()
        .and_then(|l| l.span())
        .or_else(|| block.ident.span())
        .map_or(start, |s| s.end);
    start..end
}

pub struct Reader<'a> {
    pub file: &'a Arc<SourceFile>,
    /// `host_class "web"`: how the block is named in messages.
    pub what: String,
    pub header: Range<usize>,
    attrs: BTreeMap<String, &'a Attribute>,
    eval: &'a Evaluator,
    pub diags: &'a mut Diagnostics,
    /// Attributes whose value came from `env()`.
    pub sensitive: Vec<String>,
}

impl<'a> Reader<'a> {
    /// Read `body`, reporting anything not in `allowed_attrs` / `allowed_blocks`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        file: &'a Arc<SourceFile>,
        what: String,
        header: Range<usize>,
        body: &'a Body,
        allowed_attrs: &[&str],
        allowed_blocks: &[&str],
        eval: &'a Evaluator,
        diags: &'a mut Diagnostics,
    ) -> Self {
        let mut attrs = BTreeMap::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let key = attr.key.as_str();
                    let span = attr.key.span().unwrap_or(0..0);
                    if !allowed_attrs.contains(&key) {
                        let mut d = Diagnostic::new(
                            "kloud::config::unknown_attribute",
                            format!("{what} has no attribute `{key}`"),
                        )
                        .at(file, span)
                        .label("unknown attribute");
                        d = if allowed_blocks.contains(&key) {
                            d.help(format!("`{key}` is a block: write `{key} {{ ... }}`"))
                        } else {
                            d.help(
                                did_you_mean(key, allowed_attrs.iter().copied()).unwrap_or_else(
                                    || {
                                        format!(
                                            "the attributes of {what} are: {}",
                                            allowed_attrs.join(", ")
                                        )
                                    },
                                ),
                            )
                        };
                        diags.push(d);
                    } else if attrs.contains_key(key) {
                        diags.push(
                            Diagnostic::new(
                                "kloud::config::duplicate_attribute",
                                format!("`{key}` is set twice in {what}"),
                            )
                            .at(file, span)
                            .label("set again here")
                            .help("remove one of them"),
                        );
                    } else {
                        attrs.insert(key.to_string(), attr);
                    }
                }
                Structure::Block(block) => {
                    let ident = block.ident.as_str();
                    if !allowed_blocks.contains(&ident) {
                        let d = Diagnostic::new(
                            "kloud::config::unknown_block",
                            format!("{what} cannot contain a `{ident}` block"),
                        )
                        .at(file, header_span(block))
                        .label("unexpected block");
                        let d = if allowed_attrs.contains(&ident) {
                            d.help(format!("`{ident}` is an attribute: write `{ident} = ...`"))
                        } else if allowed_blocks.is_empty() {
                            d.help(format!("{what} takes no nested blocks"))
                        } else {
                            d.help(
                                did_you_mean(ident, allowed_blocks.iter().copied()).unwrap_or_else(
                                    || {
                                        format!(
                                            "the blocks allowed here are: {}",
                                            allowed_blocks.join(", ")
                                        )
                                    },
                                ),
                            )
                        };
                        diags.push(d);
                    }
                }
            }
        }
        Self {
            file,
            what,
            header,
            attrs,
            eval,
            diags,
            sensitive: Vec::new(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.attrs.contains_key(name)
    }

    /// When attribute `name` is exactly `env("VAR")` and `VAR` is not set, the variable's name:
    /// a provider secret that `validate` and `plan` do not need (only `apply` and `sync` do).
    pub fn unset_env(&self, name: &str) -> Option<String> {
        let attr = self.attrs.get(name)?;
        let hcl_edit::expr::Expression::FuncCall(call) = &attr.value else {
            return None;
        };
        if call.name.name.as_str() != "env" {
            return None;
        }
        let args: Vec<&hcl_edit::expr::Expression> = call.args.iter().collect();
        match args.as_slice() {
            [hcl_edit::expr::Expression::String(s)] if std::env::var_os(s.as_str()).is_none() => {
                Some(s.as_str().to_string())
            }
            _ => None,
        }
    }

    /// Span of an attribute's value.
    pub fn value_span(&self, name: &str) -> Option<Range<usize>> {
        self.attrs.get(name).and_then(|a| a.value.span())
    }

    /// Span of an attribute's value, or of the block header when the attribute is absent.
    pub fn span_or_header(&self, name: &str) -> Range<usize> {
        self.value_span(name).unwrap_or_else(|| self.header.clone())
    }

    fn missing(&mut self, name: &str, example: &str) {
        self.diags.push(
            Diagnostic::new(
                "kloud::config::missing_attribute",
                format!("{} is missing the required attribute `{name}`", self.what),
            )
            .at(self.file, self.header.clone())
            .label(format!("`{name}` is required here"))
            .help(format!("add `{name} = {example}`")),
        );
    }

    fn wrong_type(&mut self, name: &str, span: Range<usize>, expected: &str, found: &hcl::Value) {
        self.diags.push(
            Diagnostic::new(
                "kloud::config::wrong_type",
                format!("`{name}` must be {expected}, found {}", type_name(found)),
            )
            .at(self.file, span)
            .label(format!("expected {expected}"))
            .help(format!("write `{name}` as {expected}")),
        );
    }

    /// Evaluate an attribute; `None` if absent or if evaluation failed (reported).
    pub fn value(&mut self, name: &str) -> Option<(hcl::Value, Range<usize>)> {
        let attr = *self.attrs.get(name)?;
        let span = attr.value.span().unwrap_or(0..0);
        match self.eval.eval(self.file, &attr.value) {
            Ok(v) => {
                if v.uses_env {
                    self.sensitive.push(name.to_string());
                }
                Some((v.value, span))
            }
            Err(ds) => {
                for d in ds {
                    self.diags.push(d);
                }
                None
            }
        }
    }

    fn required_value(&mut self, name: &str, example: &str) -> Option<(hcl::Value, Range<usize>)> {
        if !self.has(name) {
            self.missing(name, example);
            return None;
        }
        self.value(name)
    }

    pub fn string(&mut self, name: &str, required: bool) -> Option<String> {
        let (v, span) = if required {
            self.required_value(name, "\"...\"")?
        } else {
            self.value(name)?
        };
        match v {
            hcl::Value::String(s) => Some(s),
            other => {
                self.wrong_type(name, span, "a string", &other);
                None
            }
        }
    }

    /// A whole number ≥ `min`.
    pub fn uint(&mut self, name: &str, required: bool, min: u64) -> Option<u64> {
        let (v, span) = if required {
            self.required_value(name, "1")?
        } else {
            self.value(name)?
        };
        self.as_uint(name, &v, span, min)
    }

    fn as_uint(&mut self, name: &str, v: &hcl::Value, span: Range<usize>, min: u64) -> Option<u64> {
        let hcl::Value::Number(n) = v else {
            self.wrong_type(name, span, "a whole number", v);
            return None;
        };
        if let Some(u) = n.as_u64() {
            if u < min {
                self.diags.push(
                    Diagnostic::new(
                        "kloud::config::out_of_range",
                        format!("`{name}` must be at least {min}, found {u}"),
                    )
                    .at(self.file, span)
                    .label(format!("must be ≥ {min}"))
                    .help(format!("use {min} or more")),
                );
                return None;
            }
            return Some(u);
        }
        if n.as_i64().is_some_and(|i| i < 0) {
            self.diags.push(
                Diagnostic::new(
                    "kloud::config::negative_number",
                    format!("`{name}` cannot be negative, found {n}"),
                )
                .at(self.file, span)
                .label("negative")
                .help(format!("use a number of {min} or more")),
            );
        } else {
            self.diags.push(
                Diagnostic::new(
                    "kloud::config::wrong_type",
                    format!("`{name}` must be a whole number, found {n}"),
                )
                .at(self.file, span)
                .label("not a whole number")
                .help(format!("write `{name}` as a whole number")),
            );
        }
        None
    }

    /// A size: a string with a binary unit, or a plain number in `unit`.
    pub fn size(&mut self, name: &str, unit: Unit, required: bool) -> Option<u64> {
        let example = if unit == Unit::MiB {
            "\"8GiB\""
        } else {
            "\"40GiB\""
        };
        let (v, span) = if required {
            self.required_value(name, example)?
        } else {
            self.value(name)?
        };
        match &v {
            hcl::Value::String(s) => match size::parse(s, unit) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.diags.push(
                        Diagnostic::new(
                            "kloud::config::bad_size",
                            format!("`{name}` is not a valid size: {e}"),
                        )
                        .at(self.file, span)
                        .label("bad size")
                        .help(format!(
                            "write a size with a binary unit such as {example} (units: MiB, GiB, TiB), or a plain number of {unit}"
                        )),
                    );
                    None
                }
            },
            hcl::Value::Number(_) => self.as_uint(name, &v, span, 0),
            other => {
                self.wrong_type(name, span, "a size such as \"8GiB\"", other);
                None
            }
        }
    }

    /// A cpu quantity: a number of cores (`2`, `0.5`) or a millicore string (`"500m"`).
    pub fn cpu(&mut self, name: &str, required: bool) -> Option<Cpu> {
        let (v, span) = if required {
            self.required_value(name, "1")?
        } else {
            self.value(name)?
        };
        let parsed = match &v {
            hcl::Value::Number(n) => match n.as_u64() {
                Some(whole) => Cpu::from_whole(whole),
                None => n
                    .as_f64()
                    .ok_or_else(|| CpuError::Syntax(n.to_string()))
                    .and_then(Cpu::from_f64),
            },
            hcl::Value::String(s) => Cpu::parse(s),
            other => {
                self.wrong_type(name, span, "a number of cores such as 2 or 0.5", other);
                return None;
            }
        };
        match parsed {
            Ok(c) => Some(c),
            Err(e) => {
                self.diags.push(
                    Diagnostic::new(
                        "kloud::config::bad_cpu",
                        format!("`{name}` is not a valid cpu: {e}"),
                    )
                    .at(self.file, span)
                    .label("bad cpu")
                    .help(format!(
                        "write `{name}` as a number of cores (2, 0.5, 1.25) or of millicores (\"500m\"), at least 0 and in steps of 0.001"
                    )),
                );
                None
            }
        }
    }

    pub fn string_list(&mut self, name: &str) -> Option<Vec<String>> {
        let (v, span) = self.value(name)?;
        let hcl::Value::Array(items) = &v else {
            self.wrong_type(name, span, "a list of strings", &v);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                hcl::Value::String(s) => out.push(s.clone()),
                other => {
                    self.wrong_type(name, span, "a list of strings", other);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// An object of arbitrary values (properties).
    pub fn json_map(&mut self, name: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        let (v, span) = self.value(name)?;
        match to_json(&v) {
            serde_json::Value::Object(m) => Some(m),
            _ => {
                self.wrong_type(name, span, "an object such as { key = \"value\" }", &v);
                None
            }
        }
    }

    /// An object whose values are strings (labels).
    pub fn string_map(&mut self, name: &str) -> Option<BTreeMap<String, String>> {
        let (v, span) = self.value(name)?;
        let hcl::Value::Object(o) = &v else {
            self.wrong_type(
                name,
                span,
                "an object of strings such as { rack = \"r1\" }",
                &v,
            );
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, item) in o {
            match item {
                hcl::Value::String(s) => {
                    out.insert(k.clone(), s.clone());
                }
                other => {
                    self.wrong_type(&format!("{name}.{k}"), span.clone(), "a string", other);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// An object whose values are whole numbers ≥ `min` (`max_per`).
    pub fn uint_map(&mut self, name: &str, min: u64) -> Option<BTreeMap<String, u64>> {
        let (v, span) = self.value(name)?;
        let hcl::Value::Object(o) = &v else {
            self.wrong_type(
                name,
                span,
                "an object of numbers such as { machine = 2 }",
                &v,
            );
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, item) in o {
            let n = self.as_uint(&format!("{name}.{k}"), item, span.clone(), min)?;
            out.insert(k.clone(), n);
        }
        Some(out)
    }

    /// Any value, as JSON (provider attributes are checked by type name only).
    pub fn json(&mut self, name: &str) -> Option<(serde_json::Value, Range<usize>)> {
        let (v, span) = self.value(name)?;
        Some((to_json(&v), span))
    }

    pub fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}
