//! The engine (`kloud::ops`) end to end over a real SQLite HostDB and an in-memory fake driver
//! that fails on demand: what real LXC cannot be made to do at a chosen moment.

mod ops_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kloud::apply::Outcome;
use kloud::config::{load, Config};
use kloud::hostdb::{self, HostQuery, Kind, State, Store};
use kloud::ops::{self, events::Recorded, ApplyRequest, Event, PlanRequest};
use kloud::plan::{Action, Plan};
use kloud::Cpu;
use ops_support::{write_config, FakeDriver, FakeDrivers, FaultInjectingStore};

struct Lab {
    dir: tempfile::TempDir,
    driver: Arc<FakeDriver>,
    store: Box<dyn Store>,
}

impl Lab {
    fn new(web_count: u32) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), web_count, "256MiB");
        let store = hostdb::open("sqlite:hostdb.db", dir.path()).unwrap();
        Lab {
            dir,
            driver: Arc::new(FakeDriver::default()),
            store,
        }
    }

    fn config(&self) -> Config {
        load(self.dir.path(), &Default::default()).unwrap()
    }

    fn plan_with(&self, store: &dyn Store, req: &PlanRequest) -> Plan {
        let config = self.config();
        let plan = ops::plan(
            &config,
            store,
            &FakeDrivers(self.driver.clone()),
            req,
            &Recorded::default(),
        )
        .unwrap();
        let outside = kloud::plan::check::outside(store, &plan).unwrap();
        let violations = kloud::plan::check::check(&plan, &config, &outside);
        assert!(violations.is_empty(), "invariants broken: {violations:?}");
        plan
    }

    fn plan(&self) -> Plan {
        self.plan_with(self.store.as_ref(), &PlanRequest::default())
    }

    fn apply_with(
        &self,
        store: &dyn Store,
        plan: &Plan,
        cancel: Arc<AtomicBool>,
    ) -> (ops::ApplyOutcome, Vec<Event>) {
        let events = Recorded::default();
        let req = ApplyRequest {
            parallelism: 2,
            actor: "test".into(),
            cancel,
            lock_ttl: kloud::apply::TTL,
        };
        let out = ops::apply(
            plan,
            &self.config(),
            store,
            &FakeDrivers(self.driver.clone()),
            &req,
            &events,
        )
        .unwrap();
        (out, events.events())
    }

    fn apply(&self) -> (ops::ApplyOutcome, Vec<Event>) {
        let plan = self.plan();
        self.apply_with(self.store.as_ref(), &plan, Arc::new(AtomicBool::new(false)))
    }

    fn recorded(&self) -> Vec<(String, Option<State>)> {
        self.store
            .all_hosts(&HostQuery {
                kind: Some(Kind::Container),
                ..HostQuery::default()
            })
            .unwrap()
            .into_iter()
            .map(|h| (h.name, h.state))
            .collect()
    }

    fn running(&self) -> BTreeSet<String> {
        self.recorded()
            .into_iter()
            .filter(|(_, s)| *s == Some(State::Running))
            .map(|(n, _)| n)
            .collect()
    }
}

fn host_names(n: u32) -> BTreeSet<String> {
    (1..=n).map(|i| format!("web-{i}.t.internal")).collect()
}

