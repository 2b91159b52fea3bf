//! The `Store` trait: the one interface to HostDB, embedded (SQLite), shared (PostgreSQL) or
//! remote (HTTP). The plan/apply engine and the HTTP server only ever see `&dyn Store`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::StoreError;
use super::model::{
    Actor, Change, Document, Expect, Host, HostQuery, Lease, Members, Page, Role, Snapshot, Tag,
    TokenInfo, Write,
};

/// HostDB. Every method is one transaction; every write bumps the global index once.
pub trait Store: Send + Sync {
    /// The URL this store was opened with, secrets removed; shown in plans.
    fn url(&self) -> String;

    /// The current global index.
    fn index(&self) -> Result<u64, StoreError>;

    /// Block until the global index differs from `after` or `timeout` passes, and return the
    /// index last read (equal to `after` on a timeout). "Differs", not "exceeds": a database
    /// restored from a backup may go back. Stores without a native wait read [`Store::index`]
    /// every `poll` (one indexed row for SQLite and PostgreSQL); the HTTP client holds one
    /// blocking query (`/v1/index?index=N&wait=D`) instead, and pauses `poll` only when the
    /// server answers early without a change.
    fn wait_for_change(
        &self,
        after: u64,
        timeout: Duration,
        poll: Duration,
    ) -> Result<u64, StoreError> {
        let deadline = std::time::Instant::now() + timeout;
        let poll = poll.max(Duration::from_millis(1));
        loop {
            let index = self.index()?;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if index != after || left.is_zero() {
                return Ok(index);
            }
            std::thread::sleep(poll.min(left));
        }
    }

    fn get_host(&self, name: &str) -> Result<Option<Host>, StoreError>;

    /// Hosts matching every filter of `q`, in name order, one page at a time.
    fn list_hosts(&self, q: &HostQuery) -> Result<Page<Host>, StoreError>;

    fn get_tag(&self, name: &str) -> Result<Option<Tag>, StoreError>;

    /// Every tag, in name order.
    fn list_tags(&self) -> Result<Vec<Tag>, StoreError>;

    /// Direct members of a tag (whether or not the tag itself is recorded).
    fn tag_members(&self, name: &str) -> Result<Members, StoreError>;

    /// Apply `writes` in one transaction, all or nothing, and return the new index.
    /// A failed compare-and-set is `StoreError::Conflict`.
    fn write(&self, writes: Vec<Write>, actor: &Actor) -> Result<u64, StoreError>;

    /// [`Store::write`] on behalf of a token scoped to `owner` (none: unscoped): every host
    /// write must leave and find the record owned by `owner` (checked in the write's own
    /// transaction), and tags and documents, which have no owner, cannot be written; else the
    /// whole transaction fails with [`StoreError::ForbiddenOwner`]. Fences are allowed.
    fn write_scoped(
        &self,
        writes: Vec<Write>,
        actor: &Actor,
        owner: Option<&str>,
    ) -> Result<u64, StoreError> {
        match owner {
            None => self.write(writes, actor),
            Some(_) => Err(StoreError::Invalid(
                "this store cannot check an owner scope".to_string(),
            )),
        }
    }

    /// Every machine, the containers owned by `owner`, every tag, at one index.
    fn snapshot(&self, owner: &str) -> Result<Snapshot, StoreError>;

    /// Every IP held by any host, sorted.
    fn used_ips(&self) -> Result<Vec<String>, StoreError>;

    /// The host's tags' properties merged (nearest tag wins), then its own; `None` when the
    /// host does not exist.
    fn derived_config(&self, name: &str) -> Result<Option<Map<String, Value>>, StoreError>;

    /// Every recorded change of the host or tag called `object`, oldest first.
    fn history(&self, object: &str) -> Result<Vec<Change>, StoreError>;

    /// The index of the latest change of `object`, 0 when it never changed.
    fn last_change(&self, object: &str) -> Result<u64, StoreError>;

