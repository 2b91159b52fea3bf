//! The plan against a real SQLite HostDB: every action, snapshots of every rendering, the JSON
//! schema, invariants of every placement, the mass-delete guard and stale-plan refusal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kloud::apply::records;
use kloud::config::{self, Config, VarOverrides};
use kloud::hostdb::{self, Actor, Expect, Host, Store};
use kloud::plan::{self, render, Action, Plan};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn load(dir: &Path, vars: &[(&str, &str)]) -> Config {
    std::env::set_var("KLOUD_TSIG_SECRET", "c2VjcmV0");
    let overrides: VarOverrides = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config::load(dir, &overrides).unwrap_or_else(|d| panic!("{d}"))
}

fn store() -> (tempfile::TempDir, Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = hostdb::open("sqlite:hostdb.db", dir.path()).unwrap();
    (dir, store)
}

fn make(config: &Config, store: &dyn Store, opts: &plan::Options) -> Result<Plan, plan::DiffError> {
    let snap = store.snapshot(&config.settings.owner).unwrap();
    let used = store.used_ips().unwrap();
    let p = plan::diff(config, &snap, &used, "sqlite:test", opts)?;
    check_invariants(config, store, &p);
    validate_schema(&p);
    Ok(p)
}

/// Record a plan in HostDB as apply does (with apply's own record builders), without
/// containers: the state plans are diffed against.
fn record(config: &Config, store: &dyn Store, p: &Plan) {
    let writes = records::as_applied(p, &config.settings.owner);
    store.write(writes, &Actor::new("test")).unwrap();
}

/// No machine over capacity, no rule broken, no address twice — over the whole resulting fleet,
/// by the engine's own plan checker (which also counts hosts the plan does not mention).
fn check_invariants(config: &Config, store: &dyn Store, p: &Plan) {
    for c in p.changes.iter().filter(|c| c.action != Action::Delete) {
        let a = c
            .after
            .as_ref()
            .expect("every kept host has an after state");
        assert!(a.machine.is_some(), "{} has no machine", a.name);
        assert!(a.ip.is_some(), "{} has no address", a.name);
    }
    let outside = plan::check::outside(store, p).unwrap();
    let violations = plan::check::check(p, config, &outside);
    assert!(violations.is_empty(), "invariants broken: {violations:?}");
}

fn validate_schema(p: &Plan) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/plan.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let instance = serde_json::to_value(p).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "the plan JSON breaks its schema: {errors:?}"
    );
}

