//! Templates (design §12): files rendered from HostDB and kept true, like consul-template.
//!
//! One converge of a template is: render its source with the [`context`] of what HostDB holds
//! → compare with the destination → if the text differs, stage the new file beside it
//! ([`write`]), run `check` on the staged file, rename it into place, run `on_change`
//! ([`command`], with a time limit). A failed check deletes the staged file: the old one
//! stays and the converge is an error. Nothing is written, and `on_change` does not run, when
//! the text is unchanged.
//!
//! [`converge_all`] is what `kloud apply` runs after the hosts; [`follow`] keeps templates
//! converged while HostDB changes (`kloud sync template --watch`).

pub mod command;
pub mod context;
pub mod follow;
pub mod render;
pub mod write;

use std::path::Path;

use crate::config::{Config, Template};
use crate::hostdb::{Store, StoreError};

pub use command::CommandError;
pub use context::{Context, Fleet};
pub use render::RenderError;
pub use write::WriteError;

/// What one converge of a template did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination already held the rendered text.
    Unchanged { hosts: usize },
    /// The destination was written (`created`: it did not exist) and `on_change` ran (if any).
    Written {
        hosts: usize,
        created: bool,
        bytes: usize,
        on_change: bool,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Unchanged { hosts } => write!(f, "{hosts} hosts, unchanged"),
            Outcome::Written {
                hosts,
                created,
                bytes,
                on_change,
            } => write!(
                f,
                "{hosts} hosts, {} ({bytes} bytes){}",
                if *created { "created" } else { "rewritten" },
                if *on_change { ", on_change ran" } else { "" }
            ),
        }
    }
}

