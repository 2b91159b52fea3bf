//! `kloud ssh HOST [-- CMD...]`: log in to a host by its name.
//!
//! The host is looked up in HostDB (its FQDN, or a short name that names exactly one host), and
//! OpenSSH is run to its recorded address as its class's login user: the `login { user }` of the
//! config in the current directory (`--config DIR`), else `kloud`, else `-l USER`. Host keys are
//! kept per config in `.kloud/known_hosts`, under the host's FQDN (so a replaced host that got
//! the same address is not taken for another), and accepted on first use.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use miette::miette;

use super::store::{open_reading, store_error};
use crate::config::{self, login};
use crate::hostdb::{Host, HostQuery, Kind, State, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host: its FQDN, or a short name (`web-1`) that names one host
    pub host: String,
    /// The command to run there instead of a login shell (after `--`)
    #[arg(last = true)]
    pub command: Vec<String>,
    /// Log in as this user instead of the class's login user
    #[arg(short = 'l', long = "user")]
    pub user: Option<String>,
    /// Private key to offer (ssh -i)
    #[arg(short = 'i', long = "identity")]
    pub identity: Option<PathBuf>,
    /// More ssh options, as `ssh -o` takes them (repeatable)
    #[arg(short = 'o', value_name = "OPTION")]
    pub options: Vec<String>,
    /// The config directory whose `login` blocks name the users
    #[arg(long = "config", default_value = ".")]
    pub config: PathBuf,
    /// HostDB URL; default from KLOUD_HOSTDB or the config in the current directory
    #[arg(long, value_name = "URL")]
    pub hostdb: Option<String>,
}

/// The one container that `name` names: its FQDN, or the first label of exactly one FQDN.
pub fn find_host(store: &dyn Store, name: &str) -> miette::Result<Host> {
    if let Some(h) = store.get_host(name).map_err(store_error)? {
        return Ok(h);
    }
    let q = HostQuery {
        kind: Some(Kind::Container),
        ..HostQuery::default()
    };
    let prefix = format!("{name}.");
    let found: Vec<Host> = store
        .all_hosts(&q)
        .map_err(store_error)?
        .into_iter()
        .filter(|h| h.name.starts_with(&prefix))
        .collect();
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one host")),
        0 => Err(miette!(
            code = "kloud::ssh::not_found",
            help = "`kloud hosts` lists the hosts HostDB records",
            "no host `{name}` in HostDB"
        )),
        _ => {
            let names: Vec<&str> = found.iter().map(|h| h.name.as_str()).collect();
            Err(miette!(
                code = "kloud::ssh::ambiguous",
                help = "give the full name",
                "`{name}` names several hosts: {}",
                names.join(", ")
            ))
        }
    }
}

/// The ssh command line for a host (without running it).
pub fn ssh_command(
    host: &Host,
    user: &str,
    args: &Args,
    known_hosts: &str,
) -> miette::Result<Command> {
    let ip = host.ip.as_deref().ok_or_else(|| {
        miette!(
            code = "kloud::ssh::no_address",
            "host `{}` has no address recorded",
            host.name
        )
    })?;
    let mut c = Command::new("ssh");
    c.args(["-l", user])
        .args(["-o", "StrictHostKeyChecking=accept-new"])
        .args(["-o", &format!("UserKnownHostsFile={known_hosts}")])
        .args(["-o", &format!("HostKeyAlias={}", host.name)]);
    if let Some(i) = &args.identity {
        c.arg("-i").arg(i);
    }
    for o in &args.options {
        c.args(["-o", o]);
    }
    c.arg(ip);
    if !args.command.is_empty() {
        c.arg("--").args(&args.command);
    }
    Ok(c)
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let store = open_reading(args.hostdb.as_deref())?;
    let host = find_host(store.as_ref(), &args.host)?;
    if host.state != Some(State::Running) {
        eprintln!(
            "warning: `{}` is recorded as `{}`",
            host.name,
            host.state.map_or("-", |s| s.as_str())
        );
    }
    // The login user comes from the config; a directory that is no config leaves the default.
    let loaded = config::load(&args.config, &Default::default()).ok();
    let user = args
        .user
        .clone()
        .or_else(|| {
            let class = host.class.as_deref()?;
            login::login_user(loaded.as_ref()?, class).map(str::to_string)
        })
        .unwrap_or_else(|| login::DEFAULT_USER.to_string());
    let kloud_dir = args.config.join(".kloud");
    let known_hosts = if kloud_dir.is_dir() {
        kloud_dir.join("known_hosts")
    } else {
        std::env::temp_dir().join("kloud-known_hosts")
    };
    let mut cmd = ssh_command(&host, &user, &args, &known_hosts.display().to_string())?;
    // Replace this process: the session is the user's, with their terminal and signals.
    let err = cmd.exec();
    Err(miette!(
        code = "kloud::ssh::exec",
        help = "install OpenSSH's client (`ssh`)",
        "cannot run ssh: {err}"
    ))
}