fn normalized_json(p: &Plan) -> String {
    let mut v = serde_json::to_value(p).unwrap();
    v["kloud_version"] = "VERSION".into();
    if let Some(c) = v.get_mut("config").and_then(|c| c.as_object_mut()) {
        c.insert("dir".into(), "DIR".into());
        c.insert("digest".into(), "DIGEST".into());
    }
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn quickstart_from_empty_hostdb_creates_everything() {
    let config = load(&example("quickstart"), &[]);
    let (_d, store) = store();
    let p = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert_eq!(p.summary.create, 5);
    assert_eq!(p.machines.len(), 3);
    assert!(p.has_changes());
    insta::assert_snapshot!(
        "quickstart_human",
        render::human(&p, render::Style::default())
    );
    insta::assert_snapshot!(
        "quickstart_compact",
        render::human(
            &p,
            render::Style {
                colour: false,
                compact: true
            }
        )
    );
    insta::assert_snapshot!("quickstart_markdown", render::markdown(&p));
    insta::assert_snapshot!("quickstart_json", normalized_json(&p));
}

#[test]
fn after_apply_nothing_changes_and_each_action_is_planned() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["main.hcl", "hosts.hcl"] {
        std::fs::copy(example("quickstart").join(f), dir.path().join(f)).unwrap();
    }
    let config = load(dir.path(), &[]);
    let (_d, store) = store();
    let first = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    record(&config, store.as_ref(), &first);
    let again = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert!(
        !again.has_changes(),
        "a plan right after apply changes nothing:\n{}",
        render::human(&again, render::Style::default())
    );
    assert_eq!(again.summary.no_op, 5);

    // Count down: deletes at the highest index, with the reason.
    let fewer = load(dir.path(), &[("web_count", "1")]);
    let p = make(&fewer, store.as_ref(), &plan::Options::default()).unwrap();
    let deletes: Vec<&str> = p
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| c.address.as_str())
        .collect();
    assert_eq!(
        deletes,
        ["web-2.qs.kloud.internal", "web-3.qs.kloud.internal"]
    );
    assert!(p
        .changes
        .iter()
        .any(|c| c.reason == "count decreased from 3 to 1"));

    // Count up: 3 machines of 2 cpu hold 6 one-cpu hosts; 5 exist, so one more fits.
    let more = load(dir.path(), &[("web_count", "4")]);
    let p = make(&more, store.as_ref(), &plan::Options::default()).unwrap();
    assert_eq!(p.summary.create, 1);
    assert!(p
        .changes
        .iter()
        .any(|c| c.reason == "count increased from 3 to 4"));
    let too_many = load(dir.path(), &[("web_count", "5")]);
    let p = make(&too_many, store.as_ref(), &plan::Options::default()).unwrap();
    assert_eq!(
        p.unplaced.len(),
        1,
        "the 7th one-cpu host does not fit on 6 cpus"
    );
    assert_eq!(
        p.unplaced[0].reasons.get("capacity:cpu"),
        Some(&3),
        "{:?}",
        p.unplaced[0]
    );

    // Tags, properties, roles: update in place; image: replace; memory: update (fits) with a diff.
    let edited = std::fs::read_to_string(dir.path().join("hosts.hcl"))
        .unwrap()
        .replace("env = \"quickstart\"", "env = \"staging\"")
        .replace("memory       = \"64MiB\"", "memory       = \"96MiB\"")
        .replace(
            "puppet_roles = [\"role::haproxy\"]",
            "puppet_roles = [\"role::haproxy\"]\n  name         = \"lb-{{ index }}\"",
        );
    std::fs::write(
        dir.path().join("hosts.hcl"),
        edited.replacen(
            "image        = \"debian-12\"",
            "image        = \"debian-12-slim\"",
            1,
        ),
    )
    .unwrap();
    let changed = load(dir.path(), &[]);
    let p = make(&changed, store.as_ref(), &plan::Options::default()).unwrap();
    let by: BTreeMap<&str, (&Action, &str)> = p
        .changes
        .iter()
        .map(|c| (c.address.as_str(), (&c.action, c.reason.as_str())))
        .collect();
    assert_eq!(by["web-1.qs.kloud.internal"].0, &Action::Replace);
    assert!(by["web-1.qs.kloud.internal"]
        .1
        .contains("image changed from `debian-12` to `debian-12-slim`"));
    assert_eq!(
        by["lb-1.qs.kloud.internal"].0,
        &Action::Update,
        "{:?}",
        by["lb-1.qs.kloud.internal"]
    );
    assert_eq!(
        by["lb-1.qs.kloud.internal"].1,
        "resized: memory 64MiB → 96MiB"
    );
    insta::assert_snapshot!("actions_human", render::human(&p, render::Style::default()));
}

