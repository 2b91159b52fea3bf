#!/usr/bin/env bash
# The quickstart, on a fresh Debian 12 machine as root: installs LXC and the Rust toolchain if
# missing, builds kloud, applies examples/quickstart (real LXC containers on this computer,
# recorded in the embedded SQLite HostDB: Debian 12 web servers built with debootstrap from this
# computer's apt sources, busybox load balancers), shows the hosts, checks each answers on its
# address, and logs in to a web server by ssh with your key (~/.ssh/id_ed25519.pub, or a demo
# key made for the occasion) to run `sudo -n hostname -f`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in lxc busybox-static iproute2 iputils-ping build-essential pkg-config debootstrap openssh-client; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || { apt-get install -y -qq curl ca-certificates >/dev/null; curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal; }
  export PATH="$HOME/.cargo/bin:$PATH"
fi
cargo build -q --bin kloud
kloud="$PWD/target/debug/kloud"
cd examples/quickstart
mkdir -p .kloud
# Who logs in to the web servers: you, with your key, or a demo key kept in .kloud/.
ssh_args=()
if [ -f "$HOME/.ssh/id_ed25519.pub" ]; then
  pub="$HOME/.ssh/id_ed25519.pub"
else
  [ -f .kloud/demo_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C kloud-quickstart -f .kloud/demo_ed25519
  pub="$PWD/.kloud/demo_ed25519.pub"
  ssh_args=(-i "$PWD/.kloud/demo_ed25519")
fi
export KLOUD_VAR_ops_ssh_keys="[\"$(cat "$pub")\"]"
echo "Logins use $pub. The first debian-12 container builds the image (debootstrap, a few minutes, once per computer)."
"$kloud" validate .
"$kloud" apply . --auto-approve
echo
"$kloud" hosts --kind container
echo
"$kloud" plan . --json | python3 -c '
import json, subprocess, sys
plan = json.load(sys.stdin)
bad = 0
for c in plan["changes"]:
    ip = (c["after"] or {}).get("ip")
    ok = subprocess.run(["ping", "-c1", "-W2", ip], stdout=subprocess.DEVNULL).returncode == 0
    bad += not ok
    addr = c["address"]
    word = "answers" if ok else "DOES NOT ANSWER"
    print(f"{addr:32} {ip:15} {word}")
sys.exit(1 if bad else 0)
'
echo
echo "Logging in to web-1 as ops: kloud ssh web-1 -- sudo -n hostname -f"
"$kloud" ssh web-1 "${ssh_args[@]}" -o BatchMode=yes -- sudo -n hostname -f
echo
echo "Done. Log in yourself with: (cd examples/quickstart && $kloud ssh web-1 ${ssh_args[*]})"
echo "Remove everything again with: (cd examples/quickstart && $kloud destroy . --auto-approve)"
