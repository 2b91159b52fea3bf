//! What the reading commands (`hosts`, `tags`, `history`) share: tables, cells, the actor of
//! CLI writes and argument parsers.

use crate::hostdb::{Actor, Host, Kind};
use crate::size::{format_gib, format_mib};

/// Who CLI writes are recorded for.
pub fn cli_actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    Actor {
        name: format!("{user} (kloud cli)"),
        message: None,
    }
}

/// Print rows as a table with a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                let pad = widths[i] - c.chars().count() + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn dash(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".to_string())
}

/// A host's size for a table cell, e.g. `2cpu 512MiB 10GiB disk`.
pub fn size(h: &Host) -> String {
    let mut parts = Vec::new();
    if let Some(c) = h.cpu {
        parts.push(format!("{c}cpu"));
    }
    if let Some(m) = h.memory_mib {
        parts.push(format_mib(m));
    }
    if let Some(d) = h.disk_gib {
        parts.push(format!("{} disk", format_gib(d)));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(" ")
    }
}

/// Parse `K=V`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

pub fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("expected `machine` or `container`, got `{s}`"))
}