#[test]
fn apply_creates_records_and_reports_each_host() {
    let lab = Lab::new(4);
    lab.driver
        .create_warning
        .lock()
        .unwrap()
        .replace("image is old".into());
    let (out, events) = lab.apply();
    assert!(out.complete(), "{out:?}");
    assert_eq!(out.done(), 4);
    assert_eq!(lab.driver.names(), host_names(4));
    assert_eq!(lab.running(), host_names(4));
    let hosts: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Host {
                    outcome: Outcome::Done,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(hosts.len(), 4);
    // What the driver said reaches the listener, once per host.
    let warnings = events
        .iter()
        .filter(|e| matches!(e, Event::Diagnostic { summary, error: false, .. } if summary == "image is old"))
        .count();
    assert_eq!(warnings, 4);
    assert!(matches!(events.first(), Some(Event::Locked { .. })));
    // A second run has nothing to do.
    let plan = lab.plan();
    assert!(!plan.has_changes(), "{:?}", plan.summary);
}

#[test]
fn a_failed_create_fails_its_host_only_and_the_next_apply_repairs_it() {
    let lab = Lab::new(4);
    lab.driver
        .fail_create
        .lock()
        .unwrap()
        .insert("web-2.t.internal".into());
    let (out, _) = lab.apply();
    assert_eq!(out.hosts.failed(), 1);
    assert_eq!(out.done(), 3);
    assert!(!out.complete());
    let recorded = lab.recorded();
    assert!(recorded.contains(&("web-2.t.internal".into(), Some(State::Failed))));
    assert!(!lab.driver.names().contains("web-2.t.internal"));
    lab.driver.fail_create.lock().unwrap().clear();
    let plan = lab.plan();
    let change = plan
        .changes
        .iter()
        .find(|c| c.address == "web-2.t.internal")
        .unwrap();
    // Repaired in place: created again on the same machine, nothing destroyed.
    assert_eq!(change.action, Action::Update);
    assert!(
        change.reason.contains("left it `failed`"),
        "{}",
        change.reason
    );
    let (out, _) = lab.apply_with(lab.store.as_ref(), &plan, Arc::new(AtomicBool::new(false)));
    assert!(out.complete());
    assert_eq!(lab.running(), host_names(4));
    assert_eq!(lab.driver.names(), host_names(4));
    assert_eq!(lab.driver.destroys.load(Ordering::SeqCst), 0);
}

#[test]
fn a_failed_destroy_keeps_the_record_and_says_so() {
    let lab = Lab::new(3);
    assert!(lab.apply().0.complete());
    write_config(lab.dir.path(), 2, "256MiB");
    lab.driver
        .fail_destroy
        .lock()
        .unwrap()
        .insert("web-3.t.internal".into());
    let (out, _) = lab.apply();
    assert_eq!(out.hosts.failed(), 1);
    // The container still exists, so HostDB must still say so.
    assert!(lab.driver.names().contains("web-3.t.internal"));
    assert!(lab
        .recorded()
        .contains(&("web-3.t.internal".into(), Some(State::Failed))));
    lab.driver.fail_destroy.lock().unwrap().clear();
    assert!(lab.apply().0.complete());
    assert_eq!(lab.driver.names(), host_names(2));
    assert_eq!(lab.running(), host_names(2));
}

#[test]
fn a_hostdb_write_failing_after_create_is_repaired_without_a_second_container() {
    let lab = Lab::new(3);
    let store = FaultInjectingStore::new(
        hostdb::open("sqlite:hostdb.db", lab.dir.path()).unwrap(),
        vec![State::Running],
    );
    let plan = lab.plan_with(&store, &PlanRequest::default());
    store.armed.store(true, Ordering::SeqCst);
    let (out, _) = lab.apply_with(&store, &plan, Arc::new(AtomicBool::new(false)));
    // Every container was made, but no host could be recorded `running`.
    assert_eq!(out.hosts.failed(), 3);
    assert_eq!(lab.driver.names(), host_names(3));
    assert!(lab.running().is_empty());
    // The next apply adopts them: no container is destroyed or made twice.
    store.armed.store(false, Ordering::SeqCst);
    let creates_before = lab.driver.creates.load(Ordering::SeqCst);
    let (out, _) = lab.apply();
    assert!(out.complete(), "{out:?}");
    assert_eq!(lab.running(), host_names(3));
    assert_eq!(lab.driver.names(), host_names(3));
    assert_eq!(lab.driver.destroys.load(Ordering::SeqCst), 0);
    assert_eq!(
        lab.driver.creates.load(Ordering::SeqCst),
        creates_before + 3
    );
}

#[test]
fn cancelling_mid_run_skips_the_rest_and_the_next_apply_finishes() {
    let lab = Lab::new(6);
    let cancel = Arc::new(AtomicBool::new(false));
    lab.driver
        .cancel_after
        .lock()
        .unwrap()
        .replace((2, cancel.clone()));
    let plan = lab.plan();
    let (out, events) = lab.apply_with(lab.store.as_ref(), &plan, cancel);
    assert!(out.hosts.skipped() >= 1, "{out:?}");
    assert_eq!(out.done() + out.hosts.skipped(), 6);
    let skipped = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Host {
                    outcome: Outcome::Skipped,
                    ..
                }
            )
        })
        .count();
    assert_eq!(skipped, out.hosts.skipped());
    // Nothing half-recorded: every container that exists is running in HostDB, and the rest
    // were never recorded.
    assert_eq!(lab.running(), lab.driver.names());
    lab.driver.cancel_after.lock().unwrap().take();
    assert!(lab.apply().0.complete());
    assert_eq!(lab.running(), host_names(6));
}

