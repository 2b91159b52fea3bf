//! Expression evaluation: `var.NAME`, `env("X")`, arithmetic and string interpolation.
//!
//! hcl-rs evaluates but drops spans, so before evaluating an attribute we walk its hcl-edit
//! expression (which has spans) and report undefined variables, unknown functions and unset
//! environment variables at the exact sub-expression. Only a clean expression is evaluated.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl_edit::expr::{Expression, ForExpr, FuncCall, ObjectKey, Traversal, TraversalOperator};
use hcl_edit::visit::{self, Visit};
use hcl_edit::Span;

use super::diag::{did_you_mean, Diagnostic, SourceFile};

/// Functions a config may call.
const FUNCTIONS: &[&str] = &["env"];

fn env_func(args: FuncArgs) -> Result<hcl::Value, String> {
    let name = args[0].as_str().unwrap_or_default();
    std::env::var(name)
        .map(hcl::Value::String)
        .map_err(|_| format!("environment variable `{name}` is not set"))
}

/// The evaluation context shared by every attribute of a config.
pub struct Evaluator {
    ctx: Context<'static>,
    /// The values of `var.NAME`, for the `var.NAME` fast path.
    values: BTreeMap<String, hcl::Value>,
    variables: BTreeSet<String>,
    /// Declared variables that have no value (already reported).
    poisoned: BTreeSet<String>,
}

/// The result of evaluating one attribute.
pub struct Evaluated {
    pub value: hcl::Value,
    /// Whether `env()` contributed to the value (so it may be a secret).
    pub uses_env: bool,
}

impl Evaluator {
    /// A context with no variables: for `variable` defaults.
    pub fn bare() -> Self {
        Self::with_variables(BTreeMap::new())
    }

    /// A context with `var.NAME` for each variable; `None` marks a variable whose value could not
    /// be determined (already reported), so expressions using it are skipped silently.
    pub fn with_variables(vars: BTreeMap<String, Option<hcl::Value>>) -> Self {
        let mut ctx = Context::new();
        ctx.declare_func("env", FuncDef::new(env_func, [ParamType::String]));
        let variables = vars.keys().cloned().collect();
        let poisoned = vars
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let values: BTreeMap<String, hcl::Value> = vars
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or(hcl::Value::Null)))
            .collect();
        let object: hcl::Map<String, hcl::Value> =
            values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        ctx.declare_var("var", hcl::Value::Object(object));
        Self {
            ctx,
            values,
            variables,
            poisoned,
        }
    }

    /// Check and evaluate `expr` from `file`. Problems are returned as diagnostics.
    pub fn eval(
        &self,
        file: &Arc<SourceFile>,
        expr: &Expression,
    ) -> Result<Evaluated, Vec<Diagnostic>> {
        // Most attributes are literals: no reference can be undefined and nothing needs the
        // evaluator, so skip the walk and the conversion into hcl-rs.
        if let Some(value) = literal(expr) {
            return Ok(Evaluated {
                value,
                uses_env: false,
            });
        }
        let mut check = Check {
            evaluator: self,
            file,
            diags: Vec::new(),
            locals: BTreeSet::new(),
            uses_env: false,
            poisoned: false,
        };
        check.visit_expr(expr);
        if !check.diags.is_empty() || check.poisoned {
            return Err(check.diags);
        }
        let uses_env = check.uses_env;
        if let Some(value) = self.plain_variable(expr) {
            return Ok(Evaluated { value, uses_env });
        }
        let converted = hcl::Expression::from(expr.clone());
        match converted.evaluate(&self.ctx) {
            Ok(value) => Ok(Evaluated { value, uses_env }),
            Err(errors) => {
                let span = expr.span().unwrap_or(0..0);
                let message = errors.kind().to_string();
                Err(vec![Diagnostic::new(
                    "kloud::config::eval",
                    format!("cannot evaluate expression: {message}"),
                )
                .at(file, span)
                .label("this expression")
                .help("check the operand types: arithmetic needs numbers, interpolation needs strings or numbers")])
            }
        }
    }
}

