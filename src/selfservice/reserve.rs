//! The short step of every self-service call, under the apply lock: check the quota, place
//! the new host and write its record `creating`; or mark a host for deletion or recreation.
//! The worker does the slow part (containers) later, through the engine.
//!
//! The lock makes the quota atomic on one database, across every server sharing it: the count
//! and the write happen while no one else can write a host. Every write is fenced on the lease
//! (`Write::Fence`), as apply's are.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::apply::{records, ApplyError, DriverSet, LockGuard};
use crate::config::login::{looks_like_public_key, user_problem};
use crate::config::names::label_problem;
use crate::config::{Config, Offer};
use crate::hostdb::model::{Actor, Expect, Host, State, Write};
use crate::hostdb::Store;
use crate::ops::{self, events::Silent, PlanRequest};
use crate::plan::Action;

use super::person::{self, RECREATE_LABEL};
use super::{Person, SelfError, Settings};

/// What a reservation needs from the service.
pub struct Context {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub drivers: Arc<dyn DriverSet + Send>,
    pub settings: Settings,
    pub gate: Arc<Mutex<()>>,
}

impl Context {
    /// Run `work` holding this process's gate and the HostDB apply lock.
    fn locked<R>(
        &self,
        who: &str,
        work: impl FnOnce(&[Write]) -> Result<R, SelfError>,
    ) -> Result<R, SelfError> {
        let _gate = self
            .gate
            .lock()
            .map_err(|_| SelfError::Engine("a request panicked".into()))?;
        let guard = LockGuard::acquire_waiting(
            self.store.as_ref(),
            &format!("kloud serve ({who})"),
            self.settings.lock_ttl,
            self.settings.lock_wait,
        )
        .map_err(|e| match e {
            ApplyError::Locked { holder, .. } => SelfError::Busy { holder },
            other => SelfError::Engine(other.to_string()),
        })?;
        let fence: Vec<Write> = guard
            .lease()
            .map(|l| Write::Fence {
                lock: l.name,
                id: l.id,
            })
            .into_iter()
            .collect();
        work(&fence)
    }
}

fn actor(who: &str, message: &str) -> Actor {
    Actor {
        name: format!("user:{who}"),
        message: Some(message.to_string()),
    }
}

/// Ask for a host of `offer` for `who`, with `keys` to log in with.
pub fn request(
    ctx: &Context,
    who: &Person,
    offer: &Offer,
    keys: Vec<String>,
) -> Result<Host, SelfError> {
    check_person(who, offer)?;
    let keys = checked_keys(ctx, who, keys)?;
    ctx.locked(&who.name, |fence| {
        let owner = who.owner();
        let mine = person::hosts_of(ctx.store.as_ref(), Some(owner.clone()))?;
        let used = mine
            .iter()
            .filter(|h| h.class.as_deref() == Some(offer.name.as_str()))
            .count();
        let used = u32::try_from(used).unwrap_or(u32::MAX);
        if used >= offer.per_user {
            return Err(SelfError::QuotaExceeded {
                offer: offer.name.clone(),
                used,
                per_user: offer.per_user,
            });
        }
        let n = free_index(ctx, offer, &who.name)?;
        let wanted = person::new_host(&ctx.config, offer, &who.name, n, &keys);
        let name = wanted.name.clone();
        let host = place(ctx, &owner, &mine, wanted)?;
        let mut writes = fence.to_vec();
        writes.push(Write::PutHost {
            host: host.clone(),
            expect: Expect::Absent,
        });
        ctx.store
            .write(writes, &actor(&who.name, "asked for a host"))?;
        Ok(ctx.store.get_host(&name)?.unwrap_or(host))
    })
}

/// The person's name must fit in a host name, and be a login name.
fn check_person(who: &Person, offer: &Offer) -> Result<(), SelfError> {
    let label = format!("{}1", person::name_prefix(&offer.name, &who.name));
    if label_problem(&label).is_some() || user_problem(&who.name).is_some() {
        return Err(SelfError::BadName(who.name.clone()));
    }
    Ok(())
}

