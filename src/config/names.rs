//! Names: RFC 1123 labels and the minijinja templates that produce host and machine names.

use minijinja::{Environment, UndefinedBehavior};

/// Why a string is not a valid RFC 1123 label.
pub fn label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name cannot be empty".into());
    }
    if name.len() > 63 {
        return Some(format!(
            "`{name}` is {} characters long; at most 63 are allowed",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let why = if c.is_ascii_uppercase() {
            "uppercase letters are not allowed (names are compared case-insensitively)".to_string()
        } else {
            format!("the character `{c}` is not allowed")
        };
        return Some(format!("`{name}` is not an RFC 1123 label: {why}"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!(
            "`{name}` is not an RFC 1123 label: it cannot start or end with `-`"
        ));
    }
    None
}

/// Why a string is not a valid DNS domain (dot-separated labels).
pub fn domain_problem(domain: &str) -> Option<String> {
    if domain.len() > 253 {
        return Some("a domain is at most 253 characters".into());
    }
    domain.split('.').find_map(label_problem)
}

/// A help line that turns an invalid name into a valid one, when one is obvious.
pub fn suggest_label(name: &str) -> String {
    let fixed: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let fixed = fixed.trim_matches('-');
    if fixed.is_empty() || label_problem(fixed).is_some() {
        "use lowercase letters, digits and `-`, at most 63 characters".into()
    } else {
        format!("use lowercase letters, digits and `-`, for example `{fixed}`")
    }
}

/// Renders one name template many times (a class's hosts, a group's machines).
pub struct NameRenderer<'s> {
    kind: Kind<'s>,
}

enum Kind<'s> {
    /// No template syntax at all: every render gives the same text.
    Literal(&'s str),
    /// The default `{{ class }}-{{ index }}` and friends, without a template engine.
    PrefixIndex(String),
    Jinja(Box<Environment<'s>>),
}

impl<'s> NameRenderer<'s> {
    /// Compile `source`; the error is minijinja's message.
    pub fn new(source: &'s str, class: &str) -> Result<Self, String> {
        if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
            return Ok(Self {
                kind: Kind::Literal(source),
            });
        }
        for pattern in ["{{ class }}-{{ index }}", "{{class}}-{{index}}"] {
            if source == pattern {
                return Ok(Self {
                    kind: Kind::PrefixIndex(format!("{class}-")),
                });
            }
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template("name", source).map_err(|e| describe(&e))?;
        Ok(Self {
            kind: Kind::Jinja(Box::new(env)),
        })
    }

    /// Render with the given context variables.
    pub fn render(&self, index: u32, vars: &[(&str, &str)]) -> Result<String, String> {
        match &self.kind {
            Kind::Literal(s) => Ok((*s).to_string()),
            Kind::PrefixIndex(prefix) => Ok(format!("{prefix}{index}")),
            Kind::Jinja(env) => {
                let tmpl = env.get_template("name").map_err(|e| describe(&e))?;
                let mut ctx: std::collections::BTreeMap<&str, minijinja::Value> = vars
                    .iter()
                    .map(|(k, v)| (*k, minijinja::Value::from(*v)))
                    .collect();
                ctx.insert("index", minijinja::Value::from(index));
                tmpl.render(ctx)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| describe(&e))
            }
        }
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label_problem("web-1"), None);
        assert!(label_problem("Web").is_some());
        assert!(label_problem("-web").is_some());
        assert!(label_problem("web_1").is_some());
        assert!(label_problem(&"a".repeat(64)).is_some());
        assert_eq!(domain_problem("dc1.example.internal"), None);
        assert!(domain_problem("dc1..internal").is_some());
    }

    #[test]
    fn templates_render_with_index_and_class() {
        let r = NameRenderer::new("{{ class }}-{{ index }}", "web").unwrap();
        assert_eq!(r.render(3, &[("class", "web")]).unwrap(), "web-3");
        let r = NameRenderer::new("hw-{{ group }}-{{ '%02d' | format(index) }}", "x");
        // `format` is not a builtin filter in lean minijinja: the error is reported, not panicked.
        assert!(r.is_ok());
        let r = NameRenderer::new("db{{ index + 10 }}", "db").unwrap();
        assert_eq!(r.render(1, &[("class", "db")]).unwrap(), "db11");
        let r = NameRenderer::new("{{ idx }}", "db").unwrap();
        assert!(r.render(1, &[]).is_err(), "undefined variables are errors");
        assert!(NameRenderer::new("{{ index ", "db").is_err());
    }
}
