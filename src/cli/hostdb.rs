//! `kloud hostdb serve` and `kloud hostdb token …`: run the HostDB HTTP server and manage
//! its bearer tokens.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use miette::{miette, IntoDiagnostic};

use super::store::store_error;
use super::table::print_table;
use crate::config::locate::resolve;
use crate::hostdb::util::format_time;
use crate::hostdb::{Role, Store};
use crate::server::{serve, ServerConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: HostdbCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum HostdbCommand {
    /// Serve HostDB over HTTP
    Serve(ServeArgs),
    /// Create, list and revoke bearer tokens
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:7480", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The store to serve: `sqlite:PATH` or `postgres://…` (default: as `kloud hosts` finds it)
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Serve reads without a token
    #[arg(long)]
    pub anonymous_read: bool,
    /// Largest request body accepted, in bytes
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_body: usize,
    /// Longest a blocking query (`?index=N&wait=D`) is held, e.g. `5m` or `500ms`
    #[arg(long, default_value = "5m", value_parser = parse_wait, value_name = "DURATION")]
    pub max_wait: std::time::Duration,
    /// Worker threads (default: the number of CPUs)
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    crate::hostdb::util::parse_duration(s)
        .ok_or_else(|| format!("expected a duration such as `5m`, `30s` or `500ms`, got `{s}`"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("expected `reader`, `operator` or `admin`, got `{s}`"))
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed on the last line and is not stored
    Create {
        /// reader, operator (writes hosts and tags) or admin (manages tokens)
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A name to recognise the token by (recorded as the actor of its writes)
        #[arg(long)]
        name: Option<String>,
        /// Scope the token to one owner: it may create, change and delete only host records
        /// of that owner (other writes are refused `403 forbidden_owner`); reads are unchanged
        #[arg(long, value_name = "OWNER")]
        owner: Option<String>,
        /// The store: `sqlite:PATH` or `postgres://…`
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// List tokens (never their secrets)
    List {
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Revoke a token by id
    Revoke {
        id: String,
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
}

/// Open a database store (not a remote one: the server and token management own the data).
fn open_local(flag: Option<&str>) -> miette::Result<Box<dyn Store>> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    let loc = resolve(flag, &cwd).map_err(store_error)?;
    if loc.url.starts_with("http://") || loc.url.starts_with("https://") {
        return Err(miette!(
            code = "kloud::hostdb::bad_url",
            help = "pass `--store sqlite:PATH` or `--store postgres://…`",
            "`{}` is a HostDB server; this command needs the database itself",
            loc.url
        ));
    }
    super::store::open_at(&loc, false)
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args.command {
        HostdbCommand::Serve(a) => run_serve(a),
        HostdbCommand::Token(TokenCommand::Create {
            role,
            name,
            owner,
            store,
        }) => {
            let store = open_local(store.as_deref())?;
            let name = name.unwrap_or_else(|| role.as_str().to_string());
            let (info, secret) = store
                .token_create_scoped(&name, role, owner.as_deref())
                .map_err(store_error)?;
            let scope = info
                .owner
                .as_deref()
                .map(|o| format!(", writes only owner `{o}`"))
                .unwrap_or_default();
            eprintln!(
                "created token `{}` (id {}, role {}{scope}); keep the secret below, it is not stored",
                info.name,
                info.id,
                info.role.as_str()
            );
            println!("{secret}");
            Ok(ExitCode::SUCCESS)
        }
        HostdbCommand::Token(TokenCommand::List { store }) => {
            let store = open_local(store.as_deref())?;
            let rows: Vec<Vec<String>> = store
                .token_list()
                .map_err(store_error)?
                .into_iter()
                .map(|t| {
                    vec![
                        t.id,
                        t.name,
                        t.role.as_str().to_string(),
                        t.owner.unwrap_or_else(|| "-".to_string()),
                        format_time(t.created_ms),
                    ]
                })
                .collect();
            print_table(&["ID", "NAME", "ROLE", "OWNER", "CREATED"], &rows);
            Ok(ExitCode::SUCCESS)
        }
        HostdbCommand::Token(TokenCommand::Revoke { id, store }) => {
            let store = open_local(store.as_deref())?;
            store.token_delete(&id).map_err(store_error)?;
            println!("token {id} revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_serve(a: ServeArgs) -> miette::Result<ExitCode> {
    let store: Arc<dyn Store> = Arc::from(open_local(a.store.as_deref())?);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = a.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().into_diagnostic()?;
    let config = ServerConfig {
        anonymous_read: a.anonymous_read,
        max_body: a.max_body,
        max_wait: a.max_wait,
        ..ServerConfig::default()
    };
    let shown = store.url();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen).await.map_err(|e| {
            miette!(
                code = "kloud::hostdb::listen",
                "cannot listen on {}: {e}",
                a.listen
            )
        })?;
        let addr = listener.local_addr().into_diagnostic()?;
        eprintln!("hostdb: serving {shown} on http://{addr}");
        serve(listener, store, config, shutdown_signal())
            .await
            .into_diagnostic()
    })?;
    eprintln!("hostdb: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
