//! People signing in (design §10 "Identity"): LDAP bind, groups → roles, SSH keys, and
//! sessions kept as HostDB tokens.
//!
//! A session is a token with an expiry and the person's groups (`Store::session_create`), so it
//! is verified by the same path as an API token, every replica on one database sees it, and a
//! logout (a token deletion) ends it everywhere at once — sessions are never cached. Sign-ins
//! and sign-outs are recorded in HostDB history as events of `user:NAME`, without secrets.
//! [`router`] serves `POST /v1/auth/login` and `POST /v1/auth/logout`.

pub mod ldap;
pub mod routes;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::auth::{AuthConfig, LdapConfig};
use crate::hostdb::model::{Actor, Document, Expect, Role, TokenInfo, Write};
use crate::hostdb::store::Store;
use crate::hostdb::util::format_time;
use crate::hostdb::StoreError;

pub use routes::router;

/// The one message for every bad credential: it must not tell an unknown user from a wrong
/// password.
pub const BAD_CREDENTIALS: &str = "unknown user or wrong password";

/// Why a sign-in or sign-out failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Unknown user, wrong password, empty password, a malformed name: all the same to a caller.
    #[error("{BAD_CREDENTIALS}")]
    BadCredentials,
    /// The directory cannot be asked right now (down, unreachable, TLS failure, timeout).
    #[error("the LDAP server cannot be reached: {0}")]
    LdapUnavailable(String),
    /// No `auth { ldap { } }` block: nobody can sign in with a password.
    #[error("signing in is not configured: the config has no `auth {{ ldap {{ }} }}` block")]
    NotConfigured,
    /// The token is not a session (API tokens are revoked with `kloud hostdb token delete`).
    #[error("this token is not a session; API tokens are revoked by an admin")]
    NotASession,
    /// No such session (never existed, expired, or already ended).
    #[error("unknown or expired session")]
    UnknownSession,
    /// The TLS settings of the LDAP block cannot be used.
    #[error("LDAP TLS settings: {0}")]
    Tls(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A person signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The bearer token; shown once, stored only as a hash.
    pub token: String,
    pub user: String,
    pub role: Role,
    /// RFC 3339, UTC.
    pub expires_at: String,
    #[serde(skip)]
    pub expires_ms: u64,
    pub groups: Vec<String>,
    pub ssh_keys: Vec<String>,
}

/// Signs people in and out over a store.
pub struct Identity {
    store: Arc<dyn Store>,
    ldap: Option<LdapConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    roles: BTreeMap<String, Role>,
    ttl: Duration,
}

impl Identity {
    /// An identity service for `auth` (none: only API tokens, every sign-in refused).
    /// Reads the CA file, if the LDAP block names one.
    pub fn new(
        store: Arc<dyn Store>,
        auth: Option<&AuthConfig>,
    ) -> Result<Identity, IdentityError> {
        let ldap = auth.and_then(|a| a.ldap.clone());
        let tls = match ldap.as_ref().and_then(|l| l.ca_file.as_deref()) {
            Some(ca) => Some(Arc::new(tls_config(ca)?)),
            None => None,
        };
        let roles = auth
            .map(|a| {
                a.roles
                    .iter()
                    .filter_map(|(g, r)| Role::parse(r).map(|r| (g.clone(), r)))
                    .collect()
            })
            .unwrap_or_default();
        let ttl = auth.map_or(crate::config::auth::DEFAULT_SESSION_TTL, |a| a.session_ttl);
        Ok(Identity {
            store,
            ldap,
            tls,
            roles,
            ttl,
        })
    }

    /// The store sessions live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The highest role any of `groups` gives; `user` when none gives one.
    pub fn role_for(&self, groups: &[String]) -> Role {
        groups
            .iter()
            .filter_map(|g| self.roles.get(g).copied())
            .max()
            .unwrap_or(Role::User)
    }

