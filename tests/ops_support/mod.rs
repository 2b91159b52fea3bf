//! Test doubles for the engine tests: an in-memory compute driver that fails on demand
//! (`FakeDriver`), and a store wrapper that makes chosen HostDB writes fail
//! (`FaultInjectingStore`). Both inject faults real LXC and SQLite cannot be made to produce
//! at a chosen moment; everything else in these tests is the real engine and a real SQLite.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kloud::apply::DriverSet;
use kloud::hostdb::{
    Actor, Change, Host, HostQuery, Lease, Members, Page, Role, Snapshot, State, Store, StoreError,
    Tag, TokenInfo, Write,
};
use kloud_provider_api::compute::{
    ComputeDriver, ContainerSpec, ContainerState, CreateResponse, DriverError, ListResponse,
    MachineRef, Observed, Response,
};
use kloud_provider_api::Diagnostic;

/// A container the fake "runs".
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub spec: ContainerSpec,
    pub running: bool,
}

/// An in-memory `lxc` driver. Containers live in a map keyed by (machine, name).
#[derive(Default)]
pub struct FakeDriver {
    pub containers: Mutex<BTreeMap<(String, String), FakeContainer>>,
    /// Creates of these hosts fail.
    pub fail_create: Mutex<BTreeSet<String>>,
    /// Destroys of these hosts fail.
    pub fail_destroy: Mutex<BTreeSet<String>>,
    /// Set once this many creates have succeeded (to cancel mid-run).
    pub cancel_after: Mutex<Option<(usize, Arc<AtomicBool>)>>,
    pub creates: AtomicUsize,
    pub destroys: AtomicUsize,
    pub resizes: AtomicUsize,
    /// A warning every create returns, to check it reaches the user.
    pub create_warning: Mutex<Option<String>>,
    /// Say that resizes need the container made again (`can_resize_live` false), as a driver
    /// for a technology without live resize would.
    pub no_live_resize: AtomicBool,
}

impl FakeDriver {
    pub fn names(&self) -> BTreeSet<String> {
        self.containers
            .lock()
            .unwrap()
            .keys()
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub fn on(&self, machine: &str) -> BTreeSet<String> {
        self.containers
            .lock()
            .unwrap()
            .keys()
            .filter(|(m, _)| m == machine)
            .map(|(_, n)| n.clone())
            .collect()
    }

    fn failed(machine: &str, what: &str) -> DriverError {
        DriverError::CommandFailed {
            machine: machine.to_string(),
            command: what.to_string(),
            status: Some(1),
            stderr: "injected by FakeDriver".to_string(),
        }
    }
}

impl ComputeDriver for FakeDriver {
    fn kind(&self) -> &'static str {
        "lxc"
    }

    fn create(&self, m: &MachineRef, spec: &ContainerSpec) -> Result<CreateResponse, DriverError> {
        if self.fail_create.lock().unwrap().contains(&spec.name) {
            return Err(Self::failed(&m.name, "lxc-create"));
        }
        let key = (m.name.clone(), spec.name.clone());
        let adopted = {
            let mut c = self.containers.lock().unwrap();
            let adopted = c.contains_key(&key);
            c.entry(key)
                .and_modify(|x| x.running = true)
                .or_insert(FakeContainer {
                    spec: spec.clone(),
                    running: true,
                });
            adopted
        };
        let n = self.creates.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((after, cancel)) = self.cancel_after.lock().unwrap().as_ref() {
            if n >= *after {
                cancel.store(true, Ordering::SeqCst);
            }
        }
        let diagnostics = self
            .create_warning
            .lock()
            .unwrap()
            .iter()
            .map(|w| Diagnostic::warning(w.clone()))
            .collect();
        Ok(CreateResponse {
            driver_id: None,
            adopted,
            diagnostics,
            first_boot: None,
        })
    }

    fn can_resize_live(&self) -> bool {
        !self.no_live_resize.load(Ordering::SeqCst)
    }

    fn resize(
        &self,
        m: &MachineRef,
        name: &str,
        cpu: kloud::Cpu,
        memory_mib: u64,
        disk_gib: u64,
    ) -> Result<Response, DriverError> {
        let mut c = self.containers.lock().unwrap();
        let x = c
            .get_mut(&(m.name.clone(), name.to_string()))
            .ok_or_else(|| DriverError::NotFound {
                machine: m.name.clone(),
                name: name.to_string(),
            })?;
        x.spec.cpu = cpu;
        x.spec.memory_mib = memory_mib;
        x.spec.disk_gib = disk_gib;
        self.resizes.fetch_add(1, Ordering::SeqCst);
        Ok(Response::default())
    }

