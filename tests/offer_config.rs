//! The `offer` block (design §10): decoded with its defaults, and every mistake a diagnostic
//! with its code, file:line:col and a help.

use kloud::config::{self, Diagnostics};

const BASE: &str = r#"kloud {
  domain = "o.test"
}

network "lab" {
  cidr = "10.0.0.0/24"
}

tag "people" {}
"#;

fn load(offer: &str) -> Result<config::Config, Diagnostics> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.hcl"), format!("{BASE}\n{offer}")).unwrap();
    config::load(dir.path(), &Default::default())
}

fn codes(d: &Diagnostics) -> Vec<(String, String)> {
    d.0.iter()
        .map(|d| {
            let at = d.location.as_ref().map_or("?".to_string(), |l| {
                let (line, col) = l.file.line_col(l.span.start);
                format!("{line}:{col}")
            });
            (d.code.to_string(), at)
        })
        .collect()
}

#[test]
fn an_offer_decodes_with_its_rules_and_sudo() {
    let c = load(
        r#"offer "small" {
  cpu      = 1
  memory   = "256MiB"
  disk     = "2GiB"
  image    = "debian-12"
  network  = "lab"
  per_user = 3
  tags     = ["people"]
  login { sudo = true }
  placement { max_per = { machine = 2 } }
}
"#,
    )
    .unwrap();
    let o = &c.offers["small"];
    assert_eq!(
        (
            o.cpu,
            o.memory_mib,
            o.disk_gib,
            o.image.as_str(),
            o.per_user,
            o.sudo
        ),
        (kloud::Cpu::from_cores(1), 256, 2, "debian-12", 3, true)
    );
    assert_eq!(o.placement.max_per.get("machine"), Some(&2));
    assert_eq!(
        (o.driver.as_str(), o.tags.clone()),
        ("lxc", vec!["people".to_string()])
    );
}

#[test]
fn offer_mistakes_are_diagnostics_at_their_place() {
    let err = load(
        r#"offer "small" {
  cpu      = 1
  memory   = "256MiB"
  disk     = "2GiB"
  image    = "busybox"
  network  = "nowhere"
  per_user = 0
  login { user = "root" }
}

offer "Bad_Name" {
  cpu = 1
}
"#,
    )
    .unwrap_err();
    let got = codes(&err);
    let has = |code: &str, at: &str| got.iter().any(|(c, l)| c == code && l == at);
    assert!(
        has("kloud::config::undefined_reference", "16:14"),
        "{got:?}"
    );
    assert!(
        has("kloud::config::out_of_range", "17:14"),
        "per_user = 0: {got:?}"
    );
    assert!(
        has("kloud::config::unknown_attribute", "18:11"),
        "login.user: {got:?}"
    );
    assert!(has("kloud::config::invalid_name", "21:7"), "{got:?}");
    assert!(
        got.iter()
            .any(|(c, _)| c == "kloud::config::missing_attribute"),
        "{got:?}"
    );
    for d in &err.0 {
        assert!(d.help.is_some(), "no help: {d:?}");
    }
}
