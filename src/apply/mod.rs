//! Apply: carry out a plan through the compute drivers, recording every step in HostDB.
//!
//! One run takes the HostDB `apply` lock (a lease, renewed while we work; a crashed run's lease
//! expires), refuses a plan made against an older HostDB index, then works through the hosts
//! with bounded parallelism. Per host the order is fixed so that HostDB is never behind what
//! exists: record intent (`creating`, machine and address reserved) → driver → `running`.
//! Deletes go the other way: `deleting` → driver → record removed. Every step is idempotent
//! (drivers adopt a container that already exists and ignore one already gone), so a re-run
//! after any failure or crash converges. One host's failure does not stop the others.

mod drivers;
mod lock;
pub mod records;
pub mod refresh;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kloud_provider_api::compute::{ContainerSpec, DriverError, MachineRef, NetworkSpec};
use kloud_provider_api::Diagnostic;
use serde::Serialize;
use thiserror::Error;

pub use drivers::{DriverSet, Drivers};
pub use lock::{LockGuard, APPLY_LOCK, TTL};

use crate::config::Config;
use crate::hostdb::{Actor, Expect, State, Store, StoreError, Write};
use crate::ops::events::{Event, Events};
use crate::plan::{Action, Change, HostState, Plan};

/// Why apply could not run at all (per-host failures are in the [`Report`]).
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the plan is stale: HostDB moved from index {planned} to {current} since it was made{}",
        describe_moved(moved)
    )]
    Stale {
        planned: u64,
        current: u64,
        moved: Vec<(String, u64)>,
    },
    #[error("the plan was made from a different config (digest {planned}, now {current})")]
    ConfigChanged { planned: String, current: String },
    #[error("another apply holds the HostDB lock: {holder}, since {since} (lock id {id})")]
    Locked {
        holder: String,
        since: String,
        id: String,
    },
    #[error("{0}")]
    Driver(String),
}

fn describe_moved(moved: &[(String, u64)]) -> String {
    if moved.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = moved
        .iter()
        .take(10)
        .map(|(o, i)| format!("{o} (index {i})"))
        .collect();
    format!(
        "; changed since: {}{}",
        shown.join(", "),
        if moved.len() > 10 {
            format!(" and {} more", moved.len() - 10)
        } else {
            String::new()
        }
    )
}

/// How to apply.
#[derive(Debug, Clone)]
pub struct Options {
    pub parallelism: usize,
    /// Who is applying, for the lock and the change log.
    pub actor: String,
    /// Set when the operator interrupts (or the lock is in trouble): no new host is started,
    /// those in flight finish.
    pub cancel: Arc<AtomicBool>,
    /// The lease apply holds (lock name, lease id): every HostDB write is made conditional on
    /// it, in the same transaction, so a run that lost its lock cannot write any more.
    pub fence: Option<(String, String)>,
}

/// The outcome of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "error", rename_all = "lowercase")]
pub enum Outcome {
    Done,
    Failed(String),
    /// Not started because the run was interrupted.
    Skipped,
}

/// What one apply did.
#[derive(Debug, Default)]
pub struct Report {
    pub results: BTreeMap<String, (Action, Outcome, Duration)>,
    pub machines_synced: usize,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.results
            .values()
            .filter(|(_, o, _)| matches!(o, Outcome::Failed(_)))
            .count()
    }

    pub fn skipped(&self) -> usize {
        self.results
            .values()
            .filter(|(_, o, _)| *o == Outcome::Skipped)
            .count()
    }
}

/// Check the plan against HostDB and the config it was made from.
pub fn check_fresh(plan: &Plan, config: &Config, store: &dyn Store) -> Result<(), ApplyError> {
    if let Some(c) = &plan.config {
        if c.digest != config.digest {
            return Err(ApplyError::ConfigChanged {
                planned: c.digest.chars().take(12).collect(),
                current: config.digest.chars().take(12).collect(),
            });
        }
    }
    let current = store.index()?;
    if current != plan.hostdb.index {
        let mut moved = Vec::new();
        for c in &plan.changes {
            let last = store.last_change(&c.address)?;
            if last > plan.hostdb.index {
                moved.push((c.address.clone(), last));
            }
        }
        return Err(ApplyError::Stale {
            planned: plan.hostdb.index,
            current,
            moved,
        });
    }
    Ok(())
}