    fn start(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        let mut c = self.containers.lock().unwrap();
        match c.get_mut(&(m.name.clone(), name.to_string())) {
            Some(x) => {
                x.running = true;
                Ok(Response::default())
            }
            None => Err(DriverError::NotFound {
                machine: m.name.clone(),
                name: name.to_string(),
            }),
        }
    }

    fn stop(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        let mut c = self.containers.lock().unwrap();
        if let Some(x) = c.get_mut(&(m.name.clone(), name.to_string())) {
            x.running = false;
        }
        Ok(Response::default())
    }

    fn destroy(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        if self.fail_destroy.lock().unwrap().contains(name) {
            return Err(Self::failed(&m.name, "lxc-destroy"));
        }
        self.containers
            .lock()
            .unwrap()
            .remove(&(m.name.clone(), name.to_string()));
        self.destroys.fetch_add(1, Ordering::SeqCst);
        Ok(Response::default())
    }

    fn list(&self, m: &MachineRef) -> Result<ListResponse, DriverError> {
        let containers = self
            .containers
            .lock()
            .unwrap()
            .iter()
            .filter(|((machine, _), _)| *machine == m.name)
            .map(|((_, name), c)| Observed {
                name: name.clone(),
                state: if c.running {
                    ContainerState::Running
                } else {
                    ContainerState::Stopped
                },
                ip: Some(c.spec.network.address.to_string()),
                driver_id: None,
            })
            .collect();
        Ok(ListResponse {
            containers,
            diagnostics: Vec::new(),
        })
    }

    fn images(&self) -> Vec<String> {
        vec!["busybox".into()]
    }
}

/// The fake as the only driver of a run.
pub struct FakeDrivers(pub Arc<FakeDriver>);

impl DriverSet for FakeDrivers {
    fn get(&self, kind: &str) -> Result<&dyn ComputeDriver, String> {
        match kind {
            "lxc" => Ok(self.0.as_ref()),
            _ => Err(format!("no driver `{kind}`")),
        }
    }
}

/// A real store whose writes that set a host to one of `fail_states` fail while `armed`.
pub struct FaultInjectingStore {
    pub inner: Box<dyn Store>,
    pub armed: AtomicBool,
    pub fail_states: Vec<State>,
}

impl FaultInjectingStore {
    pub fn new(inner: Box<dyn Store>, fail_states: Vec<State>) -> Self {
        Self {
            inner,
            armed: AtomicBool::new(false),
            fail_states,
        }
    }
}