impl Evaluator {
    /// The value of a bare `var.NAME` (already checked to be defined), without hcl-rs.
    fn plain_variable(&self, expr: &Expression) -> Option<hcl::Value> {
        let Expression::Traversal(t) = expr else {
            return None;
        };
        let Expression::Variable(root) = &t.expr else {
            return None;
        };
        match (root.as_str(), t.operators.as_slice()) {
            ("var", [op]) => match op.value() {
                TraversalOperator::GetAttr(name) => self.values.get(name.as_str()).cloned(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The value of an expression made only of literals (no reference, operator or template).
fn literal(expr: &Expression) -> Option<hcl::Value> {
    Some(match expr {
        Expression::Null(_) => hcl::Value::Null,
        Expression::Bool(b) => hcl::Value::Bool(*b.value()),
        Expression::Number(n) => hcl::Value::Number(*n.value()),
        Expression::String(s) => hcl::Value::String(s.value().clone()),
        Expression::Array(items) => {
            hcl::Value::Array(items.iter().map(literal).collect::<Option<Vec<_>>>()?)
        }
        Expression::Object(object) => {
            let mut map = hcl::Map::new();
            for (key, value) in object.iter() {
                let key = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_string(),
                    ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                    ObjectKey::Expression(_) => return None,
                };
                map.insert(key, literal(value.expr())?);
            }
            hcl::Value::Object(map)
        }
        _ => return None,
    })
}

/// Walks an expression looking for references that cannot be resolved.
struct Check<'a> {
    evaluator: &'a Evaluator,
    file: &'a Arc<SourceFile>,
    diags: Vec<Diagnostic>,
    /// Names bound by enclosing `for` expressions.
    locals: BTreeSet<String>,
    uses_env: bool,
    /// The expression uses a variable without a value.
    poisoned: bool,
}

impl Check<'_> {
    fn span_of(&self, s: Option<Range<usize>>) -> Range<usize> {
        s.unwrap_or(0..0)
    }
}

impl Visit for Check<'_> {
    fn visit_traversal(&mut self, node: &Traversal) {
        if let Expression::Variable(root) = &node.expr {
            if root.as_str() == "var" {
                if let Some(op) = node.operators.first() {
                    if let TraversalOperator::GetAttr(name) = op.value() {
                        if self.evaluator.poisoned.contains(name.as_str()) {
                            self.poisoned = true;
                        } else if !self.evaluator.variables.contains(name.as_str()) {
                            let span = self.span_of(node.span());
                            self.diags.push(
                                Diagnostic::new(
                                    "kloud::config::undefined_variable",
                                    format!("variable `{}` is not declared", name.as_str()),
                                )
                                .at(self.file, span)
                                .label("undefined variable")
                                .help(
                                    did_you_mean(
                                        name.as_str(),
                                        self.evaluator.variables.iter().map(String::as_str),
                                    )
                                    .unwrap_or_else(|| {
                                        format!(
                                            "declare it: variable \"{}\" {{ default = ... }}",
                                            name.as_str()
                                        )
                                    }),
                                ),
                            );
                        }
                    }
                }
                // Index expressions inside the traversal may reference things too.
                for op in &node.operators {
                    self.visit_traversal_operator(op.value());
                }
                return;
            }
        }
        visit::visit_traversal(self, node);
    }

    fn visit_expr(&mut self, node: &Expression) {
        let Expression::Variable(ident) = node else {
            return visit::visit_expr(self, node);
        };
        let name = ident.as_str();
        if self.locals.contains(name) {
            return;
        }
        let hint = if name == "var" {
            "name a variable: `var.NAME`".to_string()
        } else {
            format!("write a string in quotes: \"{name}\", or a variable as `var.{name}`")
        };
        let span = self.span_of(ident.span());
        self.diags.push(
            Diagnostic::new(
                "kloud::config::undefined_reference",
                format!("unknown name `{name}`: only `var.NAME` can be referenced"),
            )
            .at(self.file, span)
            .label("not a known name")
            .help(hint),
        );
    }

    fn visit_func_call(&mut self, node: &FuncCall) {
        let name = node.name.name.as_str();
        let span = self.span_of(node.span());
        if !node.name.namespace.is_empty() || !FUNCTIONS.contains(&name) {
            self.diags.push(
                Diagnostic::new(
                    "kloud::config::unknown_function",
                    format!("unknown function `{name}`"),
                )
                .at(self.file, span)
                .label("not a kloud function")
                .help(
                    did_you_mean(name, FUNCTIONS.iter().copied())
                        .unwrap_or_else(|| format!("the functions are: {}", FUNCTIONS.join(", "))),
                ),
            );
            return;
        }
        if name == "env" {
            self.uses_env = true;
            let args: Vec<&Expression> = node.args.iter().collect();
            if let [Expression::String(s)] = args.as_slice() {
                if std::env::var_os(s.as_str()).is_none() {
                    self.diags.push(
                        Diagnostic::new(
                            "kloud::config::env_not_set",
                            format!("environment variable `{}` is not set", s.as_str()),
                        )
                        .at(self.file, span)
                        .label("read here")
                        .help(format!("export {}=... before running kloud", s.as_str())),
                    );
                }
                return;
            }
        }
        visit::visit_func_call(self, node);
    }

    fn visit_for_expr(&mut self, node: &ForExpr) {
        let added: Vec<String> = node
            .intro
            .key_var
            .iter()
            .map(|k| k.as_str().to_string())
            .chain(std::iter::once(node.intro.value_var.as_str().to_string()))
            .filter(|n| self.locals.insert(n.clone()))
            .collect();
        visit::visit_for_expr(self, node);
        for n in added {
            self.locals.remove(&n);
        }
    }
}

/// Describe an HCL value's type for "expected X, found Y" messages.
pub fn type_name(v: &hcl::Value) -> &'static str {
    match v {
        hcl::Value::Null => "null",
        hcl::Value::Bool(_) => "a bool",
        hcl::Value::Number(_) => "a number",
        hcl::Value::String(_) => "a string",
        hcl::Value::Array(_) => "a list",
        hcl::Value::Object(_) => "an object",
    }
}

/// Convert an evaluated HCL value into JSON (for properties and provider attributes).
pub fn to_json(v: &hcl::Value) -> serde_json::Value {
    match v {
        hcl::Value::Null => serde_json::Value::Null,
        hcl::Value::Bool(b) => serde_json::Value::Bool(*b),
        hcl::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        hcl::Value::String(s) => serde_json::Value::String(s.clone()),
        hcl::Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        hcl::Value::Object(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}