#[test]
fn a_resize_is_applied_in_place() {
    let lab = Lab::new(2);
    assert!(lab.apply().0.complete());
    write_config(lab.dir.path(), 2, "512MiB");
    let plan = lab.plan();
    assert_eq!(plan.summary.update, 2, "{:?}", plan.summary);
    let (out, _) = lab.apply_with(lab.store.as_ref(), &plan, Arc::new(AtomicBool::new(false)));
    assert!(out.complete());
    assert_eq!(lab.driver.resizes.load(Ordering::SeqCst), 2);
    assert_eq!(lab.driver.destroys.load(Ordering::SeqCst), 0);
    let sizes: BTreeSet<u64> = lab
        .driver
        .containers
        .lock()
        .unwrap()
        .values()
        .map(|c| c.spec.memory_mib)
        .collect();
    assert_eq!(sizes, BTreeSet::from([512]));
}

#[test]
fn a_driver_without_live_resize_fails_the_resize_and_touches_nothing() {
    let lab = Lab::new(2);
    assert!(lab.apply().0.complete());
    lab.driver.no_live_resize.store(true, Ordering::SeqCst);
    write_config(lab.dir.path(), 2, "512MiB");
    let plan = lab.plan();
    assert_eq!(plan.summary.update, 2, "{:?}", plan.summary);
    let (out, _) = lab.apply_with(lab.store.as_ref(), &plan, Arc::new(AtomicBool::new(false)));
    assert_eq!(out.hosts.failed(), 2);
    for (name, (_, outcome, _)) in &out.hosts.results {
        let Outcome::Failed(why) = outcome else {
            panic!("{name}: {outcome:?}");
        };
        assert!(
            why.contains("cannot resize a running container")
                && why.contains(&format!("kloud apply --replace {name}")),
            "{why}"
        );
    }
    assert_eq!(lab.driver.resizes.load(Ordering::SeqCst), 0);
    assert_eq!(lab.driver.destroys.load(Ordering::SeqCst), 0);
    let sizes: BTreeSet<u64> = lab
        .driver
        .containers
        .lock()
        .unwrap()
        .values()
        .map(|c| c.spec.memory_mib)
        .collect();
    assert_eq!(sizes, BTreeSet::from([256]));
}

/// [`write_config`] on three machines, room for 12 one-cpu hosts.
fn write_roomy_config(dir: &std::path::Path, web_count: u32) {
    write_config(dir, web_count, "256MiB");
    let text = std::fs::read_to_string(dir.join("main.hcl")).unwrap();
    std::fs::write(
        dir.join("main.hcl"),
        text.replacen("count   = 2", "count   = 3", 1),
    )
    .unwrap();
}

/// The guard (`plan::diff`): refused when at least 10 hosts are managed and more than 30% of
/// them would go. Each edge from both sides: 3 of 10 (exactly 30%) passes, 4 of 10 is refused;
/// 8 of 9 passes (below 10 managed).
#[test]
fn the_mass_delete_guard_at_its_30_percent_and_10_host_edges() {
    let plan_for = |lab: &Lab, web_count: u32| {
        write_roomy_config(lab.dir.path(), web_count);
        ops::plan(
            &lab.config(),
            lab.store.as_ref(),
            &FakeDrivers(lab.driver.clone()),
            &PlanRequest::default(),
            &Recorded::default(),
        )
    };
    let lab = Lab::new(0);
    write_roomy_config(lab.dir.path(), 10);
    assert!(lab.apply().0.complete());
    assert_eq!(lab.running().len(), 10);
    let at_share = plan_for(&lab, 7).unwrap();
    assert_eq!(at_share.summary.delete, 3, "{:?}", at_share.summary);
    match plan_for(&lab, 6) {
        Err(ops::OpsError::Refused(kloud::plan::DiffError::MassDelete {
            deletes,
            managed,
            ..
        })) => assert_eq!((deletes, managed), (4, 10)),
        other => panic!("4 of 10 must be refused: {:?}", other.map(|p| p.summary)),
    }

    let small = Lab::new(0);
    write_roomy_config(small.dir.path(), 9);
    assert!(small.apply().0.complete());
    let below_min = plan_for(&small, 1).unwrap();
    assert_eq!(below_min.summary.delete, 8, "{:?}", below_min.summary);
}

