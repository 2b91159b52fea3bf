//! TLS to PostgreSQL with libpq's `sslmode` semantics, over rustls.
//!
//! The URL's `sslmode` and `sslrootcert` are read here (the `postgres` crate knows only
//! `disable|prefer|require` and no root certificate) and taken out before the crate parses
//! the rest:
//!
//! | `sslmode`     | TLS                 | server certificate checked against `sslrootcert` |
//! |---------------|---------------------|--------------------------------------------------|
//! | `disable`     | never               | —                                                |
//! | `prefer`      | if the server can (the default, as libpq) | not checked               |
//! | `require`     | always              | not checked (checked as `verify-ca` when `sslrootcert` is given, as libpq) |
//! | `verify-ca`   | always              | chain checked, host name not                     |
//! | `verify-full` | always              | chain and host name checked                      |
//!
//! `sslrootcert` defaults to `~/.postgresql/root.crt`, as libpq's does.

use std::path::PathBuf;
use std::sync::Arc;

use postgres::config::SslMode as PgSslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS settings of a PostgreSQL URL, and the URL without them.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
    /// The URL with `sslmode` and `sslrootcert` taken out, for the `postgres` crate.
    pub url: String,
}

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode `{0}` is not one of disable, prefer, require, verify-ca, verify-full")]
    Mode(String),
    #[error("sslmode={mode} needs a CA certificate: give `sslrootcert=PATH` (no {path})")]
    NoRootCert { mode: &'static str, path: String },
    #[error("cannot read the CA certificate {path}: {reason}")]
    RootCert { path: String, reason: String },
}

impl SslMode {
    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Split the TLS settings out of `url` (query parameters `sslmode`, `sslrootcert`).
pub fn settings(url: &str) -> Result<TlsSettings, TlsError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut mode = SslMode::Prefer;
    let mut root_cert = None;
    // The other parameters are kept as written (re-encoding could change how the `postgres`
    // crate decodes them, e.g. `%20` against `+`).
    let mut kept: Vec<&str> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = form_urlencoded::parse(piece.as_bytes()).next() else {
            continue;
        };
        match k.as_ref() {
            "sslmode" => {
                mode = match v.as_ref() {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => return Err(TlsError::Mode(other.to_string())),
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
            _ => kept.push(piece),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(TlsSettings {
        mode,
        root_cert,
        url,
    })
}

/// What to hand the `postgres` crate: its own sslmode, and the TLS client (none for
/// `disable`).
pub fn connector(
    s: &TlsSettings,
) -> Result<(PgSslMode, Option<tokio_postgres_rustls::MakeRustlsConnect>), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::RootCert {
            path: String::new(),
            reason: e.to_string(),
        })?;
    let roots = match (s.mode, &s.root_cert) {
        (SslMode::Disable, _) => return Ok((PgSslMode::Disable, None)),
        (SslMode::Prefer, _) | (SslMode::Require, None) => None,
        (SslMode::Require, Some(p)) => Some(load_roots(p)?),
        (SslMode::VerifyCa | SslMode::VerifyFull, p) => {
            let path = p.clone().unwrap_or_else(default_root_cert);
            if !path.exists() {
                return Err(TlsError::NoRootCert {
                    mode: s.mode.name(),
                    path: path.display().to_string(),
                });
            }
            Some(load_roots(&path)?)
        }
    };
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        None => Arc::new(NoCheck(provider)),
        Some(roots) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::RootCert {
                    path: String::new(),
                    reason: e.to_string(),
                })?;
            if s.mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let pg_mode = match s.mode {
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    };
    Ok((
        pg_mode,
        Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)),
    ))
}

fn default_root_cert() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".postgresql/root.crt")
}

fn load_roots(path: &std::path::Path) -> Result<RootCertStore, TlsError> {
    let bad = |reason: String| TlsError::RootCert {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(roots)
}

/// `prefer` / `require` without a CA: encrypt, check the handshake's signatures, trust any
/// certificate (libpq does the same).
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the name in the certificate is not compared.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sslmode_and_rootcert_out_of_the_url() {
        let s = settings(
            "postgres://u@h:5/db?sslmode=verify-full&sslrootcert=/ca.pem&options=-c%20x%3D1",
        )
        .unwrap();
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(
            s.root_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert_eq!(s.url, "postgres://u@h:5/db?options=-c%20x%3D1");
        let s = settings("postgres://u@h/db").unwrap();
        assert_eq!(
            (s.mode, s.url.as_str()),
            (SslMode::Prefer, "postgres://u@h/db")
        );
        assert!(matches!(
            settings("postgres://h/db?sslmode=sometimes"),
            Err(TlsError::Mode(_))
        ));
    }
}