/// Apply `plan`'s hosts. The caller holds the lock (see [`LockGuard`]) and has checked
/// freshness; `crate::ops::apply` is the whole operation.
pub fn apply(
    plan: &Plan,
    config: &Config,
    store: &dyn Store,
    drivers: &dyn DriverSet,
    opts: &Options,
    events: &dyn Events,
) -> Result<Report, ApplyError> {
    let mut report = Report::default();
    let actor = Actor {
        name: opts.actor.clone(),
        message: Some("kloud apply".into()),
    };
    let owner = config.settings.owner.clone();
    let fence: Vec<Write> = opts
        .fence
        .iter()
        .map(|(lock, id)| Write::Fence {
            lock: lock.clone(),
            id: id.clone(),
        })
        .collect();

    // Machine records first: hosts refer to them.
    let mut writes = fence.clone();
    for m in &plan.machines {
        match (m.action, &m.after) {
            (Action::Create | Action::Update, Some(a)) => writes.push(Write::PutHost {
                host: records::machine(a, &owner),
                expect: Expect::Any,
            }),
            (Action::Delete, _) => writes.push(Write::DeleteHost {
                name: m.address.clone(),
                expect: Expect::Any,
            }),
            _ => {}
        }
    }
    if writes.len() > fence.len() {
        report.machines_synced = writes.len() - fence.len();
        store.write(writes, &actor)?;
    }

    // Deletes (in reverse order of creation), then replaces, creates and updates.
    let mut queue: VecDeque<&Change> = VecDeque::new();
    let mut deletes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .collect();
    deletes.reverse();
    queue.extend(deletes);
    for action in [Action::Replace, Action::Create, Action::Update] {
        queue.extend(plan.changes.iter().filter(|c| c.action == action));
    }
    let machines: BTreeMap<&str, &crate::config::Machine> = config
        .machines
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let queue = Mutex::new(queue);
    let results = Mutex::new(BTreeMap::new());
    let workers = opts.parallelism.max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.pop_front()).ok().flatten();
                let Some(change) = next else { break };
                if opts.cancel.load(Ordering::SeqCst) {
                    events.emit(host_event(change, &Outcome::Skipped, Duration::ZERO));
                    if let Ok(mut r) = results.lock() {
                        r.insert(
                            change.address.clone(),
                            (change.action, Outcome::Skipped, Duration::ZERO),
                        );
                    }
                    continue;
                }
                let started = Instant::now();
                let step = Step {
                    store,
                    drivers,
                    config,
                    machines: &machines,
                    actor: &actor,
                    owner: &owner,
                    events,
                    fence: &fence,
                    cancel: &opts.cancel,
                };
                let outcome = match step.run(change) {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Failed(e),
                };
                let took = started.elapsed();
                events.emit(host_event(change, &outcome, took));
                if let Ok(mut r) = results.lock() {
                    r.insert(change.address.clone(), (change.action, outcome, took));
                }
            });
        }
    });
    report.results = results.into_inner().unwrap_or_default();
    Ok(report)
}

fn host_event(c: &Change, outcome: &Outcome, took: Duration) -> Event {
    let after = c.after.as_deref();
    Event::Host {
        address: c.address.clone(),
        action: c.action,
        outcome: outcome.clone(),
        took,
        machine: after.and_then(|a| a.machine.clone()),
        ip: after.and_then(|a| a.ip.clone()),
    }
}

/// The work for one host.
struct Step<'a> {
    store: &'a dyn Store,
    drivers: &'a dyn DriverSet,
    config: &'a Config,
    machines: &'a BTreeMap<&'a str, &'a crate::config::Machine>,
    actor: &'a Actor,
    owner: &'a str,
    events: &'a dyn Events,
    /// Written first in every transaction (see [`Options::fence`]).
    fence: &'a [Write],
    /// Set when the lease is lost: no new host is started.
    cancel: &'a AtomicBool,
}