    /// Check `username`/`password` against LDAP and open a session.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session, IdentityError> {
        let ldap = self.ldap.as_ref().ok_or(IdentityError::NotConfigured)?;
        let person = ldap::authenticate(ldap, self.tls.clone(), username, password).await?;
        let role = self.role_for(&person.groups);
        let store = self.store.clone();
        let (user, groups, ttl) = (username.to_string(), person.groups.clone(), self.ttl);
        let keys = person.ssh_keys.clone();
        let (info, token) = blocking(move || {
            let created = store.session_create(&user, role, &groups, ttl)?;
            remember_keys(store.as_ref(), &user, &keys)?;
            let event = serde_json::json!({
                "event": "login", "role": role.as_str(), "session": created.0.id,
                "groups": groups,
            });
            store.record_event(&format!("user:{user}"), &event, &actor(&user, "signed in"))?;
            Ok(created)
        })
        .await?;
        let expires_ms = info.expires_ms.unwrap_or(info.created_ms);
        Ok(Session {
            token,
            user: info.name,
            role,
            expires_at: format_time(expires_ms),
            expires_ms,
            groups: person.groups,
            ssh_keys: person.ssh_keys,
        })
    }

    /// The session or token this secret is, if it is still valid.
    pub async fn verify(&self, secret: &str) -> Result<Option<TokenInfo>, IdentityError> {
        let store = self.store.clone();
        let secret = secret.to_string();
        blocking(move || Ok(store.token_verify(&secret)?)).await
    }

    /// End the session whose token this is, on every replica at once.
    pub async fn logout(&self, secret: &str) -> Result<(), IdentityError> {
        let info = self
            .verify(secret)
            .await?
            .ok_or(IdentityError::UnknownSession)?;
        if info.expires_ms.is_none() {
            return Err(IdentityError::NotASession);
        }
        let store = self.store.clone();
        blocking(move || {
            store.token_delete(&info.id)?;
            let event = serde_json::json!({ "event": "logout", "session": info.id });
            store.record_event(
                &format!("user:{}", info.name),
                &event,
                &actor(&info.name, "signed out"),
            )?;
            Ok(())
        })
        .await
    }
}

/// The document namespace keeping each person's public keys from the directory, for the hosts
/// they ask for (self-service) when a request names none.
pub const PEOPLE_NAMESPACE: &str = "people";

/// Keep the keys the directory gave at sign-in (public keys: nothing secret); written only
/// when they changed, so a sign-in does not bump the index for nothing.
fn remember_keys(store: &dyn Store, user: &str, keys: &[String]) -> Result<(), StoreError> {
    let value = serde_json::json!({ "ssh_keys": keys });
    if store
        .get_document(PEOPLE_NAMESPACE, user)?
        .is_some_and(|d| d.value == value)
    {
        return Ok(());
    }
    let document = Document {
        namespace: PEOPLE_NAMESPACE.into(),
        key: user.to_string(),
        value,
        modified_index: 0,
    };
    store.write(
        vec![Write::PutDocument {
            document,
            expect: Expect::Any,
        }],
        &actor(user, "signed in: keys from the directory"),
    )?;
    Ok(())
}

/// The public keys the directory gave `user` at their last sign-in.
pub fn keys_of(store: &dyn Store, user: &str) -> Result<Vec<String>, StoreError> {
    let Some(doc) = store.get_document(PEOPLE_NAMESPACE, user)? else {
        return Ok(Vec::new());
    };
    Ok(doc
        .value
        .get("ssh_keys")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect())
}

fn actor(user: &str, message: &str) -> Actor {
    Actor {
        name: format!("user:{user}"),
        message: Some(message.to_string()),
    }
}

/// Run a store call on the blocking pool.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, IdentityError> + Send + 'static,
) -> Result<R, IdentityError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| IdentityError::Store(StoreError::Backend(e.to_string())))?
}

/// A rustls client config trusting exactly the CAs in `ca` (PEM).
fn tls_config(ca: &Path) -> Result<rustls::ClientConfig, IdentityError> {
    let pem = std::fs::read(ca)
        .map_err(|e| IdentityError::Tls(format!("reading `{}`: {e}", ca.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| IdentityError::Tls(format!("`{}`: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| IdentityError::Tls(format!("`{}`: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(IdentityError::Tls(format!(
            "`{}` holds no PEM certificate",
            ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IdentityError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
