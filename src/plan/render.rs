//! Showing a plan to people: the terminal (after Terraform) and a pull-request comment.
//!
//! Deletes and replaces come first, so the dangerous part of a plan is read first; no-ops are
//! counted, not listed; attribute changes inside an update are a line diff (`similar`).

use std::fmt::Write as _;

use super::{Action, Change, HostState, MachineChange, Plan};
use crate::size::{format_gib, format_mib};

/// How to render for a terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub colour: bool,
    /// One line per change.
    pub compact: bool,
}

fn paint(style: Style, action: Action, text: &str) -> String {
    if !style.colour {
        return text.to_string();
    }
    let code = match action {
        Action::Create => "32",
        Action::Update => "33",
        Action::Replace => "35",
        Action::Delete => "31",
        Action::NoOp => "0",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn bold(style: Style, text: &str) -> String {
    if style.colour {
        format!("\x1b[1m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The attribute lines of a host, in a fixed order, for display and diffing.
fn attributes(h: &HostState) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("class", quote(&h.class)),
        (
            "machine",
            h.machine
                .as_deref()
                .map_or("(known after placement)".into(), quote),
        ),
        (
            "ip",
            h.ip.as_deref().map_or("(known after apply)".into(), quote),
        ),
        ("cpu", h.cpu.to_string()),
        ("memory", quote(&format_mib(h.memory_mib))),
        ("disk", quote(&format_gib(h.disk_gib))),
        ("image", quote(&h.image)),
    ];
    if !h.tags.is_empty() {
        out.push(("tags", list(&h.tags)));
    }
    if !h.puppet_roles.is_empty() {
        out.push(("puppet_roles", list(&h.puppet_roles)));
    }
    if !h.properties.is_empty() {
        out.push((
            "properties",
            serde_json::to_string(&h.properties).unwrap_or_default(),
        ));
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn attr_lines(h: &HostState) -> String {
    let attrs = attributes(h);
    let width = attrs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    attrs
        .iter()
        .map(|(k, v)| format!("{k:width$} = {v}\n"))
        .collect()
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Create => "will be created",
        Action::Update => "will be updated in place",
        Action::Replace => "will be replaced",
        Action::Delete => "will be destroyed",
        Action::NoOp => "is unchanged",
    }
}

fn change_block(out: &mut String, c: &Change, style: Style) {
    let sym = c.action.symbol();
    let _ = writeln!(
        out,
        "  {} {} {}{}",
        bold(style, "#"),
        bold(style, &c.address),
        describe(c.action),
        if c.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.reason)
        }
    );
    let _ = writeln!(
        out,
        "  {} host \"{}\" {{",
        paint(style, c.action, sym),
        c.address
    );
    match (c.action, &c.before, &c.after) {
        (Action::Update | Action::Replace, Some(b), Some(a)) => {
            let before = attr_lines(b);
            let after = attr_lines(a);
            let diff = similar::TextDiff::from_lines(&before, &after);
            for op in diff.iter_all_changes() {
                let (mark, action) = match op.tag() {
                    similar::ChangeTag::Delete => ("-", Action::Delete),
                    similar::ChangeTag::Insert => ("+", Action::Create),
                    similar::ChangeTag::Equal => (" ", Action::NoOp),
                };
                let line = format!("      {mark} {}", op.value().trim_end());
                let _ = writeln!(out, "{}", paint(style, action, &line));
            }
        }
        (_, _, Some(a)) => {
            for line in attr_lines(a).lines() {
                let _ = writeln!(out, "      {} {line}", paint(style, c.action, sym));
            }
        }
        (_, Some(b), None) => {
            for line in attr_lines(b).lines() {
                let _ = writeln!(out, "      {} {line}", paint(style, c.action, "-"));
            }
        }
        _ => {}
    }
    let _ = writeln!(out, "    }}\n");
}

fn compact_line(out: &mut String, c: &Change, style: Style) {
    let target = c
        .after
        .as_ref()
        .or(c.before.as_ref())
        .map(|s| {
            format!(
                " on {} {}",
                s.machine.as_deref().unwrap_or("?"),
                s.ip.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{:>3} {}{}{}",
        paint(style, c.action, c.action.symbol()),
        c.address,
        target,
        if c.reason.is_empty() {
            String::new()
        } else {
            format!("  ({})", c.reason)
        }
    );
}

fn machine_line(out: &mut String, m: &MachineChange, style: Style) {
    let detail = m
        .after
        .as_ref()
        .or(m.before.as_ref())
        .map(|s| {
            format!(
                "{} cpu, {}, {} — {}",
                s.cpu,
                format_mib(s.memory_mib),
                format_gib(s.disk_gib),
                s.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{:>3} machine {} ({detail}){}",
        paint(style, m.action, m.action.symbol()),
        m.address,
        if m.reason.is_empty() {
            String::new()
        } else {
            format!("  {}", m.reason)
        }
    );
}

/// The one-line summary that ends a plan.
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut line = format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        s.create, s.update, s.replace, s.delete, s.no_op
    );
    let machines = plan
        .machines
        .iter()
        .filter(|m| m.action != Action::NoOp)
        .count();
    if machines > 0 {
        let _ = write!(line, " {machines} machine record(s) to sync.");
    }
    if s.unplaced > 0 {
        let _ = write!(line, " {} host(s) cannot be placed.", s.unplaced);
    }
    line
}

/// The plan for a terminal.
pub fn human(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kloud plan against {} at index {}{}\n",
        plan.hostdb.url,
        plan.hostdb.index,
        if plan.destroy { " (destroy)" } else { "" }
    );
    if !plan.has_changes() && plan.unplaced.is_empty() {
        let _ = writeln!(
            out,
            "No changes. The {} hosts this config manages match HostDB.",
            plan.summary.no_op
        );
        return out;
    }
    // The dangerous part first.
    let dangerous: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
        .collect();
    if !dangerous.is_empty() {
        let _ = writeln!(out, "{}", bold(style, "Deletes and replaces:"));
        for c in &dangerous {
            compact_line(&mut out, c, style);
        }
        out.push('\n');
    }
    let machine_changes: Vec<&MachineChange> = plan
        .machines
        .iter()
        .filter(|m| m.action != Action::NoOp)
        .collect();
    if !machine_changes.is_empty() {
        let _ = writeln!(out, "{}", bold(style, "Machines:"));
        for m in machine_changes {
            machine_line(&mut out, m, style);
        }
        out.push('\n');
    }
    let shown: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(out, "{}", bold(style, "Hosts:"));
        for c in shown {
            if style.compact {
                compact_line(&mut out, c, style);
            } else {
                change_block(&mut out, c, style);
            }
        }
        if style.compact {
            out.push('\n');
        }
    }
    if plan.summary.no_op > 0 {
        let _ = writeln!(
            out,
            "  ({} unchanged hosts not shown)\n",
            plan.summary.no_op
        );
    }
    if !plan.unplaced.is_empty() {
        let _ = writeln!(out, "{}", bold(style, "Cannot be placed:"));
        for u in &plan.unplaced {
            let reasons = u
                .reasons
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "  ! {} (class {}): machines rejected — {reasons}",
                u.address, u.class
            );
            if !u.explanation.is_empty() {
                let _ = writeln!(out, "    {}", u.explanation);
            }
        }
        out.push('\n');
    }
    for note in &plan.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    let _ = writeln!(out, "{}", bold(style, &summary_line(plan)));
    out
}

/// Most lines a markdown section lists before saying how many more there are.
const MARKDOWN_SECTION_LINES: usize = 100;

/// A summary for a pull-request comment: counts, deletes first, bounded in size.
pub fn markdown(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### kloud plan{}\n",
        if plan.destroy { " (destroy)" } else { "" }
    );
    let _ = writeln!(
        out,
        "HostDB `{}` at index {}.\n",
        plan.hostdb.url, plan.hostdb.index
    );
    if !plan.has_changes() && plan.unplaced.is_empty() {
        let _ = writeln!(out, "**No changes.** {} hosts unchanged.", s.no_op);
        return out;
    }
    if s.delete > 0 || s.replace > 0 {
        let _ = writeln!(
            out,
            "> **Warning:** this plan deletes {} and replaces {} host(s).\n",
            s.delete, s.replace
        );
    }
    let _ = writeln!(out, "| action | hosts |\n|---|---:|");
    for (name, n) in [
        ("delete", s.delete),
        ("replace", s.replace),
        ("create", s.create),
        ("update", s.update),
        ("no-op", s.no_op),
        ("unplaced", s.unplaced),
    ] {
        let _ = writeln!(out, "| {name} | {n} |");
    }
    out.push('\n');
    for action in [
        Action::Delete,
        Action::Replace,
        Action::Create,
        Action::Update,
    ] {
        let items: Vec<&Change> = plan.changes.iter().filter(|c| c.action == action).collect();
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<details{}><summary>{} {} ({})</summary>\n",
            if matches!(action, Action::Delete | Action::Replace) {
                " open"
            } else {
                ""
            },
            action.symbol(),
            action.as_str(),
            items.len()
        );
        for c in items.iter().take(MARKDOWN_SECTION_LINES) {
            let on = c
                .after
                .as_ref()
                .or(c.before.as_ref())
                .and_then(|h| h.machine.as_deref())
                .map(|m| format!(" on `{m}`"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- `{}`{on}{}",
                c.address,
                if c.reason.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", c.reason.replace('|', "\\|"))
                }
            );
        }
        if items.len() > MARKDOWN_SECTION_LINES {
            let _ = writeln!(out, "- … and {} more", items.len() - MARKDOWN_SECTION_LINES);
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    if !plan.unplaced.is_empty() {
        let _ = writeln!(out, "**Cannot be placed ({}):**\n", plan.unplaced.len());
        for u in plan.unplaced.iter().take(MARKDOWN_SECTION_LINES) {
            let _ = writeln!(out, "- `{}` — {}", u.address, u.explanation);
        }
        if plan.unplaced.len() > MARKDOWN_SECTION_LINES {
            let _ = writeln!(
                out,
                "- … and {} more",
                plan.unplaced.len() - MARKDOWN_SECTION_LINES
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    out
}