#[test]
fn a_held_lock_refuses_a_second_apply() {
    let lab = Lab::new(1);
    let plan = lab.plan();
    let lease = lab
        .store
        .lock_acquire(
            kloud::apply::APPLY_LOCK,
            "someone else",
            std::time::Duration::from_secs(30),
        )
        .unwrap();
    let req = ApplyRequest {
        parallelism: 1,
        actor: "test".into(),
        cancel: Arc::new(AtomicBool::new(false)),
        lock_ttl: kloud::apply::TTL,
    };
    let err = ops::apply(
        &plan,
        &lab.config(),
        lab.store.as_ref(),
        &FakeDrivers(lab.driver.clone()),
        &req,
        &Recorded::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ops::OpsError::Locked(_)), "{err}");
    assert!(err.to_string().contains("someone else"), "{err}");
    assert!(lab.driver.names().is_empty());
    lab.store.lock_release(&lease).unwrap();
}

#[test]
fn a_stopped_container_is_started_again_not_replaced() {
    let lab = Lab::new(2);
    assert!(lab.apply().0.complete());
    // Stopped behind kloud's back; refresh notices and marks it failed.
    {
        let mut c = lab.driver.containers.lock().unwrap();
        c.values_mut().next().unwrap().running = false;
    }
    let plan = lab.plan_with(
        lab.store.as_ref(),
        &PlanRequest {
            refresh: true,
            ..PlanRequest::default()
        },
    );
    assert_eq!(plan.summary.update, 1, "{:?}", plan.summary);
    assert_eq!(plan.summary.replace, 0);
    let (out, _) = lab.apply_with(lab.store.as_ref(), &plan, Arc::new(AtomicBool::new(false)));
    assert!(out.complete());
    assert_eq!(lab.driver.destroys.load(Ordering::SeqCst), 0);
    assert!(lab
        .driver
        .containers
        .lock()
        .unwrap()
        .values()
        .all(|c| c.running));
    assert_eq!(lab.running(), host_names(2));
}

#[test]
fn replace_by_name_is_the_only_way_to_remake_an_existing_container() {
    let lab = Lab::new(2);
    assert!(lab.apply().0.complete());
    let plan = lab.plan_with(
        lab.store.as_ref(),
        &PlanRequest {
            replace: vec!["web-1.t.internal".into()],
            ..PlanRequest::default()
        },
    );
    let c = plan
        .changes
        .iter()
        .find(|c| c.address == "web-1.t.internal")
        .unwrap();
    assert_eq!(c.action, Action::Replace);
    assert_eq!(c.reason, "replacement requested with --replace");
    let (out, _) = lab.apply_with(lab.store.as_ref(), &plan, Arc::new(AtomicBool::new(false)));
    assert!(out.complete());
    assert_eq!(lab.driver.destroys.load(Ordering::SeqCst), 1);
    assert_eq!(lab.running(), host_names(2));
}

#[test]
fn capacity_is_shared_by_every_owner_on_a_machine_sqlite() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", db.path().join("shared.db").display());
    capacity_is_shared_on(hostdb::open(&url, db.path()).unwrap());
}

#[test]
fn capacity_is_shared_by_every_owner_on_a_machine_postgres() {
    let Some((url, _schema)) = ops_support::pg_schema_url() else {
        return;
    };
    capacity_is_shared_on(hostdb::open(&url, std::path::Path::new(".")).unwrap());
}

#[test]
fn capacity_is_shared_by_every_owner_on_a_machine_http() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", db.path().join("served.db").display());
    let served: Arc<dyn Store> = Arc::from(hostdb::open(&url, db.path()).unwrap());
    let (_, token) = served
        .token_create("test", kloud::hostdb::Role::Operator)
        .unwrap();
    let server = kloud::server::spawn(
        "127.0.0.1:0".parse().unwrap(),
        served,
        kloud::server::ServerConfig::default(),
        2,
    )
    .unwrap();
    let store = kloud::hostdb::client::HttpStore::new(&server.url(), Some(token)).unwrap();
    capacity_is_shared_on(Box::new(store));
}