#[test]
fn mass_delete_is_refused_without_force() {
    let config = load(&example("datacenter"), &[]);
    let (_d, store) = store();
    let first = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert!(first.unplaced.is_empty(), "{:?}", first.unplaced);
    record(&config, store.as_ref(), &first);
    let shrunk = load(&example("datacenter"), &[("web_count", "2")]);
    let err = make(&shrunk, store.as_ref(), &plan::Options::default()).unwrap_err();
    match err {
        plan::DiffError::MassDelete {
            deletes,
            managed,
            classes,
        } => {
            assert_eq!(managed, 82);
            assert_eq!(deletes, 22 + 44);
            assert_eq!(classes["web"], 22);
        }
        other => panic!("expected the mass-delete guard, got {other}"),
    }
    let forced = make(
        &shrunk,
        store.as_ref(),
        &plan::Options {
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(forced.summary.delete, 66);
}

#[test]
fn a_rule_that_cannot_be_met_is_reported_never_violated() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["main.hcl", "hosts.hcl"] {
        std::fs::copy(example("quickstart").join(f), dir.path().join(f)).unwrap();
    }
    let text = std::fs::read_to_string(dir.path().join("hosts.hcl"))
        .unwrap()
        .replace("count        = 2", "count        = 3");
    std::fs::write(dir.path().join("hosts.hcl"), text).unwrap();
    let config = load(dir.path(), &[]);
    let (_d, store) = store();
    let p = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert_eq!(p.unplaced.len(), 1);
    let u = &p.unplaced[0];
    // Two switches hold two of the three load balancers; which one is left out is placement's
    // choice, the reason is not.
    assert_eq!(u.class, "lb");
    assert!(u.address.starts_with("lb-"), "{}", u.address);
    assert!(u.reasons.contains_key("max_per:switch"), "{:?}", u.reasons);
    assert!(u.explanation.contains("switch"), "{}", u.explanation);
}

#[test]
fn targets_and_destroy() {
    let config = load(&example("quickstart"), &[]);
    let (_d, store) = store();
    let p = make(
        &config,
        store.as_ref(),
        &plan::Options {
            targets: vec!["lb".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert!(p.changes.iter().all(|c| c.class == "lb"));
    let err = make(
        &config,
        store.as_ref(),
        &plan::Options {
            targets: vec!["nope".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, plan::DiffError::UnknownTarget { .. }));
    let all = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    record(&config, store.as_ref(), &all);
    let d = make(
        &config,
        store.as_ref(),
        &plan::Options {
            destroy: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.summary.delete, 5);
    assert!(d.changes.iter().all(|c| c.reason == "destroy requested"));
}

#[test]
fn a_stale_plan_is_refused_naming_what_moved() {
    let config = load(&example("quickstart"), &[]);
    let (_d, store) = store();
    let p = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    kloud::apply::check_fresh(&p, &config, store.as_ref()).expect("a fresh plan is accepted");
    let mut h = Host::container("web-1.qs.kloud.internal");
    h.owner = Some("someone-else".into());
    store
        .put_host(h, Expect::Absent, &Actor::new("other"))
        .unwrap();
    let err = kloud::apply::check_fresh(&p, &config, store.as_ref())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stale") && err.contains("web-1.qs.kloud.internal"),
        "{err}"
    );
}

#[test]
fn a_plan_against_http_hostdb_equals_the_embedded_one() {
    use std::sync::Arc;
    let config = load(&example("quickstart"), &[("web_count", "4")]);
    let dir = tempfile::tempdir().unwrap();
    let local = hostdb::sqlite::open(&dir.path().join("h.db")).unwrap();
    // Some recorded state first, so the plan has creates, no-ops and deletes.
    let seeded = load(&example("quickstart"), &[("web_count", "3")]);
    let first = make(&seeded, &local, &plan::Options::default()).unwrap();
    record(&seeded, &local, &first);
    let embedded = make(&config, &local, &plan::Options::default()).unwrap();

    let (_, secret) = local
        .token_create("plan-test", hostdb::Role::Reader)
        .unwrap();
    let server = kloud::server::spawn(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(local),
        kloud::server::ServerConfig::default(),
        2,
    )
    .unwrap();
    let remote = hostdb::client::HttpStore::new(&server.url(), Some(secret)).unwrap();
    let over_http = make(&config, &remote, &plan::Options::default()).unwrap();
    assert_eq!(embedded.changes, over_http.changes);
    assert_eq!(embedded.summary, over_http.summary);
    assert_eq!(embedded.hostdb.index, over_http.hostdb.index);
    assert_eq!(embedded.summary.create, 1);
    assert_eq!(embedded.summary.no_op, 5);
}

#[test]
fn datacenter_plan_snapshots() {
    let config = load(&example("datacenter"), &[]);
    let (_d, store) = store();
    let p = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert!(p.unplaced.is_empty(), "{:?}", p.unplaced);
    assert_eq!(p.summary.create, 82);
    insta::assert_snapshot!(
        "datacenter_compact",
        render::human(
            &p,
            render::Style {
                colour: false,
                compact: true
            }
        )
    );
    insta::assert_snapshot!("datacenter_markdown", render::markdown(&p));
}

const FRACTIONAL: &str = r#"
kloud {
  domain = "frac.example"
}

variable "half" {
  default = 0.5
}

machine_class "small" {
  cpu    = 1.5
  memory = "4GiB"
  disk   = 20
}

machines "m" {
  class = "small"
  count = 2
}

network "n" {
  cidr = "10.0.0.0/24"
}

host_class "web" {
  count   = 5
  cpu     = var.half
  memory  = 256
  disk    = 1
  image   = "busybox"
  network = "n"
}
"#;

/// Fractional cpu through the whole plan: machines of 1.5 cpus take three 0.5-cpu hosts each,
/// the plan JSON keeps its schema, HostDB records read back unchanged (a plan after apply
/// changes nothing), and a resize to 0.25 is an update that says `cpu 0.5 → 0.25`.
#[test]
fn fractional_cpu_plans_records_and_resizes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.hcl"), FRACTIONAL).unwrap();
    let config = load(dir.path(), &[]);
    assert_eq!(config.machines[0].cpu, kloud::Cpu::from_millis(1500));
    let (_d, store) = store();
    let first = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert_eq!(first.summary.create, 5);
    record(&config, store.as_ref(), &first);
    let again = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert!(
        !again.has_changes(),
        "{}",
        render::human(&again, render::Style::default())
    );

    let smaller = load(dir.path(), &[("half", "0.25")]);
    let p = make(&smaller, store.as_ref(), &plan::Options::default()).unwrap();
    assert_eq!(p.summary.update, 5);
    let human = render::human(&p, render::Style::default());
    assert!(human.contains("cpu 0.5 → 0.25"), "{human}");
}

const OVERCOMMITTED: &str = r#"
kloud {
  domain = "oc.example"
}

variable "factor" {
  default = 1.5
}

variable "web_count" {
  default = 12
}

machine_class "eight" {
  cpu        = 8
  memory     = "64GiB"
  disk       = 200
  overcommit = { cpu = var.factor }
}

machines "m" {
  class = "eight"
  count = 2
}

network "n" {
  cidr = "10.0.0.0/24"
}

host_class "web" {
  count   = var.web_count
  cpu     = 1
  memory  = 1024
  disk    = 1
  image   = "busybox"
  network = "n"
  placement {
    strategy = "pack"
  }
}
"#;

/// `overcommit = { cpu = 1.5 }`: an 8-cpu machine takes 12 one-cpu hosts (memory and disk are
/// not overcommitted), the factor is recorded on the machine's HostDB record and in the plan,
/// a plan after apply changes nothing, and a new factor is a machine update.
#[test]
fn cpu_overcommit_packs_more_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.hcl"), OVERCOMMITTED).unwrap();
    let config = load(dir.path(), &[]);
    let (_d, store) = store();
    let first = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert_eq!(first.summary.create, 12);
    let used: std::collections::BTreeSet<_> = first
        .changes
        .iter()
        .filter_map(|c| c.after.as_ref()?.machine.clone())
        .collect();
    assert_eq!(used.len(), 1, "12 × 1 cpu fit one 8 × 1.5 machine");
    let json = serde_json::to_value(&first).unwrap();
    assert_eq!(
        json["machines"][0]["after"]["cpu_overcommit"],
        serde_json::json!(1.5)
    );
    record(&config, store.as_ref(), &first);
    let m = store.get_host(&first.machines[0].address).unwrap().unwrap();
    assert_eq!(
        m.cpu_overcommit,
        Some(kloud::Overcommit::from_f64(1.5).unwrap())
    );
    let again = make(&config, store.as_ref(), &plan::Options::default()).unwrap();
    assert!(
        !again.has_changes(),
        "{}",
        render::human(&again, render::Style::default())
    );

    // One more host than 12 goes to the second machine.
    let more = load(dir.path(), &[("web_count", "13")]);
    let p = make(&more, store.as_ref(), &plan::Options::default()).unwrap();
    assert_eq!((p.summary.create, p.summary.unplaced), (1, 0));

    let doubled = load(dir.path(), &[("factor", "2")]);
    let p = make(&doubled, store.as_ref(), &plan::Options::default()).unwrap();
    assert!(
        p.machines
            .iter()
            .all(|m| m.action == plan::Action::Update && m.reason == "cpu overcommit changed"),
        "{:?}",
        p.machines
    );
}
