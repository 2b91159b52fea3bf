//! The one test suite every `Store` implementation must pass (SQLite, PostgreSQL, HTTP).
//!
//! Each function takes a fresh, empty store. `store_suite!` expands to one `#[test]` per
//! function for a backend given by an expression that opens such a store.

#![allow(dead_code)]

use kloud::Cpu;
use std::sync::Arc;
use std::time::Duration;

use kloud::hostdb::{
    Actor, Expect, Host, HostQuery, Kind, Role, State, Store, StoreError, Tag, Write,
};
use serde_json::{json, Value};

pub fn actor() -> Actor {
    Actor {
        name: "tester".into(),
        message: Some("suite".into()),
    }
}

fn props(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

pub fn container(name: &str, owner: &str, tags: &[&str]) -> Host {
    let mut h = Host::container(name);
    h.owner = Some(owner.into());
    h.tags = tags.iter().map(|t| t.to_string()).collect();
    h
}

fn put(s: &dyn Store, h: Host) -> u64 {
    s.put_host(h, Expect::Any, &actor()).unwrap()
}

#[macro_export]
macro_rules! store_suite {
    ($open:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(store) = $open else { return };
                hostdb_suite::$name(&*store.store);
            }
        )*
    };
}

#[macro_export]
macro_rules! all_store_tests {
    ($open:expr) => {
        $crate::store_suite!($open;
            roundtrip, index_per_write, compare_and_set, atomic_batch, delete, invalid_input,
            list_filters, pagination, tag_nesting_and_cycles, derived_config, snapshot, used_ips,
            history, locks, tokens, racing_writers, last_change, large_batch);
    };
}

pub fn roundtrip(s: &dyn Store) {
    assert_eq!(s.index().unwrap(), 0);
    let mut h = container(
        "web-1.dc1.example.internal",
        "cfg",
        &["web", "checkout", "web"],
    );
    h.properties = props(json!({"team": "checkout", "nested": {"a": [1, 2]}}));
    h.class = Some("web".into());
    h.machine = Some("hw-1.dc1.example.internal".into());
    h.ip = Some("10.40.0.17".into());
    h.image = Some("debian-12".into());
    h.roles = vec!["role::nginx".into()];
    h.state = Some(State::Creating);
    h.cpu = Some(Cpu::from_cores(4));
    h.memory_mib = Some(8192);
    h.disk_gib = Some(40);
    h.driver_id = Some("101".into());
    let idx = put(s, h.clone());
    assert_eq!(idx, 1);
    let got = s.get_host(&h.name).unwrap().unwrap();
    assert_eq!(got.tags, vec!["checkout", "web"]);
    assert_eq!((got.created_index, got.modified_index), (1, 1));
    let mut expect = h.clone();
    expect.tags = got.tags.clone();
    expect.created_index = 1;
    expect.modified_index = 1;
    assert_eq!(got, expect);

    let mut m = Host::machine("hw-1.dc1.example.internal");
    m.labels.insert("rack".into(), "r1".into());
    m.cpu = Some(Cpu::from_cores(32));
    m.driver = Some("lxc".into());
    m.connect = Some("local".into());
    put(s, m.clone());
    let got = s.get_host(&m.name).unwrap().unwrap();
    assert_eq!(got.labels.get("rack").map(String::as_str), Some("r1"));
    assert_eq!(got.kind, Kind::Machine);
    assert!(s.get_host("nope").unwrap().is_none());
}

pub fn index_per_write(s: &dyn Store) {
    let i = s
        .write(
            vec![
                Write::PutHost {
                    host: container("a", "o", &[]),
                    expect: Expect::Absent,
                },
                Write::PutHost {
                    host: container("b", "o", &[]),
                    expect: Expect::Absent,
                },
                Write::PutTag {
                    tag: Tag::new("t"),
                    expect: Expect::Absent,
                },
            ],
            &actor(),
        )
        .unwrap();
    assert_eq!(i, 1);
    assert_eq!(s.index().unwrap(), 1);
    assert_eq!(s.get_host("b").unwrap().unwrap().modified_index, 1);
    assert_eq!(s.get_tag("t").unwrap().unwrap().modified_index, 1);
    assert_eq!(put(s, container("a", "o", &["x"])), 2);
    // An empty write changes nothing.
    assert_eq!(s.write(vec![], &actor()).unwrap(), 2);
}

