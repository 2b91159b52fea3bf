//! The fenced apply lock over a real `kloud hostdb serve` process: the server is stopped
//! (SIGSTOP) for longer than the lease while an apply is in the middle of a host; a second
//! apply then takes the lock and converges; the first, resumed, stops at its next write with a
//! clear error. Containers = records = config afterwards. The driver is the in-memory fake (it
//! holds the first create until told), the server and its SQLite HostDB are real.

mod ops_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kloud::apply::DriverSet;
use kloud::config::load;
use kloud::hostdb::client::HttpStore;
use kloud::hostdb::{HostQuery, Kind, State, Store};
use kloud::ops::{self, events::Recorded, ApplyRequest, PlanRequest};
use kloud_provider_api::compute::{
    ComputeDriver, ContainerSpec, CreateResponse, DriverError, ListResponse, MachineRef, Response,
};
use ops_support::{write_config, FakeDriver};

/// The fake, except that the first create waits until `release` is sent.
struct HeldFirstCreate {
    inner: Arc<FakeDriver>,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

impl ComputeDriver for HeldFirstCreate {
    fn kind(&self) -> &'static str {
        "lxc"
    }
    fn create(&self, m: &MachineRef, spec: &ContainerSpec) -> Result<CreateResponse, DriverError> {
        let wait = self.release.lock().unwrap().take();
        if let Some(wait) = wait {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                let _ = tx.send(());
            }
            let _ = wait.recv();
        }
        self.inner.create(m, spec)
    }
    fn can_resize_live(&self) -> bool {
        true
    }
    fn resize(
        &self,
        m: &MachineRef,
        n: &str,
        c: kloud::Cpu,
        mem: u64,
        d: u64,
    ) -> Result<Response, DriverError> {
        self.inner.resize(m, n, c, mem, d)
    }
    fn start(&self, m: &MachineRef, n: &str) -> Result<Response, DriverError> {
        self.inner.start(m, n)
    }
    fn stop(&self, m: &MachineRef, n: &str) -> Result<Response, DriverError> {
        self.inner.stop(m, n)
    }
    fn destroy(&self, m: &MachineRef, n: &str) -> Result<Response, DriverError> {
        self.inner.destroy(m, n)
    }
    fn list(&self, m: &MachineRef) -> Result<ListResponse, DriverError> {
        self.inner.list(m)
    }
    fn images(&self) -> Vec<String> {
        self.inner.images()
    }
}

struct One<'a>(&'a dyn ComputeDriver);

impl DriverSet for One<'_> {
    fn get(&self, kind: &str) -> Result<&dyn ComputeDriver, String> {
        match kind {
            "lxc" => Ok(self.0),
            _ => Err(format!("no driver `{kind}`")),
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kloud() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kloud"))
}

/// `kloud hostdb serve` on a free loopback port over `db`; its URL.
fn serve(db: &str) -> (Server, String) {
    let mut child = kloud()
        .args(["hostdb", "serve", "--listen", "127.0.0.1:0", "--store", db])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .unwrap();
        if let Some(at) = line.find("http://") {
            break line[at..].trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Server(child), url)
}

fn token(db: &str) -> String {
    let out = kloud()
        .args([
            "hostdb", "token", "create", "--role", "operator", "--store", db,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn signal(server: &Server, sig: &str) {
    let ok = Command::new("kill")
        .arg(sig)
        .arg(server.0.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn an_apply_that_lost_its_lock_stops_at_its_next_write_and_the_next_one_converges() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 3, "256MiB");
    let db = format!("sqlite:{}", dir.path().join("served.db").display());
    let (server, url) = serve(&db);
    let store = HttpStore::new(&url, Some(token(&db))).unwrap();
    let config = load(dir.path(), &Default::default()).unwrap();
    let fake = Arc::new(FakeDriver::default());
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let held = HeldFirstCreate {
        inner: fake.clone(),
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(Some(release_rx)),
    };
    let ttl = Duration::from_secs(3);
    let request = |actor: &str| ApplyRequest {
        parallelism: 1,
        actor: actor.into(),
        cancel: Arc::new(AtomicBool::new(false)),
        lock_ttl: ttl,
    };
    let first_plan = ops::plan(
        &config,
        &store,
        &One(&held),
        &PlanRequest::default(),
        &Recorded::default(),
    )
    .unwrap();
    let first_events = Recorded::default();
    let first = std::thread::scope(|s| {
        let first = s.spawn(|| {
            ops::apply(
                &first_plan,
                &config,
                &store,
                &One(&held),
                &request("first"),
                &first_events,
            )
        });
        // The first apply is inside its first create; the server stops for longer than the lease.
        entered.recv_timeout(Duration::from_secs(30)).unwrap();
        signal(&server, "-STOP");
        std::thread::sleep(ttl + Duration::from_secs(1));
        signal(&server, "-CONT");
        // A second apply, planned now, takes the expired lock and converges.
        let second_store = HttpStore::new(&url, Some(token(&db))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let second = loop {
            let plan = ops::plan(
                &config,
                &second_store,
                &One(fake.as_ref()),
                &PlanRequest::default(),
                &Recorded::default(),
            )
            .unwrap();
            match ops::apply(
                &plan,
                &config,
                &second_store,
                &One(fake.as_ref()),
                &request("second"),
                &Recorded::default(),
            ) {
                Err(ops::OpsError::Locked(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                other => break other.unwrap(),
            }
        };
        assert!(second.complete(), "{second:?}");
        // Now the first one's create returns; its next write must fail on the fence.
        release.send(()).unwrap();
        first.join().unwrap()
    });
    let first = first.unwrap();
    assert!(!first.complete());
    let failed: Vec<&String> = first
        .hosts
        .results
        .values()
        .filter_map(|(_, o, _)| match o {
            kloud::apply::Outcome::Failed(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{first:?}");
    assert!(failed[0].contains("lost the lock"), "{}", failed[0]);
    assert!(first.lock_trouble || first.hosts.skipped() > 0, "{first:?}");
    // No host started after the lease was lost.
    assert_eq!(first.done(), 0, "{first:?}");
    // Containers = records = config.
    let records: Vec<(String, Option<State>)> = store
        .all_hosts(&HostQuery {
            kind: Some(Kind::Container),
            ..HostQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|h| (h.name, h.state))
        .collect();
    let want: Vec<String> = (1..=3).map(|i| format!("web-{i}.t.internal")).collect();
    assert_eq!(
        records,
        want.iter()
            .map(|n| (n.clone(), Some(State::Running)))
            .collect::<Vec<_>>()
    );
    assert_eq!(fake.names(), want.into_iter().collect());
    assert!(!Arc::new(AtomicBool::new(false)).load(Ordering::SeqCst));
    drop(server);
}
