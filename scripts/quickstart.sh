#!/usr/bin/env bash
# The quickstart, on a fresh Debian 12 machine as root: installs LXC and the Rust toolchain if
# missing, builds kloud, applies examples/quickstart (real LXC containers on this computer,
# recorded in the embedded SQLite HostDB), shows the hosts, and checks each answers on its address.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in lxc busybox-static iproute2 iputils-ping build-essential pkg-config; do
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
echo "Done. Remove everything again with: (cd examples/quickstart && $kloud destroy . --auto-approve)"
