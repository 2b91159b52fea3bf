#!/usr/bin/env python3
"""Figures of `kloud serve` (issue 16), on this machine, against real parts:

1. sign-in: POST /v1/auth/login (an LDAP bind as the person, a session written to HostDB),
   N times one after the other; p50/p99, beside `ldapwhoami` binding as the same person (the
   directory's own cost, the floor).
2. request -> running: a busybox host and a debian-12 host, each asked for, polled every 50 ms
   until `running`, released; median of the runs.
3. 100 concurrent requests from 50 people over https (2 each, an offer with per_user = 1):
   exactly 50 accepted and 50 `409 quota_exceeded` (every quota held), no other answer; p50/p99
   of the answers, and the time until all 50 hosts run.

Usage: bench-serve.py KLOUD_BINARY   (as root, with scripts/setup/lxc.sh and slapd.sh sourced)
"""
import json, os, shutil, ssl, statistics, subprocess, sys, tempfile, threading, time
import urllib.request, urllib.error

kloud = os.path.abspath(sys.argv[1])
ldap_url = os.environ["KLOUD_TEST_LDAP_URL"]
work = tempfile.mkdtemp(prefix="bench-serve-")
root = f"/var/lib/kloud/bench-serve-{os.getpid()}"
os.makedirs(root)
env = dict(os.environ, KLOUD_LXC_ROOT=root, NO_COLOR="1")
env.pop("KLOUD_HOSTDB", None)

CONFIG = f'''
kloud {{
  domain = "bs.kloud.test"
}}
machine_class "box" {{
  cpu    = 128
  memory = "64GiB"
  disk   = "1000GiB"
}}
machines "m" {{
  class   = "box"
  count   = 2
  name    = "bsm{{{{ index }}}}"
  connect = "local"
}}
network "bs" {{
  cidr    = "10.249.0.0/22"
  gateway = "10.249.0.1"
  dns     = ["10.249.0.1"]
}}
offer "tiny" {{
  cpu      = 1
  memory   = "32MiB"
  disk     = "1GiB"
  image    = "busybox"
  network  = "bs"
  per_user = 1
}}
offer "deb" {{
  cpu      = 1
  memory   = "256MiB"
  disk     = "2GiB"
  image    = "debian-12"
  network  = "bs"
  per_user = 1
  login {{ sudo = true }}
}}
auth {{
  ldap {{
    url     = "{ldap_url}"
    user_dn = "uid={{{{ username }}}},ou=People,dc=example,dc=org"
    groups  = "ou=Groups,dc=example,dc=org"
    ssh_key_attribute = "sshPublicKey"
  }}
}}
'''
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKloudTestBenchKey0000000000000000000000000 bench@kloud"


def run(*args, **kw):
    return subprocess.run([kloud, *args], cwd=work, env=env, check=True, capture_output=True, text=True, **kw)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x):
    return f"{x * 1000:.1f} ms"