/// Why a template was not converged.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("cannot read HostDB: {0}")]
    Store(#[from] StoreError),
    #[error("cannot render {0}")]
    Render(#[from] RenderError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("check failed, `{}` kept as it was: {error}", .destination)]
    Check {
        destination: String,
        error: CommandError,
    },
    #[error("`{}` was written but on_change failed: {error}", .destination)]
    OnChange {
        destination: String,
        error: CommandError,
    },
    #[error("no template `{0}` in the config")]
    Unknown(String),
    #[error("the config declares no template")]
    NoneDeclared,
}

/// Converge one template from `fleet`. `dir` is where commands run (the config directory).
pub fn converge(
    template: &Template,
    fleet: &Fleet,
    domain: &str,
    dir: &Path,
) -> Result<Outcome, TemplateError> {
    let ctx = context::context(template, fleet, domain)?;
    let hosts = ctx.hosts.len();
    let text = render::render(template, &ctx)?;
    let dest = &template.destination;
    let old = write::current(dest)?;
    if old.text.as_deref() == Some(text.as_bytes()) {
        return Ok(Outcome::Unchanged { hosts });
    }
    let staged = write::stage(dest, &text, &old)?;
    let shown = dest.display().to_string();
    if let Some(check) = &template.check {
        let cmd = render::command(check, &staged.path().display().to_string(), template)?;
        command::run(&cmd, dir, template.timeout).map_err(|error| TemplateError::Check {
            destination: shown.clone(),
            error,
        })?;
    }
    staged.commit()?;
    if let Some(on_change) = &template.on_change {
        let cmd = render::command(on_change, &shown, template)?;
        command::run(&cmd, dir, template.timeout).map_err(|error| TemplateError::OnChange {
            destination: shown.clone(),
            error,
        })?;
    }
    Ok(Outcome::Written {
        hosts,
        created: old.text.is_none(),
        bytes: text.len(),
        on_change: template.on_change.is_some(),
    })
}

/// Run `template`'s `on_change` again (after it failed: the file is already in place, so the
/// next converge finds the text unchanged and would not run it).
pub fn rerun_on_change(template: &Template, dir: &Path) -> Result<(), TemplateError> {
    let Some(on_change) = &template.on_change else {
        return Ok(());
    };
    let shown = template.destination.display().to_string();
    let cmd = render::command(on_change, &shown, template)?;
    command::run(&cmd, dir, template.timeout)
        .map(drop)
        .map_err(|error| TemplateError::OnChange {
            destination: shown,
            error,
        })
}

/// One template's name and how its converge went.
pub type Converged = (String, Result<Outcome, TemplateError>);

/// Converge `templates` (in name order) from one read of HostDB.
pub fn converge_these(config: &Config, templates: &[&Template], fleet: &Fleet) -> Vec<Converged> {
    templates
        .iter()
        .map(|t| {
            let r = converge(t, fleet, &config.settings.domain, &config.dir);
            (t.name.clone(), r)
        })
        .collect()
}

/// Converge every template of the config, as `kloud apply` does after the hosts. Costs
/// nothing (no HostDB read) when the config has no template.
pub fn converge_all(config: &Config, store: &dyn Store) -> Vec<Converged> {
    if config.templates.is_empty() {
        return Vec::new();
    }
    let all: Vec<&Template> = config.templates.values().collect();
    match Fleet::read(store) {
        Ok(fleet) => converge_these(config, &all, &fleet),
        Err(e) => all
            .iter()
            .map(|t| (t.name.clone(), Err(TemplateError::Store(e.clone()))))
            .collect(),
    }
}

/// The templates `name` picks (every template when `None`), or why there are none.
pub fn select<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> Result<Vec<&'a Template>, TemplateError> {
    match name {
        Some(n) => config
            .templates
            .get(n)
            .map(|t| vec![t])
            .ok_or_else(|| TemplateError::Unknown(n.to_string())),
        None if config.templates.is_empty() => Err(TemplateError::NoneDeclared),
        None => Ok(config.templates.values().collect()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::{HostFilter, SourceFile};
    use crate::hostdb::{Host, State};

    fn template(dir: &Path, source: &str, check: Option<&str>) -> Template {
        Template {
            name: "t".into(),
            source: Arc::new(SourceFile::new("t.j2", source)),
            source_path: dir.join("t.j2"),
            destination: dir.join("out/t.cfg"),
            hosts: HostFilter::default(),
            check: check.map(str::to_string),
            on_change: Some("echo ran >> changes.log".into()),
            timeout: Duration::from_secs(5),
            vars: Default::default(),
        }
    }

    fn fleet(names: &[&str]) -> Fleet {
        let containers = names
            .iter()
            .map(|n| {
                let mut h = Host::container(n);
                h.state = Some(State::Running);
                h.ip = Some("10.0.0.1".into());
                h
            })
            .collect();
        Fleet {
            containers,
            ..Fleet::default()
        }
    }

    fn changes(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("changes.log"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    #[test]
    fn written_only_when_the_text_changes_and_on_change_runs_then() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = template(d, "{% for h in hosts %}{{ h.name }}\n{% endfor %}", None);
        let r = converge(&t, &fleet(&["a.t"]), "t", d).unwrap();
        assert!(
            matches!(
                r,
                Outcome::Written {
                    created: true,
                    hosts: 1,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(changes(d), 1);
        let r = converge(&t, &fleet(&["a.t"]), "t", d).unwrap();
        assert_eq!(r, Outcome::Unchanged { hosts: 1 });
        assert_eq!(changes(d), 1, "no on_change without a change");
        converge(&t, &fleet(&["a.t", "b.t"]), "t", d).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("out/t.cfg")).unwrap(),
            "a.t\nb.t\n"
        );
        assert_eq!(changes(d), 2);
    }

    #[test]
    fn a_failed_check_keeps_the_old_file_and_skips_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The check sees the new file: it refuses one that names b.t.
        let t = template(
            d,
            "{% for h in hosts %}{{ h.name }}\n{% endfor %}",
            Some("! grep -q b.t {{ path }}"),
        );
        converge(&t, &fleet(&["a.t"]), "t", d).unwrap();
        let e = converge(&t, &fleet(&["a.t", "b.t"]), "t", d).unwrap_err();
        assert!(matches!(e, TemplateError::Check { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(d.join("out/t.cfg")).unwrap(),
            "a.t\n"
        );
        assert_eq!(changes(d), 1);
        assert_eq!(
            std::fs::read_dir(d.join("out")).unwrap().count(),
            1,
            "no litter"
        );
    }

    #[test]
    fn a_render_error_names_the_template_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = template(
            d,
            "ok\n{% for h in hosts %}\n{{ h.adress }}\n{% endfor %}\n",
            None,
        );
        let e = converge(&t, &fleet(&["a.t"]), "t", d).unwrap_err();
        let TemplateError::Render(r) = &e else {
            panic!("{e}")
        };
        assert_eq!(r.line, Some(3));
        assert!(
            e.to_string().starts_with("cannot render t.j2 line 3: "),
            "{e}"
        );
        assert!(!d.join("out/t.cfg").exists());
    }
}
