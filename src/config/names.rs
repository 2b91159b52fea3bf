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
    /// Text and `{{ variable }}` substitutions only (`web-{{ index }}`, `{{ class }}-{{ index }}`,
    /// …): rendered by concatenation, without a template engine. `source` is kept to let
    /// minijinja word the error when a variable is not defined.
    Simple {
        source: &'s str,
        segments: Vec<Segment<'s>>,
    },
    Jinja(Box<Environment<'s>>),
}

enum Segment<'s> {
    Text(&'s str),
    Var(&'s str),
}

/// Split a template into text and `{{ name }}` substitutions, or `None` when it uses anything
/// else (filters, expressions, blocks, comments, whitespace control).
fn simple_segments(source: &str) -> Option<Vec<Segment<'_>>> {
    if source.contains("{%") || source.contains("{#") {
        return None;
    }
    let mut segments = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            segments.push(Segment::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        let name = after[..close].trim();
        let identifier = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return None;
        }
        segments.push(Segment::Var(name));
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return None;
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    Some(segments)
}

impl<'s> NameRenderer<'s> {
    /// Compile `source`; the error is minijinja's message.
    pub fn new(source: &'s str) -> Result<Self, String> {
        if let Some(segments) = simple_segments(source) {
            return Ok(Self {
                kind: Kind::Simple { source, segments },
            });
        }
        Ok(Self {
            kind: Kind::Jinja(Box::new(compile(source)?)),
        })
    }

    /// Render with the given context variables.
    pub fn render(&self, index: u32, vars: &[(&str, &str)]) -> Result<String, String> {
        match &self.kind {
            Kind::Simple { source, segments } => {
                let mut out = String::new();
                for segment in segments {
                    match segment {
                        Segment::Text(text) => out.push_str(text),
                        Segment::Var("index") => out.push_str(&index.to_string()),
                        Segment::Var(name) => match vars.iter().find(|(k, _)| k == name) {
                            Some((_, value)) => out.push_str(value),
                            // Undefined: let minijinja say so in its words.
                            None => return jinja_render(&compile(source)?, index, vars),
                        },
                    }
                }
                Ok(out.trim().to_string())
            }
            Kind::Jinja(env) => jinja_render(env, index, vars),
        }
    }
}

fn compile(source: &str) -> Result<Environment<'_>, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("name", source).map_err(|e| describe(&e))?;
    Ok(env)
}

fn jinja_render(env: &Environment, index: u32, vars: &[(&str, &str)]) -> Result<String, String> {
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
        let r = NameRenderer::new("{{ class }}-{{ index }}").unwrap();
        assert_eq!(r.render(3, &[("class", "web")]).unwrap(), "web-3");
        let r = NameRenderer::new("hw-{{ group }}-{{ '%02d' | format(index) }}");
        // `format` is not a builtin filter in lean minijinja: the error is reported, not panicked.
        assert!(r.is_ok());
        let r = NameRenderer::new("db{{ index + 10 }}").unwrap();
        assert_eq!(r.render(1, &[("class", "db")]).unwrap(), "db11");
        let r = NameRenderer::new("{{ idx }}").unwrap();
        assert!(r.render(1, &[]).is_err(), "undefined variables are errors");
        assert!(NameRenderer::new("{{ index ").is_err());
    }

    #[test]
    fn the_simple_path_renders_what_minijinja_renders() {
        let vars = [("class", "web"), ("group", "rack-a")];
        for source in [
            "{{ class }}-{{ index }}",
            "{{class}}-{{index}}",
            "hw-{{ group }}-{{ index }}.x",
            " plain ",
            "{{ index }}}",
            "a{{ index }}b{{ index }}",
        ] {
            let r = NameRenderer::new(source).unwrap();
            assert!(matches!(r.kind, Kind::Simple { .. }), "{source}");
            let jinja = jinja_render(&compile(source).unwrap(), 7, &vars);
            assert_eq!(r.render(7, &vars), jinja, "{source}");
        }
        let r = NameRenderer::new("{{ idx }}-{{ index }}").unwrap();
        let jinja = jinja_render(&compile("{{ idx }}-{{ index }}").unwrap(), 1, &vars);
        assert!(jinja.is_err());
        assert_eq!(
            r.render(1, &vars),
            jinja,
            "undefined variables: minijinja's error"
        );
    }
}
