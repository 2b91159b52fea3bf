//! Hosts people log into (design §9), end to end on real LXC: `kloud apply` makes `debian-12`
//! containers (debootstrap, built once per computer in the image cache), first boot sets the
//! FQDN, the login user with its key and sudo, sshd, and runs the class's commands once; then
//! the tests log in by ssh as a person would.
//!
//! Needs root, LXC, debootstrap, the Debian archive (for the first build of the image) and an
//! OpenSSH client. Without them the tests skip, except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kloud::hostdb::{self, Expect, State, Store};

fn ready(test: &str) -> bool {
    let have = |prog: &str, arg: &str| {
        Command::new(prog)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let ok = std::env::var_os("KLOUD_TEST_LXC").is_some()
        && have("lxc-create", "--version")
        && Path::new("/usr/sbin/debootstrap").exists()
        && have("ssh", "-V")
        && have("ssh-keygen", "--help");
    if !ok {
        let why = "LXC, debootstrap or ssh is missing (source scripts/setup/lxc.sh as root)";
        if kloud_provider_api::under_ci() {
            panic!("{test}: {why}");
        }
        eprintln!("{test}: skipped, {why}");
    }
    ok
}

/// A config directory with its own HostDB, LXC root, bridge and ssh key; cleaned up on drop.
struct Lab {
    dir: tempfile::TempDir,
    lxc_root: PathBuf,
    bridge: String,
    domain: String,
    key: PathBuf,
    net: u8,
}

impl Lab {
    /// `class` is the body of `host_class "web"` after its fixed attributes; `KEY` in it is
    /// replaced by the lab's public key.
    fn new(n: u8, class: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let lxc_root = PathBuf::from(format!(
            "/var/lib/kloud/test-lxc/hosts-{n}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&lxc_root).unwrap();
        let key = dir.path().join("id_ed25519");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "tester@kloud", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let domain = format!("h{n}.kloud.test");
        let main = format!(
            r#"kloud {{
  domain = "{domain}"
}}

variable "memory" {{
  default = "256MiB"
}}

machine_class "box" {{
  cpu    = 16
  memory = "16GiB"
  disk   = "100GiB"
}}

machines "m" {{
  class   = "box"
  count   = 1
  name    = "hm{n}-{{{{ index }}}}"
  connect = "local"
}}

network "hx{n}" {{
  cidr    = "10.253.{n}.0/24"
  gateway = "10.253.{n}.1"
  dns     = ["10.253.{n}.1"]
}}

host_class "web" {{
  count        = 1
  cpu          = 1
  memory       = var.memory
  disk         = "2GiB"
  image        = "debian-12"
  network      = "hx{n}"
  puppet_roles = ["role::web"]
{}
}}
"#,
            class.replace("KEY", public.trim())
        );
        std::fs::write(dir.path().join("main.hcl"), main).unwrap();
        Lab {
            dir,
            lxc_root,
            bridge: format!("kl-hx{n}"),
            domain,
            key,
            net: n,
        }
    }

    fn host(&self) -> String {
        format!("web-1.{}", self.domain)
    }

    fn address(&self) -> String {
        format!("10.253.{}.2", self.net)
    }

    fn kloud(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kloud"));
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("KLOUD_LXC_ROOT", &self.lxc_root)
            .env_remove("KLOUD_HOSTDB");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.kloud().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kloud {}:\n{}",
            args.join(" "),
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, extra: &[&str]) -> Output {
        let mut args = vec!["apply", ".", "--auto-approve"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn store(&self) -> Box<dyn Store> {
        hostdb::open("sqlite:.kloud/hostdb.db", self.dir.path()).unwrap()
    }

    fn record(&self) -> kloud::hostdb::Host {
        self.store().get_host(&self.host()).unwrap().unwrap()
    }

    fn machine_path(&self) -> PathBuf {
        self.lxc_root
            .join(format!("hm{}-1.{}", self.net, self.domain))
    }

    /// Runs a command in the container as root, by lxc-attach (not through kloud).
    fn attach(&self, cmd: &str) -> Output {
        Command::new("lxc-attach")
            .arg("-P")
            .arg(self.machine_path())
            .args([
                "-n",
                &self.host(),
                "--clear-env",
                "--",
                "/bin/sh",
                "-c",
                cmd,
            ])
            .output()
            .unwrap()
    }

    fn attach_stdout(&self, cmd: &str) -> String {
        let out = self.attach(cmd);
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// ssh to the host as `user` with the lab's key (or without keys when `key` is false).
    fn ssh(&self, user: &str, key: bool, extra: &[&str], cmd: &str) -> Output {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
            .args([
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=5",
            ])
            .args(["-o", "LogLevel=ERROR", "-F", "/dev/null"]);
        if key {
            c.arg("-i")
                .arg(&self.key)
                .args(["-o", "IdentitiesOnly=yes"]);
        } else {
            c.args(["-o", "PubkeyAuthentication=no"]);
        }
        c.args(extra)
            .arg(format!("{user}@{}", self.address()))
            .arg(cmd);
        c.output().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run(&["destroy", ".", "--auto-approve"]);
        if let Ok(entries) = std::fs::read_dir(&self.lxc_root) {
            for e in entries.flatten() {
                let Ok(ls) = Command::new("lxc-ls")
                    .arg("-1")
                    .arg("-P")
                    .arg(e.path())
                    .output()
                else {
                    continue;
                };
                for n in String::from_utf8_lossy(&ls.stdout).split_whitespace() {
                    let _ = Command::new("lxc-destroy")
                        .arg("-P")
                        .arg(e.path())
                        .args(["-f", "-n", n])
                        .output();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.lxc_root);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

const LOGIN: &str = r#"  login {
    user     = "ops"
    ssh_keys = ["KEY"]
    sudo     = true
  }
"#;

/// A person logs in with the key, not with a password; sudo needs no password; the hostname is
/// the FQDN; the resolver is the network's; first boot ran its command once with the KLOUD_*
/// variables, and still once after a second apply and after a create that adopts the container
/// (the markers); memory is resized live.
#[test]
fn a_debian_host_takes_its_login_runs_first_boot_once_and_resizes_live() {
    if !ready("login") {
        return;
    }
    let class = format!(
        "{LOGIN}  first_boot = [\"echo ran >> /root/ran; echo \\\"$KLOUD_FQDN $KLOUD_CLASS $KLOUD_ROLES\\\" > /root/env\"]\n"
    );
    let lab = Lab::new(81, &class);
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.record().state, Some(State::Running));

    // ssh with the key, as the login user.
    let fqdn = lab.host();
    let who = lab.ssh(
        "ops",
        true,
        &[],
        "id -un; hostname; hostname -f; sudo -n id -un",
    );
    assert!(who.status.success(), "ssh with the key: {}", text(&who));
    assert_eq!(
        String::from_utf8_lossy(&who.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["ops", fqdn.as_str(), fqdn.as_str(), "root"]
    );
    // Passwords are refused: the server offers public keys only.
    let pw = lab.ssh(
        "ops",
        false,
        &[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
        "true",
    );
    assert!(!pw.status.success(), "password login worked: {}", text(&pw));
    let said = String::from_utf8_lossy(&pw.stderr);
    assert!(said.contains("Permission denied (publickey)"), "{said}");
    // And `kloud ssh` finds the host by its short name and logs in as its class's user.
    let via = lab.ok(&[
        "ssh",
        "web-1",
        "-i",
        lab.key.to_str().unwrap(),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "--",
        "sudo",
        "-n",
        "hostname",
        "-f",
    ]);
    assert_eq!(via.trim(), fqdn);

    // First boot's command saw its variables; the resolver is the network's; apt is usable.
    assert_eq!(
        lab.attach_stdout("cat /root/env").trim(),
        format!("{fqdn} web role::web")
    );
    assert_eq!(
        lab.attach_stdout("cat /etc/resolv.conf").trim(),
        format!("nameserver 10.253.{}.1", lab.net)
    );
    let apt = lab.attach("apt-get -s -o Debug::NoLocking=1 install --reinstall openssh-server");
    assert!(apt.status.success(), "apt inside: {}", text(&apt));

    // Once across two applies, and once after a create that adopts the running container.
    lab.ok(&["apply", ".", "--auto-approve"]);
    let store = lab.store();
    let mut h = lab.record();
    h.state = Some(State::Failed);
    store
        .put_host(
            h,
            Expect::Any,
            &kloud::hostdb::Actor {
                name: "test".into(),
                message: None,
            },
        )
        .unwrap();
    let pid = lab.attach_stdout("cat /proc/1/stat | cut -d' ' -f22");
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.record().state, Some(State::Running));
    assert_eq!(
        lab.attach_stdout("cat /proc/1/stat | cut -d' ' -f22"),
        pid,
        "the container was adopted, not made again"
    );
    assert_eq!(
        lab.attach_stdout("cat /root/ran"),
        "ran\n",
        "first boot ran once"
    );

    // Resize memory live: the running container's cgroup changes, init keeps running.
    let out = lab.apply(&["--var", "memory=512MiB"]);
    assert!(out.status.success(), "{}", text(&out));
    let limit = Command::new("lxc-cgroup")
        .arg("-P")
        .arg(lab.machine_path())
        .args(["-n", &fqdn, "memory.limit_in_bytes"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&limit.stdout).trim(),
        (512u64 << 20).to_string(),
        "{}",
        text(&limit)
    );
    assert_eq!(lab.attach_stdout("cat /proc/1/stat | cut -d' ' -f22"), pid);
    assert_eq!(lab.record().memory_mib, Some(512));
}

/// A first-boot command that fails leaves the host `failed` with the step and its output, in
/// apply's summary, in HostDB and in `kloud hosts`; fixing the config repairs it on the next
/// apply without running the commands that had succeeded again.
#[test]
fn a_failing_first_boot_is_failed_with_its_output_and_repaired() {
    if !ready("failing") {
        return;
    }
    let broken = format!(
        "{LOGIN}  first_boot = [\"echo one >> /root/one\", \"echo broken-output; exit 3\"]\n"
    );
    let lab = Lab::new(82, &broken);
    let out = lab.apply(&[]);
    assert!(!out.status.success(), "apply should fail: {}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("command 2") && said.contains("exit 3"),
        "{said}"
    );
    assert!(said.contains("broken-output"), "{said}");
    let h = lab.record();
    assert_eq!(h.state, Some(State::Failed));
    let fb = &h.properties["kloud_first_boot"];
    assert_eq!(fb["step"], "command 2");
    assert_eq!(fb["exit"], 3);
    assert!(
        fb["output"].as_str().unwrap().contains("broken-output"),
        "{fb}"
    );
    let listed = lab.ok(&["hosts", "--kind", "container"]);
    assert!(
        listed.contains("failed (first boot: command 2, exit 3)"),
        "{listed}"
    );

    let fixed =
        format!("{LOGIN}  first_boot = [\"echo one >> /root/one\", \"echo fixed > /root/two\"]\n");
    let lab_main = lab.dir.path().join("main.hcl");
    let text_now = std::fs::read_to_string(&lab_main).unwrap();
    let public = std::fs::read_to_string(lab.key.with_extension("pub")).unwrap();
    std::fs::write(
        &lab_main,
        text_now.replace(
            &broken.replace("KEY", public.trim()),
            &fixed.replace("KEY", public.trim()),
        ),
    )
    .unwrap();
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let h = lab.record();
    assert_eq!(h.state, Some(State::Running));
    assert!(!h.properties.contains_key("kloud_first_boot"));
    assert_eq!(
        lab.attach_stdout("cat /root/one"),
        "one\n",
        "command 1 ran once"
    );
    assert_eq!(lab.attach_stdout("cat /root/two"), "fixed\n");
    let who = lab.ssh("ops", true, &[], "sudo -n true && echo in");
    assert_eq!(
        String::from_utf8_lossy(&who.stdout).trim(),
        "in",
        "{}",
        text(&who)
    );
}

/// `kill -9` of kloud while first boot runs a command: the next apply converges, the host is
/// running, and the command after the interrupted one ran exactly once.
#[test]
fn kill_9_during_first_boot_converges_on_the_next_apply() {
    if !ready("kill_9_first_boot") {
        return;
    }
    let class = format!(
        "{LOGIN}  first_boot = [\"sleep 6; echo slept >> /root/slept\", \"echo after >> /root/after\"]\n"
    );
    let lab = Lab::new(83, &class);
    let mut child = lab
        .kloud()
        .args(["apply", ".", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first command is running inside the container, then kill kloud.
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "first boot never reached its first command"
        );
        if lab.machine_path().join(lab.host()).exists()
            && lab
                .attach("ls /var/lib/kloud/first-boot/ | grep -q '^command-1-.*log$'")
                .status
                .success()
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("apply ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(lab.record().state, Some(State::Creating));

    for lease in lab.store().list_locks().unwrap() {
        lab.ok(&["force-unlock", &lease.id]);
    }
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.record().state, Some(State::Running));
    assert_eq!(lab.attach_stdout("cat /root/after"), "after\n");
    assert!(lab.attach_stdout("cat /root/slept").starts_with("slept\n"));
    let who = lab.ssh("ops", true, &[], "hostname -f");
    assert_eq!(
        String::from_utf8_lossy(&who.stdout).trim(),
        lab.host(),
        "{}",
        text(&who)
    );
}