impl Step<'_> {
    /// Pass on what a driver said about a host.
    fn said(&self, driver: &str, host: &str, diagnostics: &[Diagnostic]) {
        for d in diagnostics {
            self.events.emit(Event::diagnostic(driver, Some(host), d));
        }
    }

    fn run(&self, c: &Change) -> Result<(), String> {
        match c.action {
            Action::Create => self.create(c.after.as_ref().ok_or("create without a target state")?),
            Action::Delete => {
                self.delete(c.before.as_ref().ok_or("delete without a recorded state")?)
            }
            Action::Replace => {
                let before = c
                    .before
                    .as_ref()
                    .ok_or("replace without a recorded state")?;
                // A host the last apply left unfinished where it should be is adopted, so its
                // first boot resumes; any other replace starts from a new container.
                let recorded = self.store.get_host(&before.name).ok().flatten();
                if !records::resumable(recorded.as_ref(), c.after.as_deref()) {
                    self.destroy_container(before)?;
                }
                self.create(c.after.as_ref().ok_or("replace without a target state")?)
            }
            Action::Update => self.update(
                c.before.as_ref().ok_or("update without a recorded state")?,
                c.after.as_ref().ok_or("update without a target state")?,
            ),
            Action::NoOp => Ok(()),
        }
    }

    fn machine_ref(&self, name: &str) -> Result<(MachineRef, String), String> {
        let m = self
            .machines
            .get(name)
            .ok_or_else(|| format!("machine `{name}` is not in the config"))?;
        let connect = m
            .connect
            .parse()
            .map_err(|e| format!("machine `{name}`: {e}"))?;
        Ok((MachineRef::new(name, connect), m.driver.clone()))
    }

    fn record(
        &self,
        h: &HostState,
        state: State,
        driver_id: Option<String>,
        message: &str,
    ) -> Result<(), String> {
        let host = records::container(h, self.owner, state, driver_id);
        let actor = Actor {
            name: self.actor.name.clone(),
            message: Some(message.to_string()),
        };
        self.write(
            Write::PutHost {
                host,
                expect: Expect::Any,
            },
            &actor,
        )
    }

    /// One HostDB write, fenced by the lease.
    fn write(&self, w: Write, actor: &Actor) -> Result<(), String> {
        let mut writes = self.fence.to_vec();
        writes.push(w);
        self.store
            .write(writes, actor)
            .map(|_| ())
            .map_err(|e| match e {
                StoreError::LeaseLost { .. } => {
                    self.cancel.store(true, Ordering::SeqCst);
                    format!("HostDB: {e}: this apply lost the lock (another run may hold it now) and stopped writing")
                }
                e => format!("HostDB: {e}"),
            })
    }

    fn spec(&self, h: &HostState, driver_id: Option<String>) -> Result<ContainerSpec, String> {
        let net = self
            .config
            .networks
            .get(&h.network)
            .ok_or_else(|| format!("network `{}` is not in the config", h.network))?;
        let address: IpAddr =
            h.ip.as_deref()
                .ok_or("no address reserved")?
                .parse()
                .map_err(|e| format!("bad address: {e}"))?;
        let gateway = net
            .gateway
            .or_else(|| net.cidr.hosts().next())
            .ok_or("the network has no gateway")?;
        Ok(ContainerSpec {
            name: h.name.clone(),
            hostname: h.name.split('.').next().unwrap_or(&h.name).to_string(),
            image: h.image.clone(),
            cpu: h.cpu,
            memory_mib: h.memory_mib,
            disk_gib: h.disk_gib,
            network: NetworkSpec {
                name: net.name.clone(),
                cidr: net.cidr.to_string(),
                gateway,
                address,
                prefix_len: net.cidr.prefix_len(),
            },
            driver_id,
            boot: crate::config::login::boot_spec(
                self.config,
                &h.class,
                &h.network,
                &h.puppet_roles,
            ),
            owner: self.owner.to_string(),
        })
    }

    fn create(&self, h: &HostState) -> Result<(), String> {
        let machine = h.machine.as_deref().ok_or("no machine was chosen")?;
        let (mref, kind) = self.machine_ref(machine)?;
        let driver = self.drivers.get(&kind)?;
        // Intent first: the machine and address are reserved before anything exists.
        let existing_id = self
            .store
            .get_host(&h.name)
            .ok()
            .flatten()
            .and_then(|x| x.driver_id);
        self.record(h, State::Creating, existing_id.clone(), "creating")?;
        let spec = self.spec(h, existing_id)?;
        // A create that fails leaves alone whatever is there: the next apply adopts it, or the
        // operator replaces it with `--replace` (repairs never destroy).
        match with_retries(|| driver.create(&mref, &spec)) {
            Ok(resp) => {
                self.said(&kind, &h.name, &resp.diagnostics);
                match resp.first_boot.as_ref().and_then(|b| b.failure.as_ref()) {
                    None => self.record(h, State::Running, resp.driver_id, "running"),
                    Some(f) => {
                        let host = records::first_boot_failed(h, self.owner, resp.driver_id, f);
                        let actor = Actor {
                            name: self.actor.name.clone(),
                            message: Some(f.to_string()),
                        };
                        self.write(
                            Write::PutHost {
                                host,
                                expect: Expect::Any,
                            },
                            &actor,
                        )?;
                        Err(f.to_string())
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                self.record(h, State::Failed, None, &format!("create failed: {msg}"))?;
                Err(msg)
            }
        }
    }

    fn destroy_container(&self, h: &HostState) -> Result<(), String> {
        let Some(machine) = h.machine.as_deref() else {
            return Ok(()); // never placed: nothing exists
        };
        let Ok((mref, kind)) = self.machine_ref(machine) else {
            return Err(format!(
                "cannot reach `{machine}` to destroy `{}`: it is no longer in the config",
                h.name
            ));
        };
        let driver = self.drivers.get(&kind)?;
        self.record(h, State::Deleting, None, "deleting")?;
        with_retries(|| driver.destroy(&mref, &h.name))
            .map(|resp| self.said(&kind, &h.name, &resp.diagnostics))
            .map_err(|e| {
                let msg = e.to_string();
                let _ = self.record(h, State::Failed, None, &format!("destroy failed: {msg}"));
                msg
            })
    }

    fn delete(&self, h: &HostState) -> Result<(), String> {
        self.destroy_container(h)?;
        let actor = Actor {
            name: self.actor.name.clone(),
            message: Some("destroyed".into()),
        };
        self.write(
            Write::DeleteHost {
                name: h.name.clone(),
                expect: Expect::Any,
            },
            &actor,
        )
    }

    fn update(&self, before: &HostState, after: &HostState) -> Result<(), String> {
        let recorded = || self.store.get_host(&after.name).ok().flatten();
        if recorded().and_then(|r| r.state) != Some(State::Running) {
            // The last apply did not finish it: create it again, adopting (and starting)
            // whatever of its container exists; an adopted container keeps its size, so a
            // resize still follows.
            self.create(after)?;
        }
        if (before.cpu, before.memory_mib, before.disk_gib)
            != (after.cpu, after.memory_mib, after.disk_gib)
        {
            let machine = after.machine.as_deref().ok_or("no machine")?;
            let (mref, kind) = self.machine_ref(machine)?;
            let driver = self.drivers.get(&kind)?;
            if !driver.can_resize_live() {
                // Nothing is touched: a resize would need the container made again, which
                // loses its data, so only an explicit replace does that.
                return Err(format!(
                    "driver `{kind}` cannot resize a running container; replace it to change its size: `kloud apply --replace {}`",
                    after.name
                ));
            }
            let resp = driver
                .resize(
                    &mref,
                    &after.name,
                    after.cpu,
                    after.memory_mib,
                    after.disk_gib,
                )
                .map_err(|e| e.to_string())?;
            self.said(&kind, &after.name, &resp.diagnostics);
        }
        let driver_id = recorded().and_then(|x| x.driver_id);
        self.record(after, State::Running, driver_id, "updated")
    }
}

/// Run a driver call up to three times, waiting a little longer each time: a process left by a
/// killed run may still be working on the same container and hold it briefly.
fn with_retries<T>(mut call: impl FnMut() -> Result<T, DriverError>) -> Result<T, DriverError> {
    let mut wait = Duration::from_millis(500);
    let mut last = None;
    for _ in 0..3 {
        match call() {
            Ok(v) => return Ok(v),
            Err(
                e @ (DriverError::UnknownImage { .. }
                | DriverError::Invalid { .. }
                | DriverError::NotOurs { .. }),
            ) => return Err(e),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(wait);
        wait *= 2;
    }
    Err(last.expect("three attempts were made"))
}