server = None
try:
    with open(os.path.join(work, "main.hcl"), "w") as f:
        f.write(CONFIG)
    run("apply", ".", "--auto-approve")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", f"{work}/key.pem", "-out", f"{work}/cert.pem"],
                   check=True, capture_output=True)
    server = subprocess.Popen([kloud, "serve", ".", "--listen", "127.0.0.1:0", "--tls-cert", "cert.pem", "--tls-key", "key.pem"],
                              cwd=work, env=env, stderr=subprocess.PIPE, text=True)
    line = ""
    while "https://" not in line:
        line = server.stderr.readline()
        if not line:
            raise SystemExit("kloud serve did not start")
    port = line.rsplit(":", 1)[1].split()[0]
    log = open(os.path.join(work, "serve.log"), "w")
    threading.Thread(target=lambda: [log.write(l) or log.flush() for l in server.stderr], daemon=True).start()
    base = f"https://localhost:{port}"
    tls = ssl.create_default_context(cafile=f"{work}/cert.pem")

    def call(method, path, token=None, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, context=tls, timeout=300) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def wait(token, name, done):
        while True:
            s, h = call("GET", f"/v1/self/hosts/{name}", token)
            if done(s, h):
                return s, h
            time.sleep(0.05)

    # 1. Sign-in.
    n = int(os.environ.get("BENCH_LOGINS", "200"))
    logins = []
    for _ in range(n):
        t = time.perf_counter()
        s, b = call("POST", "/v1/auth/login", body={"username": "carol", "password": "carol-secret"})
        logins.append(time.perf_counter() - t)
        assert s == 200, b
    binds = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["ldapwhoami", "-x", "-H", ldap_url, "-D", "uid=carol,ou=People,dc=example,dc=org", "-w", "carol-secret"],
                       check=True, capture_output=True)
        binds.append(time.perf_counter() - t)
    print(f"sign-in over https ({n}): p50 {ms(pct(logins, 50))}, p99 {ms(pct(logins, 99))}; "
          f"ldapwhoami bind (a process each): p50 {ms(pct(binds, 50))}, p99 {ms(pct(binds, 99))}")
    token = b["token"]

    # 2. Request -> running.
    for offer, runs in (("tiny", 5), ("deb", 3)):
        took = []
        for _ in range(runs):
            t = time.perf_counter()
            s, h = call("POST", "/v1/self/hosts", token, {"offer": offer, "ssh_keys": [KEY]})
            assert s == 202, h
            s, h = wait(token, h["name"], lambda s, h: s == 200 and h["state"] in ("running", "failed"))
            took.append(time.perf_counter() - t)
            assert h["state"] == "running", h
            call("DELETE", f"/v1/self/hosts/{h['name']}", token)
            wait(token, h["name"], lambda s, h: s == 404)
        print(f"request -> running, {offer} ({'busybox' if offer == 'tiny' else 'debian-12'}), {runs} runs: "
              f"median {statistics.median(took):.2f} s (min {min(took):.2f}, max {max(took):.2f})")

    # 3. 100 concurrent requests from 50 people.
    tokens = []
    for i in range(50):
        out = subprocess.run([kloud, "hostdb", "token", "create", "--role", "user", "--name", f"p{i:02d}",
                              "--store", "sqlite:.kloud/hostdb.db"], cwd=work, env=env, check=True,
                             capture_output=True, text=True)
        tokens.append(out.stdout.strip().splitlines()[-1])
    answers, lock = [], threading.Lock()

    def one(tok):
        t = time.perf_counter()
        s, b = call("POST", "/v1/self/hosts", tok, {"offer": "tiny", "ssh_keys": [KEY]})
        with lock:
            answers.append((s, time.perf_counter() - t, b))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(tok,)) for tok in tokens for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    answered = time.perf_counter() - t0
    codes = {}
    for s, _, b in answers:
        codes[s] = codes.get(s, 0) + 1
    lat = [x for _, x, _ in answers]
    held = codes.get(202, 0) == 50 and codes.get(409, 0) == 50 and len(codes) == 2
    print(f"100 concurrent requests from 50 people over https: answers {dict(sorted(codes.items()))} "
          f"({'every quota held, no error' if held else 'QUOTA OR ERROR PROBLEM'}); "
          f"p50 {ms(pct(lat, 50))}, p99 {ms(pct(lat, 99))}, all answered in {answered:.2f} s")
    # Wait until every accepted host runs (an operator token sees everyone's).
    admin = subprocess.run([kloud, "hostdb", "token", "create", "--role", "operator", "--name", "bench-ops",
                            "--store", "sqlite:.kloud/hostdb.db"], cwd=work, env=env, check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    while True:
        s, b = call("GET", "/v1/self/hosts", admin)
        states = [h["state"] for h in b["items"] if h["offer"] == "tiny"]
        if len(states) >= 50 and all(x in ("running", "failed") for x in states):
            break
        time.sleep(0.2)
    print(f"  all 50 hosts running {time.perf_counter() - t0:.1f} s after the requests started "
          f"({states.count('running')} running, {states.count('failed')} failed)")

    # 4. The HostDB v1 API of the same server (issue 18): 10,000 hosts of tag `web`.
    writer = subprocess.run([kloud, "hostdb", "token", "create", "--role", "operator", "--name", "bench-seed",
                             "--store", "sqlite:.kloud/hostdb.db"], cwd=work, env=env, check=True,
                            capture_output=True, text=True).stdout.strip().splitlines()[-1]
    s, b = call("POST", "/v1/txn", writer, {"writes": [{"op": "put_tag", "tag": {"name": "web"}, "expect": "absent"}]})
    assert s == 200, b
    for start in range(0, 10_000, 1000):
        writes = [{"op": "put_host", "expect": "absent",
                   "host": {"name": f"v1-{i:05d}.bs.kloud.test", "kind": "container", "tags": ["web"],
                            "properties": {"Network": {"IP": f"10.9.{i // 256}.{i % 256}"}, "os": "debian"}}}
                  for i in range(start, start + 1000)]
        s, b = call("POST", "/v1/txn", writer, {"writes": writes})
        assert s == 200, b
    if shutil.which("wrk"):
        runs = []
        for _ in range(3):
            # wrk does not verify certificates; it is given the address, not the name.
            url = f"{base.replace('localhost', '127.0.0.1')}/hostdb/v1/hosts/v1-04242.bs.kloud.test"
            done = subprocess.run(["wrk", "-t2", "-c16", "-d5s", "--latency", url], capture_output=True, text=True)
            if done.returncode != 0:
                tail = open(os.path.join(work, "serve.log")).read()[-3000:]
                raise SystemExit(f"wrk failed: {done.stdout}{done.stderr}\nserver said:\n{tail}\nexit {server.poll()}")
            out = done.stdout
            rps = float(next(l for l in out.splitlines() if l.startswith("Requests/sec")).split()[1])
            p99 = next(l for l in out.splitlines() if l.strip().startswith("99%")).split()[1]
            runs.append((rps, p99))
        runs.sort()
        print(f"GET /hostdb/v1/hosts/NAME over https, wrk 2 threads 16 connections 5 s, median of 3: "
              f"{runs[1][0]:,.0f} req/s, p99 {runs[1][1]} (all: {runs})")
    else:
        print("GET /hostdb/v1/hosts/NAME: wrk is not installed (apt-get install wrk)")
    took = []
    for _ in range(5):
        t = time.perf_counter()
        req = urllib.request.Request(f"{base}/hostdb/v1/hosts/*/Network/IP?foreach=tags/web/members")
        with urllib.request.urlopen(req, context=tls, timeout=300) as r:
            body = r.read()
        took.append(time.perf_counter() - t)
    lines = body.decode().count("\n")
    print(f"GET /hostdb/v1/hosts/*/Network/IP?foreach=tags/web/members over 10,000 members: "
          f"median {statistics.median(took) * 1000:.0f} ms of 5 ({lines} lines, {len(body):,} bytes)")
    if not held:
        sys.exit(1)
finally:
    if server:
        server.kill()
        server.wait()
    subprocess.run([kloud, "destroy", ".", "--auto-approve"], cwd=work, env=env, capture_output=True)
    for m in os.listdir(root) if os.path.isdir(root) else []:
        ls = subprocess.run(["lxc-ls", "-1", "-P", os.path.join(root, m)], capture_output=True, text=True)
        for n in ls.stdout.split():
            subprocess.run(["lxc-destroy", "-P", os.path.join(root, m), "-f", "-n", n], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["ip", "link", "del", "kl-bs"], capture_output=True)