pub fn compare_and_set(s: &dyn Store) {
    let i1 = s
        .put_host(container("a", "o", &[]), Expect::Absent, &actor())
        .unwrap();
    let err = s
        .put_host(container("a", "o", &[]), Expect::Absent, &actor())
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Conflict {
            object: "a".into(),
            expected: Expect::Absent,
            actual: Some(i1)
        }
    );
    let err = s
        .put_host(container("a", "o", &[]), Expect::Index(i1 + 7), &actor())
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { actual: Some(a), .. } if a == i1),
        "{err:?}"
    );
    let i2 = s
        .put_host(container("a", "o", &["x"]), Expect::Index(i1), &actor())
        .unwrap();
    let got = s.get_host("a").unwrap().unwrap();
    assert_eq!((got.created_index, got.modified_index), (i1, i2));
    let err = s
        .put_host(container("b", "o", &[]), Expect::Index(1), &actor())
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { actual: None, .. }),
        "{err:?}"
    );
    let err = s
        .put_tag(Tag::new("t"), Expect::Index(3), &actor())
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

pub fn atomic_batch(s: &dyn Store) {
    put(s, container("a", "o", &[]));
    let before = s.index().unwrap();
    let err = s
        .write(
            vec![
                Write::PutHost {
                    host: container("new", "o", &["t"]),
                    expect: Expect::Absent,
                },
                Write::PutTag {
                    tag: Tag::new("t"),
                    expect: Expect::Any,
                },
                Write::PutHost {
                    host: container("a", "o", &[]),
                    expect: Expect::Absent,
                },
            ],
            &actor(),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    assert_eq!(s.index().unwrap(), before);
    assert!(s.get_host("new").unwrap().is_none());
    assert!(s.get_tag("t").unwrap().is_none());
    assert!(s.history("new").unwrap().is_empty());
    assert!(s.tag_members("t").unwrap().hosts.is_empty());
    // An invalid write also rolls back the whole batch.
    let err = s
        .write(
            vec![
                Write::PutHost {
                    host: container("ok", "o", &[]),
                    expect: Expect::Any,
                },
                Write::PutHost {
                    host: container("Bad_Name", "o", &[]),
                    expect: Expect::Any,
                },
            ],
            &actor(),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(s.get_host("ok").unwrap().is_none());
}

pub fn delete(s: &dyn Store) {
    let i = put(s, container("a", "o", &["t"]));
    let err = s
        .delete_host("a", Expect::Index(i + 1), &actor())
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    assert!(s.get_host("a").is_ok_and(|h| h.is_some()));
    s.delete_host("a", Expect::Index(i), &actor()).unwrap();
    assert!(s.get_host("a").unwrap().is_none());
    assert!(s.tag_members("t").unwrap().hosts.is_empty());
    assert!(s.all_hosts(&HostQuery::default()).unwrap().is_empty());
    // Deleting what is gone is a no-op unless a specific index was expected.
    s.delete_host("a", Expect::Any, &actor()).unwrap();
    assert!(s.delete_host("a", Expect::Index(i), &actor()).is_err());
    s.put_tag(Tag::new("t"), Expect::Any, &actor()).unwrap();
    s.write(
        vec![Write::DeleteTag {
            name: "t".into(),
            expect: Expect::Any,
        }],
        &actor(),
    )
    .unwrap();
    assert!(s.get_tag("t").unwrap().is_none());
}

pub fn invalid_input(s: &dyn Store) {
    for name in ["", "UPPER", "under_score", "-x", "a..b", &"x".repeat(64)] {
        let err = s
            .put_host(Host::container(name), Expect::Any, &actor())
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{name}: {err:?}");
    }
    let err = s
        .put_host(container("a", "o", &["Bad Tag"]), Expect::Any, &actor())
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    let mut h = container("a", "o", &[]);
    h.ip = Some("10.0.0.300".into());
    assert!(matches!(
        s.put_host(h, Expect::Any, &actor()),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.put_host(container("a", "o", &[]), Expect::Any, &Actor::new("")),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.index().unwrap(), 0);
}

fn names(hosts: &[Host]) -> Vec<&str> {
    hosts.iter().map(|h| h.name.as_str()).collect()
}

pub fn list_filters(s: &dyn Store) {
    let mut a = container("a", "team1", &["web", "eu"]);
    a.class = Some("web".into());
    a.properties = props(json!({"env": "prod", "port": 80}));
    let mut b = container("b", "team1", &["web"]);
    b.class = Some("web".into());
    b.properties = props(json!({"env": "dev", "port": "80"}));
    let mut c = container("c", "team2", &["db", "eu"]);
    c.class = Some("db".into());
    c.machine = Some("m1".into());
    c.properties = props(json!({"env": "prod"}));
    let mut m = Host::machine("m1");
    m.tags = vec!["eu".into()];
    for h in [a, b, c, m] {
        put(s, h);
    }
    let q = |f: &dyn Fn(&mut HostQuery)| {
        let mut q = HostQuery::default();
        f(&mut q);
        s.all_hosts(&q).unwrap()
    };
    assert_eq!(names(&q(&|_| {})), ["a", "b", "c", "m1"]);
    assert_eq!(names(&q(&|q| q.tags = vec!["web".into()])), ["a", "b"]);
    assert_eq!(
        names(&q(&|q| q.tags = vec!["web".into(), "eu".into()])),
        ["a"]
    );
    assert_eq!(names(&q(&|q| q.tags = vec!["eu".into()])), ["a", "c", "m1"]);
    assert!(q(&|q| q.tags = vec!["none".into()]).is_empty());
    assert_eq!(names(&q(&|q| q.kind = Some(Kind::Machine))), ["m1"]);
    assert_eq!(names(&q(&|q| q.class = Some("web".into()))), ["a", "b"]);
    assert_eq!(names(&q(&|q| q.owner = Some("team2".into()))), ["c"]);
    assert_eq!(names(&q(&|q| q.machine = Some("m1".into()))), ["c"]);
    assert_eq!(
        names(&q(&|q| q.properties = vec![("env".into(), "prod".into())])),
        ["a", "c"]
    );
    // Numbers match their JSON text, strings their text.
    assert_eq!(
        names(&q(&|q| q.properties = vec![("port".into(), "80".into())])),
        ["a", "b"]
    );
    assert_eq!(
        names(&q(&|q| {
            q.properties = vec![("env".into(), "prod".into())];
            q.tags = vec!["eu".into()];
            q.kind = Some(Kind::Container);
            q.class = Some("db".into());
        })),
        ["c"]
    );
    // Nested tags: `eu` inside `world` makes every `eu` host a `world` host.
    let mut eu = Tag::new("eu");
    eu.tags = vec!["world".into()];
    s.put_tag(eu, Expect::Any, &actor()).unwrap();
    s.put_tag(Tag::new("world"), Expect::Any, &actor()).unwrap();
    assert_eq!(
        names(&q(&|q| q.tags = vec!["world".into()])),
        ["a", "c", "m1"]
    );
    assert_eq!(
        names(&q(&|q| q.tags = vec!["world".into(), "web".into()])),
        ["a"]
    );
}

pub fn pagination(s: &dyn Store) {
    let mut batch = Vec::new();
    for i in 0..25 {
        batch.push(Write::PutHost {
            host: container(
                &format!("h{i:02}"),
                "o",
                if i % 2 == 0 { &["even"] } else { &[] },
            ),
            expect: Expect::Absent,
        });
    }
    s.write(batch, &actor()).unwrap();
    let mut q = HostQuery {
        limit: Some(10),
        ..HostQuery::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = s.list_hosts(&q).unwrap();
        pages.push(
            names(&page.items)
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
        match page.next {
            Some(n) => q.after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let all: Vec<String> = pages.concat();
    let want: Vec<String> = (0..25).map(|i| format!("h{i:02}")).collect();
    assert_eq!(all, want);
    // An exact multiple of the page size does not produce an empty extra page.
    let page = s
        .list_hosts(&HostQuery {
            tags: vec!["even".into()],
            limit: Some(13),
            ..HostQuery::default()
        })
        .unwrap();
    assert_eq!((page.items.len(), page.next), (13, None));
    assert!(s
        .list_hosts(&HostQuery {
            limit: Some(0),
            ..HostQuery::default()
        })
        .is_err());
}

pub fn tag_nesting_and_cycles(s: &dyn Store) {
    let mut web = Tag::new("web");
    web.tags = vec!["prod".into()];
    web.properties = props(json!({"port": 80}));
    s.put_tag(web, Expect::Absent, &actor()).unwrap();
    let mut prod = Tag::new("prod");
    prod.tags = vec!["all".into()];
    s.put_tag(prod, Expect::Absent, &actor()).unwrap();
    // all -> web closes the loop web -> prod -> all -> web.
    let mut all = Tag::new("all");
    all.tags = vec!["web".into()];
    let before = s.index().unwrap();
    assert!(matches!(
        s.put_tag(all, Expect::Any, &actor()),
        Err(StoreError::Invalid(_))
    ));
    let mut me = Tag::new("me");
    me.tags = vec!["me".into()];
    assert!(matches!(
        s.put_tag(me, Expect::Any, &actor()),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.index().unwrap(), before);
    s.put_tag(Tag::new("all"), Expect::Any, &actor()).unwrap();
    put(s, container("h1", "o", &["web"]));
    let members = s.tag_members("web").unwrap();
    assert_eq!(members.hosts, ["h1"]);
    assert!(members.tags.is_empty());
    assert_eq!(s.tag_members("prod").unwrap().tags, ["web"]);
    assert_eq!(s.tag_members("all").unwrap().tags, ["prod"]);
    let tags: Vec<String> = s.list_tags().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tags, ["all", "prod", "web"]);
    assert_eq!(s.get_tag("web").unwrap().unwrap().tags, ["prod"]);
}

pub fn derived_config(s: &dyn Store) {
    let mut web = Tag::new("web");
    web.tags = vec!["prod".into()];
    web.properties = props(json!({"port": 80, "checks": ["http"]}));
    let mut prod = Tag::new("prod");
    prod.properties = props(json!({"env": "prod", "port": 1, "checks": ["ping"]}));
    s.put_tag(web, Expect::Any, &actor()).unwrap();
    s.put_tag(prod, Expect::Any, &actor()).unwrap();
    let mut h = container("h1", "o", &["web"]);
    h.properties = props(json!({"team": "a", "env": "staging"}));
    put(s, h);
    let got = s.derived_config("h1").unwrap().unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"port": 80, "checks": ["http"], "env": "staging", "team": "a"})
    );
    assert!(s.derived_config("nope").unwrap().is_none());
}

pub fn snapshot(s: &dyn Store) {
    put(s, Host::machine("m2"));
    put(s, Host::machine("m1"));
    put(s, container("c2", "me", &[]));
    put(s, container("c1", "me", &[]));
    put(s, container("x", "other", &[]));
    s.put_tag(Tag::new("t"), Expect::Any, &actor()).unwrap();
    let snap = s.snapshot("me").unwrap();
    assert_eq!(snap.index, s.index().unwrap());
    assert_eq!(names(&snap.machines), ["m1", "m2"]);
    assert_eq!(names(&snap.hosts), ["c1", "c2"]);
    assert_eq!(snap.tags.len(), 1);
    assert!(s.snapshot("nobody").unwrap().hosts.is_empty());
}

pub fn used_ips(s: &dyn Store) {
    let mut a = container("a", "o", &[]);
    a.ip = Some("10.0.0.2".into());
    let mut b = container("b", "p", &[]);
    b.ip = Some("10.0.0.1".into());
    put(s, a);
    put(s, b);
    put(s, container("c", "o", &[]));
    assert_eq!(s.used_ips().unwrap(), ["10.0.0.1", "10.0.0.2"]);
    s.delete_host("a", Expect::Any, &actor()).unwrap();
    assert_eq!(s.used_ips().unwrap(), ["10.0.0.1"]);
}

pub fn history(s: &dyn Store) {
    let i1 = put(s, container("a", "o", &[]));
    let mut h = container("a", "o", &["t"]);
    h.state = Some(State::Running);
    let i2 = s
        .put_host(
            h,
            Expect::Index(i1),
            &Actor {
                name: "apply".into(),
                message: Some("up".into()),
            },
        )
        .unwrap();
    let i3 = s.delete_host("a", Expect::Any, &actor()).unwrap();
    let hist = s.history("a").unwrap();
    assert_eq!(
        hist.iter().map(|c| c.index).collect::<Vec<_>>(),
        [i1, i2, i3]
    );
    assert!(hist[0].before.is_none());
    assert_eq!(hist[1].before, hist[0].after);
    assert!(hist[1].actor.starts_with("apply"), "{}", hist[1].actor);
    assert_eq!(hist[1].message.as_deref(), Some("up"));
    assert_eq!(
        hist[1].after.as_ref().and_then(|a| a.get("state")),
        Some(&json!("running"))
    );
    assert!(hist[2].after.is_none());
    assert!(hist[2].time_ms >= hist[0].time_ms && hist[0].time_ms > 0);
    assert!(s.history("never").unwrap().is_empty());
}

pub fn locks(s: &dyn Store) {
    let ttl = Duration::from_secs(30);
    let l = s.lock_acquire("apply", "alice", ttl).unwrap();
    assert_eq!((l.name.as_str(), l.holder.as_str()), ("apply", "alice"));
    match s.lock_acquire("apply", "bob", ttl) {
        Err(StoreError::Held { holder, id, .. }) => {
            assert_eq!(holder, "alice");
            assert_eq!(id, l.id);
        }
        other => panic!("expected Held, got {other:?}"),
    }
    let r = s.lock_renew(&l, Duration::from_secs(60)).unwrap();
    assert!(r.expires_ms > l.expires_ms);
    assert_eq!(s.list_locks().unwrap().len(), 1);
    s.lock_release(&l).unwrap();
    s.lock_release(&l).unwrap();
    assert!(s.list_locks().unwrap().is_empty());
    // An expired lease is free, and its old holder can no longer renew it.
    let short = s
        .lock_acquire("apply", "carol", Duration::from_millis(50))
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    assert!(s.list_locks().unwrap().is_empty());
    let dave = s.lock_acquire("apply", "dave", ttl).unwrap();
    assert!(matches!(
        s.lock_renew(&short, ttl),
        Err(StoreError::LeaseLost { .. })
    ));
    // Force release by id frees it for someone else.
    s.lock_force_release(&dave.id).unwrap();
    assert!(matches!(
        s.lock_renew(&dave, ttl),
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        s.lock_force_release(&dave.id),
        Err(StoreError::NotFound { .. })
    ));
    s.lock_acquire("apply", "erin", ttl).unwrap();
    // Locks are independent by name.
    s.lock_acquire("other", "frank", ttl).unwrap();
    assert!(matches!(
        s.lock_acquire("", "x", ttl),
        Err(StoreError::Invalid(_))
    ));
}

pub fn tokens(s: &dyn Store) {
    // A remote store already holds the token the suite connects with.
    let before = s.token_list().unwrap().len();
    let (info, secret) = s.token_create("ci", Role::Operator).unwrap();
    assert!(secret.len() >= 64);
    assert_eq!(s.token_verify(&secret).unwrap().unwrap(), info);
    assert!(s.token_verify("hdb_wrong").unwrap().is_none());
    let (_, admin) = s.token_create("root", Role::Admin).unwrap();
    assert_ne!(admin, secret);
    let list = s.token_list().unwrap();
    assert_eq!(list.len(), before + 2);
    assert!(list.iter().all(|t| !format!("{t:?}").contains(&secret)));
    s.token_delete(&info.id).unwrap();
    assert!(s.token_verify(&secret).unwrap().is_none());
    assert!(matches!(
        s.token_delete(&info.id),
        Err(StoreError::NotFound { .. })
    ));
}

/// Several threads increment a counter property with compare-and-set; no update may be lost.
pub fn racing_writers(s: &dyn Store) {
    let mut h = container("counter", "o", &[]);
    h.properties = props(json!({"n": 0}));
    put(s, h);
    const THREADS: usize = 4;
    const EACH: usize = 15;
    let conflicts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let conflicts = conflicts.clone();
            scope.spawn(move || {
                let mut done = 0;
                while done < EACH {
                    let mut h = s.get_host("counter").unwrap().unwrap();
                    let n = h.properties["n"].as_u64().unwrap();
                    h.properties.insert("n".into(), json!(n + 1));
                    let expect = Expect::Index(h.modified_index);
                    match s.put_host(h, expect, &actor()) {
                        Ok(_) => done += 1,
                        Err(StoreError::Conflict { .. }) => {
                            conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    let h = s.get_host("counter").unwrap().unwrap();
    assert_eq!(h.properties["n"], json!(THREADS * EACH));
    assert_eq!(s.history("counter").unwrap().len(), THREADS * EACH + 1);
}

pub fn last_change(s: &dyn Store) {
    assert_eq!(s.last_change("a").unwrap(), 0);
    let i = put(s, container("a", "o", &[]));
    put(s, container("b", "o", &[]));
    assert_eq!(s.last_change("a").unwrap(), i);
    let d = s.delete_host("a", Expect::Any, &actor()).unwrap();
    assert_eq!(s.last_change("a").unwrap(), d);
}

/// A transaction of many host writes (the multi-row path) behaves like single writes.
pub fn large_batch(s: &dyn Store) {
    let i1 = put(s, container("old-1", "o", &["gone"]));
    put(s, container("old-2", "o", &[]));
    let mk = |i: usize| {
        let mut h = container(
            &format!("n{i:02}"),
            "o",
            &["big", if i.is_multiple_of(2) { "even" } else { "odd" }],
        );
        h.properties = props(json!({"i": i, "env": "prod"}));
        h.ip = Some(format!("10.9.0.{i}"));
        h
    };
    let mut writes: Vec<Write> = (0..20)
        .map(|i| Write::PutHost {
            host: mk(i),
            expect: Expect::Absent,
        })
        .collect();
    let mut updated = container("old-1", "o", &["kept"]);
    updated.class = Some("c".into());
    writes.push(Write::PutHost {
        host: updated,
        expect: Expect::Index(i1),
    });
    writes.push(Write::DeleteHost {
        name: "old-2".into(),
        expect: Expect::Any,
    });
    writes.push(Write::PutTag {
        tag: Tag::new("big"),
        expect: Expect::Absent,
    });
    // One stale condition rolls back the whole batch.
    let mut bad = writes.clone();
    if let Write::PutHost { expect, .. } = &mut bad[20] {
        *expect = Expect::Index(i1 + 100);
    }
    let before = s.index().unwrap();
    assert!(matches!(
        s.write(bad, &actor()),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(s.index().unwrap(), before);
    assert!(s.get_host("n00").unwrap().is_none());
    let idx = s.write(writes, &actor()).unwrap();
    let all = s
        .all_hosts(&HostQuery {
            tags: vec!["big".into()],
            ..HostQuery::default()
        })
        .unwrap();
    assert_eq!(all.len(), 20);
    assert!(all
        .iter()
        .all(|h| h.modified_index == idx && h.created_index == idx));
    let odd = s
        .all_hosts(&HostQuery {
            tags: vec!["odd".into()],
            properties: vec![("env".into(), "prod".into())],
            ..HostQuery::default()
        })
        .unwrap();
    assert_eq!(odd.len(), 10);
    assert_eq!(
        names(
            &s.all_hosts(&HostQuery {
                properties: vec![("i".into(), "7".into())],
                ..HostQuery::default()
            })
            .unwrap()
        ),
        ["n07"]
    );
    let old = s.get_host("old-1").unwrap().unwrap();
    assert_eq!((old.created_index, old.modified_index), (i1, idx));
    assert_eq!(old.tags, ["kept"]);
    assert!(s.tag_members("gone").unwrap().hosts.is_empty());
    assert!(s.get_host("old-2").unwrap().is_none());
    assert_eq!(s.used_ips().unwrap().len(), 20);
    assert_eq!(s.history("old-2").unwrap().last().unwrap().index, idx);
    assert!(s.history("old-2").unwrap().last().unwrap().after.is_none());
    assert_eq!(s.history("n05").unwrap().len(), 1);
    assert_eq!(s.get_tag("big").unwrap().unwrap().modified_index, idx);
}