    /// Take the named lock for `ttl`; `StoreError::Held` when someone holds an unexpired lease.
    fn lock_acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, StoreError>;

    /// Extend a lease we hold; `StoreError::LeaseLost` when it expired or was taken away.
    fn lock_renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError>;

    /// Give a lease back; releasing a lease that is already gone is not an error.
    fn lock_release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Remove the lease with this id whoever holds it; `NotFound` if there is none.
    fn lock_force_release(&self, id: &str) -> Result<(), StoreError>;

    /// Unexpired leases, by lock name.
    fn list_locks(&self) -> Result<Vec<Lease>, StoreError>;

    /// Create a token; returns its record and the secret, which is not stored.
    fn token_create(&self, name: &str, role: Role) -> Result<(TokenInfo, String), StoreError>;

    /// Create a token that, given `owner`, may write only that owner's host records (see
    /// [`Store::write_scoped`]). Stores that cannot keep a scope refuse one.
    fn token_create_scoped(
        &self,
        name: &str,
        role: Role,
        owner: Option<&str>,
    ) -> Result<(TokenInfo, String), StoreError> {
        match owner {
            None => self.token_create(name, role),
            Some(_) => Err(StoreError::Invalid(
                "this store cannot scope tokens to an owner".to_string(),
            )),
        }
    }

    /// The token whose secret this is, if any.
    fn token_verify(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError>;

    fn token_list(&self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Revoke a token; `NotFound` if there is none with that id.
    fn token_delete(&self, id: &str) -> Result<(), StoreError>;

    /// Write one host.
    fn put_host(&self, host: Host, expect: Expect, actor: &Actor) -> Result<u64, StoreError> {
        self.write(vec![Write::PutHost { host, expect }], actor)
    }

    /// Delete one host.
    fn delete_host(&self, name: &str, expect: Expect, actor: &Actor) -> Result<u64, StoreError> {
        self.write(
            vec![Write::DeleteHost {
                name: name.to_string(),
                expect,
            }],
            actor,
        )
    }

    /// Write one tag.
    fn put_tag(&self, tag: Tag, expect: Expect, actor: &Actor) -> Result<u64, StoreError> {
        self.write(vec![Write::PutTag { tag, expect }], actor)
    }

    /// Every host matching `q` (ignoring its `limit`), following the pages.
    fn all_hosts(&self, q: &HostQuery) -> Result<Vec<Host>, StoreError> {
        let mut q = q.clone();
        let mut out = Vec::new();
        loop {
            let page = self.list_hosts(&q)?;
            out.extend(page.items);
            match page.next {
                Some(next) => q.after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Create a session for a person signed in (design §10): a token of `role` that stops
    /// working after `ttl`, carrying the person's groups. Verified and revoked like any token.
    fn session_create(
        &self,
        name: &str,
        role: Role,
        groups: &[String],
        ttl: Duration,
    ) -> Result<(TokenInfo, String), StoreError> {
        let _ = (name, role, groups, ttl);
        Err(unsupported("sessions"))
    }

    /// Record in the change log that something happened to `object` (a sign-in), at the
    /// current index and without bumping it. `event` must hold no secret.
    fn record_event(&self, object: &str, event: &Value, actor: &Actor) -> Result<(), StoreError> {
        let _ = (object, event, actor);
        Err(unsupported("events"))
    }

    /// A document of a HostDB v1 namespace (written with [`Write::PutDocument`]).
    fn get_document(&self, namespace: &str, key: &str) -> Result<Option<Document>, StoreError> {
        let _ = (namespace, key);
        Err(unsupported("documents"))
    }

    /// The keys of a document namespace, sorted.
    fn list_documents(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        let _ = namespace;
        Err(unsupported("documents"))
    }

    /// The namespaces that hold documents, sorted.
    fn document_namespaces(&self) -> Result<Vec<String>, StoreError> {
        Err(unsupported("documents"))
    }
}

fn unsupported(what: &str) -> StoreError {
    StoreError::Backend(format!("this store does not keep {what}"))
}