/// Config A fills 6 of the 8 cpus of two shared machines; a person holds one more; config B
/// (another owner, the same machines) gets the one that is left.
fn capacity_is_shared_on(store: Box<dyn Store>) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let url = store.url();
    ops_support::write_owned_config(a.path(), "team-a", &url, "web", 6);
    ops_support::write_owned_config(b.path(), "team-b", &url, "api", 4);
    let driver = Arc::new(FakeDriver::default());
    let drivers = FakeDrivers(driver.clone());
    let run = |dir: &std::path::Path, events: &Recorded| {
        let config = load(dir, &Default::default()).unwrap();
        let plan = ops::plan(
            &config,
            store.as_ref(),
            &drivers,
            &PlanRequest::default(),
            events,
        )
        .unwrap();
        let outside = kloud::plan::check::outside(store.as_ref(), &plan).unwrap();
        let violations = kloud::plan::check::check(&plan, &config, &outside);
        assert!(violations.is_empty(), "invariants broken: {violations:?}");
        (config, plan)
    };
    let (config_a, plan_a) = run(a.path(), &Recorded::default());
    assert_eq!(plan_a.summary.create, 6);
    let req = ApplyRequest {
        parallelism: 2,
        actor: "test".into(),
        cancel: Arc::new(AtomicBool::new(false)),
        lock_ttl: kloud::apply::TTL,
    };
    let out = ops::apply(
        &plan_a,
        &config_a,
        store.as_ref(),
        &drivers,
        &req,
        &Recorded::default(),
    )
    .unwrap();
    assert!(out.complete());
    let mut person = kloud::hostdb::Host::container("small-alice-1.t.internal");
    person.owner = Some("user:alice".into());
    // On the machine A left room on (A's 6 cpus over two 4-cpu machines leave 2 free there).
    let mut per_machine: std::collections::BTreeMap<String, usize> = Default::default();
    for c in &plan_a.changes {
        *per_machine
            .entry(c.after.as_ref().unwrap().machine.clone().unwrap())
            .or_default() += 1;
    }
    let roomy = per_machine
        .iter()
        .min_by_key(|(_, n)| **n)
        .map(|(m, _)| m.clone())
        .unwrap();
    person.machine = Some(roomy);
    person.cpu = Some(Cpu::from_cores(1));
    person.memory_mib = Some(256);
    person.disk_gib = Some(1);
    person.ip = Some("10.77.0.200".into());
    person.state = Some(State::Running);
    store
        .put_host(
            person,
            kloud::hostdb::Expect::Absent,
            &kloud::hostdb::Actor::new("serve"),
        )
        .unwrap();
    // Config B, another owner on the same machines, has one cpu left, not eight.
    let (_, plan_b) = run(b.path(), &Recorded::default());
    assert_eq!(plan_b.summary.create, 1, "{:?}", plan_b.summary);
    assert_eq!(plan_b.unplaced.len(), 3);
    assert!(
        plan_b.unplaced[0].reasons.contains_key("capacity:cpu"),
        "{:?}",
        plan_b.unplaced
    );
    // B shares the machine records: it changes nothing about them, and never deletes A's hosts.
    assert!(plan_b.machines.iter().all(|m| m.action == Action::NoOp));
    assert!(plan_b.changes.iter().all(|c| c.action == Action::Create));
    // The person's address is not handed out again.
    assert!(plan_b
        .changes
        .iter()
        .all(|c| c.after.as_ref().and_then(|h| h.ip.as_deref()) != Some("10.77.0.200")));
    // A machine declared differently by B is refused, naming the config that disagrees.
    let text = std::fs::read_to_string(b.path().join("main.hcl"))
        .unwrap()
        .replace(
            "cpu    = 4\n  memory = \"4GiB\"",
            "cpu    = 64\n  memory = \"4GiB\"",
        );
    std::fs::write(b.path().join("main.hcl"), text).unwrap();
    let config_b = load(b.path(), &Default::default()).unwrap();
    let err = ops::plan(
        &config_b,
        store.as_ref(),
        &drivers,
        &PlanRequest::default(),
        &Recorded::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("team-a") && msg.contains("capacity"), "{msg}");
}