/// The keys of the request, else the ones the directory gave at sign-in; at least one.
fn checked_keys(ctx: &Context, who: &Person, keys: Vec<String>) -> Result<Vec<String>, SelfError> {
    let keys = if keys.is_empty() {
        crate::identity::keys_of(ctx.store.as_ref(), &who.name)?
    } else {
        keys
    };
    if let Some(bad) = keys.iter().find(|k| !looks_like_public_key(k)) {
        let shown: String = bad.chars().take(40).collect();
        return Err(SelfError::BadKey(shown));
    }
    if keys.is_empty() {
        return Err(SelfError::NoKeys);
    }
    Ok(keys)
}

/// The lowest `n` whose name `{offer}-{user}-{n}` nobody has.
fn free_index(ctx: &Context, offer: &Offer, user: &str) -> Result<u32, SelfError> {
    for n in 1..=offer.per_user.saturating_add(1000) {
        let name = person::new_host(&ctx.config, offer, user, n, &[]).name;
        if ctx.store.get_host(&name)?.is_none() {
            return Ok(n);
        }
    }
    Err(SelfError::Engine(format!(
        "no free name for a host of offer `{}`",
        offer.name
    )))
}

/// Plan the person's hosts with the new one; its record, placed and addressed, `creating`.
fn place(
    ctx: &Context,
    owner: &str,
    mine: &[Host],
    wanted: crate::config::DesiredHost,
) -> Result<Host, SelfError> {
    let name = wanted.name.clone();
    let offer = wanted.class.clone();
    let config = person::config_for(
        &ctx.config,
        owner,
        mine,
        Some(wanted),
        &machine_names(ctx.store.as_ref())?,
    );
    let req = PlanRequest {
        force: true,
        targets: vec![offer.clone()],
        ..PlanRequest::default()
    };
    let plan = ops::plan(
        &config,
        ctx.store.as_ref(),
        ctx.drivers.as_ref(),
        &req,
        &Silent,
    )
    .map_err(|e| SelfError::Engine(e.to_string()))?;
    if let Some(u) = plan.unplaced.iter().find(|u| u.address == name) {
        return Err(SelfError::NoCapacity {
            offer,
            explanation: u.explanation.clone(),
        });
    }
    let after = plan
        .changes
        .iter()
        .find(|c| c.address == name && c.action == Action::Create)
        .and_then(|c| c.after.clone())
        .ok_or_else(|| SelfError::Engine(format!("the plan does not create `{name}`")))?;
    Ok(records::container(&after, owner, State::Creating, None))
}

/// Names of the machines recorded in `store` (a person's plan uses only those).
pub fn machine_names(store: &dyn Store) -> Result<BTreeSet<String>, SelfError> {
    let machines = store.all_hosts(&crate::hostdb::model::HostQuery {
        kind: Some(crate::hostdb::model::Kind::Machine),
        ..Default::default()
    })?;
    Ok(machines.into_iter().map(|m| m.name).collect())
}

/// Mark `name` for deletion: the worker destroys its container and removes the record.
pub fn release(ctx: &Context, who: &Person, name: &str) -> Result<Host, SelfError> {
    mark(ctx, who, name, "gave a host back", |h| {
        h.state = Some(State::Deleting);
    })
}

/// Mark `name` to be destroyed and created again under the same name.
pub fn recreate(ctx: &Context, who: &Person, name: &str) -> Result<Host, SelfError> {
    mark(ctx, who, name, "asked to recreate a host", |h| {
        if h.state == Some(State::Deleting) {
            return;
        }
        h.labels.insert(RECREATE_LABEL.into(), "requested".into());
    })
}

fn mark(
    ctx: &Context,
    who: &Person,
    name: &str,
    message: &str,
    change: impl FnOnce(&mut Host),
) -> Result<Host, SelfError> {
    let who = who.name.as_str();
    ctx.locked(who, |fence| {
        let mut host = ctx
            .store
            .get_host(name)?
            .ok_or_else(|| SelfError::NotFound(name.to_string()))?;
        let expect = Expect::Index(host.modified_index);
        change(&mut host);
        let mut writes = fence.to_vec();
        writes.push(Write::PutHost {
            host: host.clone(),
            expect,
        });
        ctx.store.write(writes, &actor(who, message))?;
        Ok(ctx.store.get_host(name)?.unwrap_or(host))
    })
}
