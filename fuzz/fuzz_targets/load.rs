//! Fuzz the config loader and the formatter: no input may panic; valid configs must load the
//! same after `fmt`, and `fmt` must be idempotent.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kloud::config::{self, Diagnostics, SourceFile, VarOverrides};
use libfuzzer_sys::fuzz_target;

fn load(text: &str) -> Option<config::Config> {
    let mut diags = Diagnostics::default();
    let file = Arc::new(SourceFile::new("fuzz.hcl", text.to_string()));
    let c = config::load_sources(Path::new("."), vec![file], &VarOverrides::new(), &BTreeMap::new(), &mut diags);
    // Every diagnostic renders a position inside the file.
    for d in &diags.0 {
        if let Some(l) = &d.location {
            assert!(l.span.start <= l.file.text.len() && l.span.end <= l.file.text.len());
            let _ = d.position();
        }
    }
    c.filter(|_| diags.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = load(text);
    if let Ok(formatted) = config::fmt::format(text) {
        assert_eq!(config::fmt::format(&formatted).ok().as_deref(), Some(formatted.as_str()), "fmt is idempotent");
        if let Some(before) = loaded {
            let after = load(&formatted).expect("a valid config stays valid after fmt");
            assert_eq!(before.hosts, after.hosts);
            assert_eq!(before.machines, after.machines);
        }
    }
});