impl Store for FaultInjectingStore {
    fn url(&self) -> String {
        self.inner.url()
    }
    fn index(&self) -> Result<u64, StoreError> {
        self.inner.index()
    }
    fn wait_for_change(
        &self,
        after: u64,
        timeout: Duration,
        poll: Duration,
    ) -> Result<u64, StoreError> {
        self.inner.wait_for_change(after, timeout, poll)
    }
    fn get_host(&self, name: &str) -> Result<Option<Host>, StoreError> {
        self.inner.get_host(name)
    }
    fn list_hosts(&self, q: &HostQuery) -> Result<Page<Host>, StoreError> {
        self.inner.list_hosts(q)
    }
    fn get_tag(&self, name: &str) -> Result<Option<Tag>, StoreError> {
        self.inner.get_tag(name)
    }
    fn list_tags(&self) -> Result<Vec<Tag>, StoreError> {
        self.inner.list_tags()
    }
    fn tag_members(&self, name: &str) -> Result<Members, StoreError> {
        self.inner.tag_members(name)
    }
    fn write(&self, writes: Vec<Write>, actor: &Actor) -> Result<u64, StoreError> {
        let hit = writes.iter().any(|w| match w {
            Write::PutHost { host, .. } => {
                host.state.is_some_and(|s| self.fail_states.contains(&s))
            }
            _ => false,
        });
        if hit && self.armed.load(Ordering::SeqCst) {
            return Err(StoreError::Invalid(
                "injected by FaultInjectingStore".to_string(),
            ));
        }
        self.inner.write(writes, actor)
    }
    fn snapshot(&self, owner: &str) -> Result<Snapshot, StoreError> {
        self.inner.snapshot(owner)
    }
    fn used_ips(&self) -> Result<Vec<String>, StoreError> {
        self.inner.used_ips()
    }
    fn derived_config(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, StoreError> {
        self.inner.derived_config(name)
    }
    fn history(&self, object: &str) -> Result<Vec<Change>, StoreError> {
        self.inner.history(object)
    }
    fn last_change(&self, object: &str) -> Result<u64, StoreError> {
        self.inner.last_change(object)
    }
    fn lock_acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, StoreError> {
        self.inner.lock_acquire(name, holder, ttl)
    }
    fn lock_renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError> {
        self.inner.lock_renew(lease, ttl)
    }
    fn lock_release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.lock_release(lease)
    }
    fn lock_force_release(&self, id: &str) -> Result<(), StoreError> {
        self.inner.lock_force_release(id)
    }
    fn list_locks(&self) -> Result<Vec<Lease>, StoreError> {
        self.inner.list_locks()
    }
    fn token_create(&self, name: &str, role: Role) -> Result<(TokenInfo, String), StoreError> {
        self.inner.token_create(name, role)
    }
    fn token_verify(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError> {
        self.inner.token_verify(secret)
    }
    fn token_list(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.inner.token_list()
    }
    fn token_delete(&self, id: &str) -> Result<(), StoreError> {
        self.inner.token_delete(id)
    }
}

/// A config of two 4-cpu machines (`connect = "local"`, driver lxc) and `web_count` busybox
/// hosts of 1 cpu, written to `dir`.
pub fn write_config(dir: &Path, web_count: u32, web_memory: &str) {
    let hcl = format!(
        r#"kloud {{
  domain = "t.internal"
  hostdb = "sqlite:hostdb.db"
}}

machine_class "small" {{
  cpu    = 4
  memory = "4GiB"
  disk   = "100GiB"
}}

machines "m" {{
  class   = "small"
  count   = 2
  name    = "m-{{{{ index }}}}"
  labels  = {{ rack = "r1" }}
  connect = "local"
}}

network "lab" {{
  cidr    = "10.77.0.0/24"
  gateway = "10.77.0.1"
}}

host_class "web" {{
  count  = {web_count}
  cpu    = 1
  memory = "{web_memory}"
  disk   = "1GiB"
  image  = "busybox"
  network = "lab"
}}
"#
    );
    std::fs::write(dir.join("main.hcl"), hcl).unwrap();
}

/// The same two machines as [`write_config`], declared by config `owner` with `count` hosts of
/// class `class`, on the HostDB at `hostdb` (shared between configs).
pub fn write_owned_config(dir: &Path, owner: &str, hostdb: &str, class: &str, count: u32) {
    write_config(dir, 0, "256MiB");
    let text = std::fs::read_to_string(dir.join("main.hcl")).unwrap();
    let text = text
        .replace(
            "  hostdb = \"sqlite:hostdb.db\"",
            &format!("  hostdb = \"{hostdb}\"\n  owner  = \"{owner}\""),
        )
        .replace("host_class \"web\"", &format!("host_class \"{class}\""))
        .replace("count  = 0", &format!("count  = {count}"));
    std::fs::write(dir.join("main.hcl"), text).unwrap();
}

/// A PostgreSQL URL on a new, empty schema of the test server (dropped with the guard), or
/// `None` outside CI when the server is not set up (`scripts/setup/postgres.sh`).
pub fn pg_schema_url() -> Option<(String, PgSchema)> {
    let admin_url = match std::env::var("KLOUD_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ if kloud_provider_api::under_ci() => {
            panic!("CI is set but KLOUD_TEST_PG_URL is not: source scripts/setup/postgres.sh")
        }
        _ => {
            eprintln!("skipping: KLOUD_TEST_PG_URL not set (source scripts/setup/postgres.sh)");
            return None;
        }
    };
    let schema = format!("t_{}", kloud::hostdb::util::random_hex(8).unwrap());
    let mut c = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
    Some((url, PgSchema { admin_url, schema }))
}

/// Drops its schema when dropped.
pub struct PgSchema {
    admin_url: String,
    schema: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}
