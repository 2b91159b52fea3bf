//! Commands for people (design §10): `kloud login URL`, `logout`, `offers`, `request OFFER`,
//! `mine`, `release NAME`, `recreate NAME` — thin clients of `kloud serve`'s self-service API.

mod client;
pub mod credentials;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use miette::{miette, IntoDiagnostic};
use serde_json::{json, Value};

use super::table::print_table;
use crate::size::{format_gib, format_mib};
use client::Client;
use credentials::Saved;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The server, e.g. https://kloud.example:7480
    pub url: String,
    /// Your directory (LDAP) name; default $USER
    #[arg(long, short)]
    pub user: Option<String>,
    /// Trust this CA (PEM) for the server, beside the system's
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Read the password from standard input (one line) even on a terminal
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The offer to take a host of (`kloud offers` lists them)
    pub offer: String,
    /// A public key file to log in with (repeatable); default: your keys in the directory
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<PathBuf>,
    /// Wait until the host is running (or failed)
    #[arg(long)]
    pub wait: bool,
    /// Print JSON instead of a line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// The host: its name or its FQDN
    pub name: String,
    /// Wait until the work is done
    #[arg(long)]
    pub wait: bool,
}

/// `kloud login URL`: sign in and keep the session.
pub fn run_login(args: LoginArgs) -> miette::Result<ExitCode> {
    let url = args.url.trim_end_matches('/').to_string();
    let user = match args.user {
        Some(u) => u,
        None => std::env::var("USER").map_err(|_| miette!("pass --user NAME"))?,
    };
    let password = client::read_password(&format!("password for {user}: "), args.password_stdin)?;
    let client = Client::new(&url, None, args.ca_file.as_deref())?;
    let session = client.post(
        "/v1/auth/login",
        json!({"username": user, "password": password}),
    )?;
    let field = |k: &str| session[k].as_str().unwrap_or_default().to_string();
    let saved = Saved {
        url,
        user: field("user"),
        role: field("role"),
        expires_at: field("expires_at"),
        token: field("token"),
        ca_file: args.ca_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
    };
    let path = credentials::save(&saved)?;
    println!(
        "signed in as {} ({}) until {}; session kept in {}",
        saved.user,
        saved.role,
        saved.expires_at,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `kloud logout`: end the session on the server and forget it here.
pub fn run_logout() -> miette::Result<ExitCode> {
    let saved = credentials::load()?;
    let client = Client::signed_in(&saved)?;
    // A session that already ended is gone either way.
    let ended = client.post("/v1/auth/logout", Value::Null);
    credentials::remove()?;
    match ended {
        Ok(_) => println!("signed out"),
        Err(e) => println!("signed out here; the server said: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `kloud offers`
pub fn run_offers(args: ListArgs) -> miette::Result<ExitCode> {
    let saved = credentials::load()?;
    let offers = Client::signed_in(&saved)?.get("/v1/offers")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&offers).into_diagnostic()?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = items(&offers)
        .iter()
        .map(|o| {
            vec![
                s(o, "name"),
                o["cpu"].to_string(),
                format_mib(o["memory_mib"].as_u64().unwrap_or(0)),
                format_gib(o["disk_gib"].as_u64().unwrap_or(0)),
                s(o, "image"),
                format!("{} of {}", o["used"], o["per_user"]),
            ]
        })
        .collect();
    print_table(&["OFFER", "CPU", "MEMORY", "DISK", "IMAGE", "YOURS"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// `kloud request OFFER`
pub fn run_request(args: RequestArgs) -> miette::Result<ExitCode> {
    let saved = credentials::load()?;
    let client = Client::signed_in(&saved)?;
    let mut keys = Vec::new();
    for path in &args.ssh_keys {
        let text = std::fs::read_to_string(path)
            .map_err(|e| miette!("reading {}: {e}", path.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    let mut host = client.post(
        "/v1/self/hosts",
        json!({"offer": args.offer, "ssh_keys": keys}),
    )?;
    if args.wait {
        host = wait(&client, &s(&host, "name"), |h| {
            matches!(h["state"].as_str(), Some("running" | "failed"))
        })?;
    }
    show_host(&host, args.json)?;
    Ok(exit_for(&host))
}

/// `kloud mine`
pub fn run_mine(args: ListArgs) -> miette::Result<ExitCode> {
    let saved = credentials::load()?;
    let hosts = Client::signed_in(&saved)?.get("/v1/self/hosts")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&hosts).into_diagnostic()?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = items(&hosts)
        .iter()
        .map(|h| {
            vec![
                s(h, "name"),
                s(h, "offer"),
                s(h, "state"),
                s(h, "machine"),
                s(h, "ip"),
                format!("ssh {}@{}", s(h, "user"), s(h, "ip")),
            ]
        })
        .collect();
    print_table(
        &["HOST", "OFFER", "STATE", "MACHINE", "IP", "LOG IN"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// `kloud release NAME`
pub fn run_release(args: HostArgs) -> miette::Result<ExitCode> {
    let saved = credentials::load()?;
    let client = Client::signed_in(&saved)?;
    let name = resolve(&client, &args.name)?;
    let host = client.delete(&format!("/v1/self/hosts/{name}"))?;
    if args.wait {
        client.wait_gone(&format!("/v1/self/hosts/{name}"), TIMEOUT)?;
        println!("{name}: released");
    } else {
        println!("{name}: {}", s(&host, "state"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `kloud recreate NAME`
pub fn run_recreate(args: HostArgs) -> miette::Result<ExitCode> {
    let saved = credentials::load()?;
    let client = Client::signed_in(&saved)?;
    let name = resolve(&client, &args.name)?;
    let mut host = client.post(&format!("/v1/self/hosts/{name}/recreate"), Value::Null)?;
    if args.wait {
        host = wait(&client, &name, |h| {
            matches!(h["state"].as_str(), Some("running" | "failed"))
        })?;
    }
    show_host(&host, false)?;
    Ok(exit_for(&host))
}

const TIMEOUT: Duration = Duration::from_secs(900);

/// A short name (`small-carol-1`) is the one host of yours whose FQDN starts with it.
fn resolve(client: &Client, name: &str) -> miette::Result<String> {
    if name.contains('.') {
        return Ok(name.to_string());
    }
    let hosts = client.get("/v1/self/hosts")?;
    let prefix = format!("{name}.");
    items(&hosts)
        .iter()
        .map(|h| s(h, "name"))
        .find(|n| n.starts_with(&prefix))
        .ok_or_else(|| {
            miette!(
                code = "kloud::people::unknown_host",
                help = "`kloud mine` lists your hosts",
                "you have no host `{name}`"
            )
        })
}

/// Poll the host until `done` (a 404 is an error: it went away).
fn wait(client: &Client, name: &str, done: impl Fn(&Value) -> bool) -> miette::Result<Value> {
    let started = Instant::now();
    loop {
        let host = client.get(&format!("/v1/self/hosts/{name}"))?;
        if done(&host) {
            return Ok(host);
        }
        if started.elapsed() > TIMEOUT {
            return Err(miette!(
                "{name} is still {} after {TIMEOUT:?}",
                s(&host, "state")
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn show_host(h: &Value, json: bool) -> miette::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(h).into_diagnostic()?);
        return Ok(());
    }
    println!(
        "{}: {} on {} at {}",
        s(h, "name"),
        s(h, "state"),
        s(h, "machine"),
        s(h, "ip")
    );
    if h["state"] == "running" {
        println!("log in: ssh {}@{}", s(h, "user"), s(h, "ip"));
    }
    Ok(())
}

fn exit_for(h: &Value) -> ExitCode {
    if h["state"] == "failed" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
