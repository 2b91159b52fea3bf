#!/usr/bin/env bash
# The vector bin packing benchmark through the command line: every instance of
# benches/data/vbp becomes a config directory (one machine_class of the bin's capacity, as many
# machines as items, one host_class per item type) and runs through `kloud plan --json` as a
# process. Reports the machines used in total, to compare with `cargo bench --bench place_vbp`
# (the same engine called as a library) and the published figures in benches/data/vbp/README.md.
#
# Usage: scripts/bench-place-vbp-cli.sh [FILTER]   (FILTER limits instances, e.g. class4_)
# Env:   KLOUD_BIN (default target/release/kloud, built if missing), KLOUD_VBP_DIR (instances).
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-}"
vbp="${KLOUD_VBP_DIR:-benches/data/vbp}"
bin="${KLOUD_BIN:-target/release/kloud}"
if [[ ! -x "$bin" ]]; then
  cargo build --release --bin kloud
fi
work="target/bench-place-vbp-cli"
rm -rf "$work"
mkdir -p "$work"
python3 - "$vbp" "$work" "$filter" "$bin" <<'EOF'
import json, subprocess, sys, time
from pathlib import Path

vbp, work, filt, binary = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
known = {}
lines = (vbp / "known.tsv").read_text().splitlines()
head = lines[0].split("\t")
for line in lines[1:]:
    f = line.split("\t")
    if len(f) == len(head):
        known[f[0]] = dict(zip(head, f))

def config(path):
    nums = [int(t) for t in path.read_text().split()]
    assert nums[0] == 3
    cpu, mem, disk, types = nums[1], nums[2], nums[3], nums[4]
    items = [nums[5 + 4 * t: 9 + 4 * t] for t in range(types)]
    total = sum(i[3] for i in items)
    out = [
        'kloud {\n  domain = "vbp.kloud.internal"\n  hostdb = "sqlite:.kloud/hostdb.db"\n}\n',
        'network "pool" {\n  cidr = "10.0.0.0/8"\n}\n',
        f'machine_class "bin" {{\n  cpu    = {cpu}\n  memory = {mem}\n  disk   = {disk}\n}}\n',
        f'machines "m" {{\n  class  = "bin"\n  count  = {total}\n  name   = "m{{{{ index }}}}"\n'
        '  driver = "lxc"\n}\n',
    ]
    for t, (c, m, d, n) in enumerate(items):
        out.append(
            f'host_class "t{t}" {{\n  count   = {n}\n  cpu     = {c}\n  memory  = {m}\n'
            f'  disk    = {d}\n  image   = "none"\n  network = "pool"\n}}\n'
        )
    return "\n".join(out)

ran = used_total = best_total = lb_total = 0
failed = []
start = time.monotonic()
for name in sorted(known):
    if filt not in name:
        continue
    d = work / name
    d.mkdir()
    (d / "main.hcl").write_text(config(vbp / "instances" / f"{name}.vbp"))
    p = subprocess.run([binary, "plan", str(d), "--json"], capture_output=True, text=True)
    try:
        plan = json.loads(p.stdout)
    except json.JSONDecodeError:
        failed.append((name, p.returncode, p.stderr.strip().splitlines()[-1:] ))
        continue
    if plan["summary"].get("unplaced", 0):
        failed.append((name, p.returncode, ["unplaced hosts"]))
        continue
    machines = {c["after"]["machine"] for c in plan["changes"] if c.get("after")}
    ran += 1
    used_total += len(machines)
    best_total += int(known[name]["best_overall"])
    lb_total += int(known[name]["LB"])
secs = time.monotonic() - start
print(f"instances through `kloud plan --json`: {ran} of {ran + len(failed)}")
print(f"machines used: {used_total}  (best published {best_total}, lower bound {lb_total})")
print(f"time: {secs:.1f} s wall in total")
for f in failed[:20]:
    print("failed:", f)
sys.exit(1 if failed else 0)
EOF
