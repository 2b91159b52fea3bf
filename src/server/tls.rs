//! Serving a router over HTTPS (rustls through axum-server): certificates from PEM files or a
//! generated self-signed one with its SHA-256 fingerprint, header-read and handshake timeouts,
//! and an HSTS header on every answer.
//!
//! `kloud serve --tls-cert FILE --tls-key FILE` loads with [`load_pem_files`];
//! `--tls-self-signed` generates with [`self_signed`] and prints [`SelfSigned::fingerprint`].
//! Either way [`serve`] runs the router until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// One year, the usual HSTS lifetime; sent only over TLS.
pub const HSTS: &str = "max-age=31536000";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("`{path}` holds no PEM {what}")]
    Missing { path: String, what: &'static str },
    #[error("`{path}`: {message}")]
    Pem { path: String, message: String },
    #[error("the certificate and key cannot be used: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Timeouts of a TLS server.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The TLS handshake must end within this.
    pub handshake: Duration,
    /// A request's headers must arrive within this; it also closes a keep-alive connection
    /// that stays idle that long.
    pub header_read: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(30),
        }
    }
}

/// A generated self-signed certificate.
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the DER certificate, as `AB:CD:…` (what browsers and `openssl x509
    /// -fingerprint -sha256` show).
    pub fingerprint: String,
}

/// `AB:CD:…`: the SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A self-signed certificate for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<SelfSigned, TlsError> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())?;
    Ok(SelfSigned {
        cert_pem: generated.cert.pem(),
        key_pem: generated.signing_key.serialize_pem(),
        fingerprint: fingerprint(generated.cert.der()),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A rustls server config from the PEM files `--tls-cert` and `--tls-key` name.
pub fn load_pem_files(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    server_config_labelled(
        &cert_pem,
        &key_pem,
        &cert.display().to_string(),
        &key.display().to_string(),
    )
}

/// A rustls server config from PEM text (a certificate chain and its private key).
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_labelled(cert_pem, key_pem, "certificate", "key")
}

fn server_config_labelled(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let pem_error = |path: &str, e: std::io::Error| TlsError::Pem {
        path: path.to_string(),
        message: e.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(cert_name, e))?;
    if chain.is_empty() {
        return Err(TlsError::Missing {
            path: cert_name.to_string(),
            what: "certificate",
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| pem_error(key_name, e))?
        .ok_or_else(|| TlsError::Missing {
            path: key_name.to_string(),
            what: "private key",
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Add `Strict-Transport-Security` to every answer of `router` (only for routers served over
/// TLS: browsers ignore it over http, and it must not be sent there).
pub fn with_hsts(router: Router) -> Router {
    router.layer(axum::middleware::map_response(add_hsts))
}

async fn add_hsts(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    res
}

/// Serve `app` (with HSTS) over TLS on `listener` until `shutdown` resolves; connections then
/// get a few seconds to finish.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let acceptor =
        RustlsAcceptor::new(RustlsConfig::from_config(tls)).handshake_timeout(timeouts.handshake);
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let mut server = axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle)
        .http1_only()
        .first_request_timeout(timeouts.header_read);
    server
        .http_builder()
        .http1()
        .header_read_timeout(timeouts.header_read);
    server
        .serve(with_hsts(app).into_make_service_with_connect_info::<SocketAddr>())
        .await
}

/// A TLS server on its own thread (tests, benchmarks); stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// `https://ADDR`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start a TLS server on `addr` (port 0: a free one) on a new thread with `threads` workers;
/// `make_app` builds the router inside the server's runtime (routers that start tasks need one).
pub fn spawn(
    addr: SocketAddr,
    make_app: impl FnOnce() -> Router + Send + 'static,
    tls: Arc<rustls::ServerConfig>,
    timeouts: Timeouts,
    threads: usize,
) -> std::io::Result<Running> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let listener = std::net::TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("kloud-tls".to_string())
        .spawn(move || {
            // Inside the runtime's context (routers start tasks) but not inside `block_on`:
            // a synchronous store (PostgreSQL's client) may block while the router is built.
            let app = {
                let _context = rt.enter();
                make_app()
            };
            let _ = rt.block_on(serve(listener, app, tls, timeouts, async {
                let _ = rx.await;
            }));
            rt.shutdown_timeout(Duration::from_secs(2));
        })?;
    Ok(Running {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}
