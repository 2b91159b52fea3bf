//! `kloud enc HOSTNAME`: the puppet External Node Classifier.
//!
//! Puppet runs it with the node's certname and reads YAML from stdout: `classes` from the
//! host's puppet roles, `parameters` from its derived config, `environment` from
//! `--environment`, else the `provider "puppet"` block of the config in the current directory,
//! else `production`. An unknown host exits non-zero, which puppet reports as an unknown node.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::miette;

use super::diagnostics::load_or_report;
use crate::config::Config;
use crate::integrations::{self, follow::Location};
use kloud_provider_puppet::{PuppetProvider, DEFAULT_ENVIRONMENT};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's FQDN as HostDB records it (puppet passes the node's certname)
    pub hostname: String,
    /// Read this HostDB instead of the one the config in the current directory names
    #[arg(long, value_name = "URL", env = "KLOUD_HOSTDB")]
    pub hostdb: Option<String>,
    /// The puppet environment to put in the YAML (default: the puppet provider's, else production)
    #[arg(long, value_name = "ENV")]
    pub environment: Option<String>,
}

/// The config in the current directory, or `None` when there is none (no `*.hcl` files).
fn cwd_config() -> Result<Option<Config>, ExitCode> {
    let dir = Path::new(".");
    let has_hcl = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "hcl"))
        })
        .unwrap_or(false);
    if !has_hcl {
        return Ok(None);
    }
    load_or_report(dir, &[]).map(Some)
}

fn environment(block: Option<&serde_json::Value>) -> miette::Result<String> {
    let attrs = block
        .map(|env| {
            [("environment".to_string(), env.clone())]
                .into_iter()
                .collect()
        })
        .unwrap_or_default();
    let provider = PuppetProvider::from_block(&attrs, Path::new(".")).map_err(|errors| {
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        miette!(code = "kloud::enc::environment", "{}", text.join("; "))
    })?;
    Ok(provider.environment)
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let needs_config = args.hostdb.is_none() || args.environment.is_none();
    let config = if needs_config {
        match cwd_config() {
            Ok(c) => c,
            Err(code) => return Ok(code),
        }
    } else {
        None
    };
    let location = match (&args.hostdb, &config) {
        (Some(url), _) => Location {
            url: url.clone(),
            base_dir: PathBuf::from("."),
        },
        (None, Some(c)) => Location {
            url: c.settings.hostdb.clone(),
            base_dir: c.dir.clone(),
        },
        (None, None) => {
            return Err(miette!(
                code = "kloud::enc::no_hostdb",
                help = "run it in the config directory, or pass --hostdb URL (or set KLOUD_HOSTDB)",
                "no HostDB: there is no config in the current directory"
            ))
        }
    };
    let environment = match &args.environment {
        Some(e) => environment(Some(&serde_json::Value::String(e.clone())))?,
        None => {
            let block = config.as_ref().and_then(|c| {
                c.providers
                    .values()
                    .find(|p| p.kind == kloud_provider_puppet::PROVIDER)
                    .and_then(|p| p.attributes.get("environment"))
            });
            match block {
                Some(b) => environment(Some(b))?,
                None => DEFAULT_ENVIRONMENT.to_string(),
            }
        }
    };
    let store = location.open().map_err(|e| {
        miette!(
            code = "kloud::hostdb::open",
            "cannot open HostDB `{}`: {e}",
            location.url
        )
    })?;
    let name = args.hostname.trim_end_matches('.').to_ascii_lowercase();
    let record = integrations::host_record(&*store, &name)
        .map_err(|e| miette!(code = "kloud::hostdb::read", "cannot read HostDB: {e}"))?;
    let Some(record) = record else {
        eprintln!("kloud enc: host `{name}` is not recorded in HostDB");
        return Ok(ExitCode::from(1));
    };
    print!("{}", kloud_provider_puppet::enc_yaml(&record, &environment));
    Ok(ExitCode::SUCCESS)
}
