//! `kloud serve [DIR]`: one server over the config in DIR (design §10) — the HostDB API at
//! `/v1/…`, sign-in with LDAP (`/v1/auth/login`, `/v1/auth/logout`) and the HostDB v1 API at
//! `/hostdb/v1/…`, self-service (`/v1/offers`, `/v1/self/hosts…`) with its background
//! worker, and the web UI at `/ui/` (`crate::ui`). With `--tls-cert`/`--tls-key` (or
//! `--tls-self-signed`) it serves https only, with HSTS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use miette::{miette, IntoDiagnostic};

use super::diagnostics::load_or_report;
use super::hostdb::shutdown_signal;
use super::store::open_for;
use crate::apply::{DriverSet, Drivers};
use crate::hostdb::Store;
use crate::identity::{self, Identity};
use crate::selfservice::{self, SelfService};
use crate::server::{self, tls, v1, ServerConfig};
use crate::ui;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config directory (its HostDB, its `auth` block)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:7480", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Use this HostDB instead of the one the config names
    #[arg(long, value_name = "URL", env = "KLOUD_HOSTDB")]
    pub hostdb: Option<String>,
    /// PEM certificate chain; with --tls-key, serve https only
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Generate a self-signed certificate for trying it out (its fingerprint is printed)
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let config = load_or_report(&args.dir, &[])?;
    let store: Arc<dyn Store> = Arc::from(open_for(&config, args.hostdb.as_deref())?);
    let tls = tls_config(&args)?;
    let identity = Arc::new(
        Identity::new(store.clone(), config.auth.as_ref())
            .map_err(|e| miette!(code = "kloud::serve::identity", "{e}"))?,
    );
    let config = Arc::new(config);
    let drivers: Arc<dyn DriverSet + Send> = Arc::new(Drivers::for_config(&config));
    let service = SelfService::new(
        store.clone(),
        config.clone(),
        drivers,
        selfservice::Settings::default(),
    );
    let access = config
        .auth
        .as_ref()
        .map(|a| a.hostdb_v1.clone())
        .unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    // Read here, outside the runtime: PostgreSQL's client blocks on a runtime of its own.
    let index = store
        .index()
        .map_err(|e| miette!(code = "kloud::serve::hostdb", "{e}"))?;
    let served = store.clone();
    let ui_options = ui::Options {
        tls: tls.is_some(),
        index: Some(index),
    };
    let result = rt.block_on(async move {
        // Routers that start tasks are built inside the runtime.
        let stop = Arc::new(AtomicBool::new(false));
        service.start_worker(stop.clone());
        let web = ui::Ui::new(
            served.clone(),
            identity.clone(),
            Some(service.clone()),
            ui_options,
        );
        let closer = web.closer();
        let shutdown_signal = move || async move {
            shutdown_signal().await;
            closer.close();
        };
        let app = server::router_at(served.clone(), ServerConfig::default(), index)
            .merge(identity::router(identity.clone()))
            .merge(selfservice::router(service.clone(), identity.clone()))
            .merge(v1::router(served, identity, access))
            .merge(ui::router(web));
        let listener = std::net::TcpListener::bind(args.listen).map_err(|e| {
            miette!(
                code = "kloud::serve::listen",
                "cannot listen on {}: {e}",
                args.listen
            )
        })?;
        let addr = listener.local_addr().into_diagnostic()?;
        match tls {
            Some(tls) => {
                eprintln!("kloud serve: https://{addr}");
                tls::serve(
                    listener,
                    app,
                    tls,
                    tls::Timeouts::default(),
                    shutdown_signal(),
                )
                .await
                .into_diagnostic()
            }
            None => {
                eprintln!("kloud serve: http://{addr} (no TLS: pass --tls-cert/--tls-key)");
                listener.set_nonblocking(true).into_diagnostic()?;
                let listener = tokio::net::TcpListener::from_std(listener).into_diagnostic()?;
                let limits = ServerConfig::default().limits;
                server::limits::serve(listener, app, &limits, shutdown_signal())
                    .await
                    .into_diagnostic()
            }
        }
    });
    // The store is dropped here, outside the runtime (PostgreSQL's client needs that).
    drop(rt);
    drop(store);
    result.map(|()| ExitCode::SUCCESS)
}

/// The TLS settings the flags ask for, if any.
fn tls_config(args: &Args) -> miette::Result<Option<Arc<rustls::ServerConfig>>> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let config = tls::load_pem_files(cert, key)
            .map_err(|e| miette!(code = "kloud::serve::tls", "{e}"))?;
        return Ok(Some(config));
    }
    if !args.tls_self_signed {
        return Ok(None);
    }
    let names = vec!["localhost".to_string(), args.listen.ip().to_string()];
    let generated =
        tls::self_signed(&names).map_err(|e| miette!(code = "kloud::serve::tls", "{e}"))?;
    eprintln!(
        "kloud serve: self-signed certificate, SHA-256 fingerprint {}",
        generated.fingerprint
    );
    let config = tls::server_config(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes())
        .map_err(|e| miette!(code = "kloud::serve::tls", "{e}"))?;
    Ok(Some(config))
}
