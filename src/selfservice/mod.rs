//! Self-service (design §10, the talk's Silverline): people ask for hosts from `offer` blocks,
//! within a quota, and get real hosts they log into.
//!
//! A person's hosts are HostDB records owned by `user:NAME`, named `{offer}-{user}-{n}`. There
//! is no config file for them: HostDB *is* their desired state, and [`person`] turns a person's
//! records back into a config the engine plans like any other (design §8: capacity and
//! addresses are shared with every owner). Each call works in two short steps:
//! - [`reserve`]: under the apply lock (waiting while a config apply holds it), check the quota,
//!   place the host and write its record `creating` — or mark a host for deletion or
//!   recreation. The quota holds across every server on one database because the lock does.
//! - [`worker`]: a background loop in every `kloud serve` that converges each person with
//!   pending work through `ops::converge` — the same placement, lock, crash-safe steps and
//!   integrations as `kloud apply`. A server killed halfway leaves a `creating` record, which
//!   any server's worker repairs (adopting a container already made), so nothing is orphaned.
//!
//! [`routes`] serves it over HTTP (`/v1/offers`, `/v1/self/hosts…`).

pub mod pacing;
pub mod person;
pub mod reserve;
pub mod routes;
pub mod worker;

use crate::Cpu;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::apply::DriverSet;
use crate::config::{Config, Offer};
use crate::hostdb::model::{Host, Role};
use crate::hostdb::{Store, StoreError};

pub use routes::router;

/// Someone signed in (a session) or calling with an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub role: Role,
}

impl Person {
    /// The owner of this person's hosts (design §8).
    pub fn owner(&self) -> String {
        format!("{OWNER_PREFIX}{}", self.name)
    }

    /// Operators and admins see and touch every person's hosts.
    pub fn sees_all(&self) -> bool {
        self.role >= Role::Operator
    }
}

/// Owners of self-service hosts start with this.
pub const OWNER_PREFIX: &str = "user:";

/// An offer as a person sees it: with how many of its hosts they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferView {
    pub name: String,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub image: String,
    pub per_user: u32,
    /// The caller's hosts of this offer.
    pub used: u32,
}

/// A self-service host as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostView {
    pub name: String,
    pub offer: String,
    pub owner: String,
    pub state: String,
    pub machine: Option<String>,
    pub ip: Option<String>,
    /// The login name on the host (the person's).
    pub user: String,
}

impl HostView {
    fn of(h: &Host) -> HostView {
        let owner = h.owner.clone().unwrap_or_default();
        HostView {
            name: h.name.clone(),
            offer: h.class.clone().unwrap_or_default(),
            user: owner
                .strip_prefix(OWNER_PREFIX)
                .unwrap_or(&owner)
                .to_string(),
            owner,
            state: person::state_of(h).to_string(),
            machine: h.machine.clone(),
            ip: h.ip.clone(),
        }
    }
}

/// Why a self-service call failed; each maps to one HTTP status and error code.
#[derive(Debug, thiserror::Error)]
pub enum SelfError {
    #[error("no offer `{0}`; `GET /v1/offers` lists them")]
    UnknownOffer(String),
    #[error("you hold {used} of {per_user} hosts of offer `{offer}`: release one first")]
    QuotaExceeded {
        offer: String,
        used: u32,
        per_user: u32,
    },
    #[error("no machine can take a host of offer `{offer}`: {explanation}")]
    NoCapacity { offer: String, explanation: String },
    #[error("no host `{0}` of yours")]
    NotFound(String),
    #[error("`{0}` cannot own hosts: a name must be a DNS label (a-z, 0-9, `-`)")]
    BadName(String),
    #[error("`{0}` is not an OpenSSH public key")]
    BadKey(String),
    #[error("no SSH key to log in with: pass `ssh_keys`, or add one to your directory entry")]
    NoKeys,
    #[error("the apply lock is busy (held by {holder}); try again shortly")]
    Busy { holder: String },
    #[error("{0}")]
    Engine(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The self-service engine of one `kloud serve`.
pub struct SelfService {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    drivers: Arc<dyn DriverSet + Send>,
    settings: Settings,
    /// Wakes the worker when there is new work.
    kick: Arc<tokio::sync::Notify>,
    /// Requests of this process take the HostDB lock one at a time.
    gate: Arc<std::sync::Mutex<()>>,
    /// When the worker looks again and retries failed hosts.
    pacing: std::sync::Mutex<pacing::Pacing>,
}

/// Knobs of the self-service engine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a request waits for the apply lock before `503 busy`.
    pub lock_wait: Duration,
    /// The apply lock's lease.
    pub lock_ttl: Duration,
    /// How often the worker looks for work nobody kicked it for (another server's requests,
    /// a crashed server's half-done work).
    pub poll_every: Duration,
    /// Hosts created at once by one converge.
    pub parallelism: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            lock_wait: Duration::from_secs(120),
            lock_ttl: crate::apply::TTL,
            poll_every: Duration::from_secs(5),
            parallelism: 4,
        }
    }
}

