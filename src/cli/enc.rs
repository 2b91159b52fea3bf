//! `kloud enc HOSTNAME`: the puppet External Node Classifier.
//!
//! Puppet runs it with the node's certname and reads YAML from stdout: `classes` from the
//! host's puppet roles, `parameters` from its derived config, `environment` from
//! `--environment`, else the `provider "puppet"` block of the config in the current directory,
//! else `production`. An unknown host exits non-zero, which puppet reports as an unknown node.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::miette;

use super::store::{cwd_config, open_at};
use crate::config::locate;
use crate::hostdb::location::Location;
use crate::integrations;
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
    let config = if needs_config { cwd_config()? } else { None };
    let location = match (&args.hostdb, &config) {
        (flag, Some(c)) => locate::for_config(flag.as_deref(), c),
        (Some(url), None) => Location {
            url: url.clone(),
            base_dir: PathBuf::from("."),
            source: "--hostdb".into(),
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
    let store = open_at(&location, true)?;
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
