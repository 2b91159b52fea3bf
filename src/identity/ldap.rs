//! Signing a person in against LDAP: bind as them, read their groups and SSH keys.
//!
//! The bind is the password check, done by the directory itself: kloud never sees a password
//! hash. Groups are `groupOfNames` entries under the groups base whose `member` is the person's
//! DN; keys are the values of the configured attribute (openssh-lpk's `sshPublicKey`).

use std::sync::Arc;

use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

use super::IdentityError;
use crate::config::auth::LdapConfig;

/// Who the directory says a person is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub dn: String,
    /// The `cn` of every group the person is a member of, sorted.
    pub groups: Vec<String>,
    pub ssh_keys: Vec<String>,
}

/// LDAP result codes that mean "these credentials are no good" (and never "the server is down").
const INVALID_CREDENTIALS: u32 = 49;
const NO_SUCH_OBJECT: u32 = 32;
const INAPPROPRIATE_AUTHENTICATION: u32 = 48;
const INVALID_DN_SYNTAX: u32 = 34;

/// A user name that can be put into a DN template as it is: no DN or filter metacharacters.
pub fn valid_username(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn unavailable(url: &str, e: LdapError) -> IdentityError {
    IdentityError::LdapUnavailable(format!("{url}: {e}"))
}

/// Bind as `username` and read their groups and keys.
pub async fn authenticate(
    cfg: &LdapConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    username: &str,
    password: &str,
) -> Result<Person, IdentityError> {
    // An empty password would be an "unauthenticated bind", which LDAP servers accept.
    if !valid_username(username) || password.is_empty() {
        return Err(IdentityError::BadCredentials);
    }
    let dn = cfg.user_dn.replace("{{ username }}", username);
    let mut ldap = connect(cfg, tls).await?;
    let bound = ldap
        .with_timeout(cfg.timeout)
        .simple_bind(&dn, password)
        .await
        .map_err(|e| unavailable(&cfg.url, e))?;
    match bound.rc {
        0 => {}
        INVALID_CREDENTIALS | NO_SUCH_OBJECT | INAPPROPRIATE_AUTHENTICATION | INVALID_DN_SYNTAX => {
            let _ = ldap.unbind().await;
            return Err(IdentityError::BadCredentials);
        }
        rc => {
            let _ = ldap.unbind().await;
            return Err(IdentityError::LdapUnavailable(format!(
                "{}: the bind was answered with result {rc} ({})",
                cfg.url, bound.text
            )));
        }
    }
    let groups = match &cfg.groups {
        Some(base) => groups_of(&mut ldap, cfg, base, &dn).await?,
        None => Vec::new(),
    };
    let ssh_keys = match &cfg.ssh_key_attribute {
        Some(attr) => keys_of(&mut ldap, cfg, &dn, attr).await?,
        None => Vec::new(),
    };
    let _ = ldap.unbind().await;
    Ok(Person {
        dn,
        groups,
        ssh_keys,
    })
}

async fn connect(
    cfg: &LdapConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Ldap, IdentityError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(cfg.timeout)
        .set_starttls(cfg.start_tls);
    if let Some(tls) = tls {
        settings = settings.set_config(tls);
    }
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &cfg.url)
        .await
        .map_err(|e| unavailable(&cfg.url, e))?;
    ldap3::drive!(conn);
    Ok(ldap)
}

async fn groups_of(
    ldap: &mut Ldap,
    cfg: &LdapConfig,
    base: &str,
    dn: &str,
) -> Result<Vec<String>, IdentityError> {
    let filter = format!("(&(objectClass=groupOfNames)(member={}))", ldap_escape(dn));
    let (entries, _) = ldap
        .with_timeout(cfg.timeout)
        .search(base, Scope::Subtree, &filter, vec!["cn"])
        .await
        .and_then(|r| r.success())
        .map_err(|e| unavailable(&cfg.url, e))?;
    let mut groups: Vec<String> = entries
        .into_iter()
        .filter_map(|e| SearchEntry::construct(e).attrs.remove("cn"))
        .filter_map(|cns| cns.into_iter().next())
        .collect();
    groups.sort();
    groups.dedup();
    Ok(groups)
}

async fn keys_of(
    ldap: &mut Ldap,
    cfg: &LdapConfig,
    dn: &str,
    attr: &str,
) -> Result<Vec<String>, IdentityError> {
    let (entries, _) = ldap
        .with_timeout(cfg.timeout)
        .search(dn, Scope::Base, "(objectClass=*)", vec![attr])
        .await
        .and_then(|r| r.success())
        .map_err(|e| unavailable(&cfg.url, e))?;
    let mut keys = Vec::new();
    for entry in entries {
        let mut entry = SearchEntry::construct(entry);
        // Attribute names come back as the directory spells them.
        for (name, values) in entry.attrs.drain() {
            if name.eq_ignore_ascii_case(attr) {
                keys.extend(values);
            }
        }
        for (name, values) in entry.bin_attrs.drain() {
            if name.eq_ignore_ascii_case(attr) {
                keys.extend(
                    values
                        .iter()
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                );
            }
        }
    }
    let keys = keys
        .into_iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_that_cannot_change_a_dn() {
        for ok in ["alice", "bob.smith", "x_1", "a-b"] {
            assert!(valid_username(ok), "{ok}");
        }
        for bad in ["", "a,ou=x", "*", "a)(uid=*", " alice", "-a", "ä"] {
            assert!(!valid_username(bad), "{bad}");
        }
    }
}