impl SelfService {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        drivers: Arc<dyn DriverSet + Send>,
        settings: Settings,
    ) -> Arc<SelfService> {
        Arc::new(SelfService {
            store,
            config,
            drivers,
            settings,
            kick: Arc::new(tokio::sync::Notify::new()),
            gate: Arc::new(std::sync::Mutex::new(())),
            pacing: std::sync::Mutex::new(pacing::Pacing::default()),
        })
    }

    /// The offers, with how many of each `who` holds.
    pub async fn offers(&self, who: &Person) -> Result<Vec<OfferView>, SelfError> {
        let mine = self
            .list(&Person {
                role: Role::User,
                ..who.clone()
            })
            .await?;
        Ok(self
            .config
            .offers
            .values()
            .map(|o| offer_view(o, &mine))
            .collect())
    }

    /// `who`'s hosts (every person's for an operator).
    pub async fn list(&self, who: &Person) -> Result<Vec<HostView>, SelfError> {
        let store = self.store.clone();
        let who = who.clone();
        blocking(move || {
            let hosts = person::hosts_of(store.as_ref(), (!who.sees_all()).then(|| who.owner()))?;
            Ok(hosts.iter().map(HostView::of).collect())
        })
        .await
    }

    /// One of `who`'s hosts (anyone's for an operator); `NotFound` for anyone else's.
    pub async fn get(&self, who: &Person, name: &str) -> Result<HostView, SelfError> {
        let host = self.visible(who, name).await?;
        Ok(HostView::of(&host))
    }

    /// Ask for a host of `offer`: placed and recorded now, created by the worker.
    pub async fn request(
        &self,
        who: &Person,
        offer: &str,
        ssh_keys: Vec<String>,
    ) -> Result<HostView, SelfError> {
        let offer = self
            .config
            .offers
            .get(offer)
            .cloned()
            .ok_or_else(|| SelfError::UnknownOffer(offer.to_string()))?;
        let ctx = self.reserve_context();
        let who = who.clone();
        let host = blocking(move || reserve::request(&ctx, &who, &offer, ssh_keys)).await?;
        self.kick.notify_one();
        Ok(HostView::of(&host))
    }

    /// Give a host back: it is marked `deleting` now and removed by the worker.
    pub async fn release(&self, who: &Person, name: &str) -> Result<HostView, SelfError> {
        let host = self.visible(who, name).await?;
        let ctx = self.reserve_context();
        let who = who.clone();
        let host = blocking(move || reserve::release(&ctx, &who, &host.name)).await?;
        self.kick.notify_one();
        Ok(HostView::of(&host))
    }

    /// Destroy and create again under the same name (the worker does both).
    pub async fn recreate(&self, who: &Person, name: &str) -> Result<HostView, SelfError> {
        let host = self.visible(who, name).await?;
        let ctx = self.reserve_context();
        let who = who.clone();
        let host = blocking(move || reserve::recreate(&ctx, &who, &host.name)).await?;
        self.kick.notify_one();
        Ok(HostView::of(&host))
    }

    /// The record `name` if `who` may see it.
    async fn visible(&self, who: &Person, name: &str) -> Result<Host, SelfError> {
        let store = self.store.clone();
        let (who, name) = (who.clone(), name.to_string());
        blocking(move || {
            let host = store
                .get_host(&name)?
                .filter(|h| {
                    let owner = h.owner.as_deref().unwrap_or("");
                    owner.starts_with(OWNER_PREFIX) && (who.sees_all() || owner == who.owner())
                })
                .ok_or(SelfError::NotFound(name))?;
            Ok(host)
        })
        .await
    }

    fn reserve_context(&self) -> reserve::Context {
        reserve::Context {
            store: self.store.clone(),
            config: self.config.clone(),
            drivers: self.drivers.clone(),
            settings: self.settings.clone(),
            gate: self.gate.clone(),
        }
    }

    /// Start the background worker (inside a tokio runtime); it stops when `stop` is set.
    pub fn start_worker(self: &Arc<Self>, stop: Arc<std::sync::atomic::AtomicBool>) {
        worker::start(self.clone(), stop);
    }
}

fn offer_view(o: &Offer, mine: &[HostView]) -> OfferView {
    OfferView {
        name: o.name.clone(),
        cpu: o.cpu,
        memory_mib: o.memory_mib,
        disk_gib: o.disk_gib,
        image: o.image.clone(),
        per_user: o.per_user,
        used: u32::try_from(mine.iter().filter(|h| h.offer == o.name).count()).unwrap_or(u32::MAX),
    }
}

/// Run store and engine work on the blocking pool.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, SelfError> + Send + 'static,
) -> Result<R, SelfError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SelfError::Engine(format!("a worker thread failed: {e}")))?
}
