#!/usr/bin/env bash
# Completeness and quality of placement against an exact referee (issue 14, figures 1 and 2).
#
# 1. `cargo bench --bench place_tight` generates the fleets with tight rules (1k, 10k, 20k hosts
#    over 10 seeds, 100k with KLOUD_PLACE_BIG=1; 30 small fleets), places each, checks the
#    invariants, and writes every fleet as JSON plus kloud's results to target/place-fleets.
# 2. scripts/place-referee.py (OR-Tools CP-SAT, installed from PyPI into target/place-venv) says
#    for each large fleet kloud left incomplete whether a complete placement exists (a complete
#    placement of kloud, checked, is its own proof), and for each small fleet the
#    fewest machines.
# 3. The two are joined: incomplete placements on feasible fleets, and machines against the
#    optimum.
#
# Usage: scripts/bench-place.sh        Env: KLOUD_PLACE_SEEDS (10), KLOUD_PLACE_BIG, REFEREE_TIME (60)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/place-fleets
venv=target/place-venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import ortools" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ortools
fi
rm -rf "$dir"
KLOUD_PLACE_FLEETS="$dir" cargo bench --bench place_tight
limit="${REFEREE_TIME:-60}"
: >"$dir/referee.tsv"
for f in "$dir"/tight-*.json; do
  name=$(basename "$f" .json)
  unplaced=$(awk -F'\t' -v n="$name" '$1 == n { print $4 }' "$dir/kloud.tsv")
  if [[ "$unplaced" == 0 ]]; then
    # kloud's complete placement passed the invariant checker: it proves the fleet feasible,
    # and the referee (which cannot decide 20k or 100k fleets in minutes) is not needed.
    printf '%s\tFEASIBLE\t-1\t0\n' "$name" >>"$dir/referee.tsv"
  else
    "$venv/bin/python" scripts/place-referee.py --time-limit "$limit" "$f" >>"$dir/referee.tsv"
  fi
done
for f in "$dir"/small-*.json; do
  "$venv/bin/python" scripts/place-referee.py --optimise --time-limit "$limit" "$f" >>"$dir/referee.tsv"
done
python3 - "$dir" <<'EOF'
import sys
from collections import defaultdict
from pathlib import Path
d = Path(sys.argv[1])
kloud = {l.split("\t")[0]: l.split("\t") for l in (d / "kloud.tsv").read_text().splitlines()}
ref = {l.split("\t")[0]: l.split("\t") for l in (d / "referee.tsv").read_text().splitlines()}
sizes = defaultdict(lambda: [0, 0, 0, 0, []])  # fleets, feasible, complete on feasible, unknown, ref secs
opt_n = opt_hit = 0
opt_total = our_total = 0
small_incomplete = 0
for name, k in sorted(kloud.items()):
    r = ref.get(name)
    if r is None:
        continue
    status, used, secs = r[1], int(r[2]), float(r[3])
    unplaced, ours = int(k[3]), int(k[4])
    if name.startswith("tight-"):
        s = sizes[int(k[1])]
        s[0] += 1
        if status in ("FEASIBLE", "OPTIMAL"):
            s[1] += 1
            s[2] += unplaced == 0
        elif status != "INFEASIBLE":
            s[3] += 1
        s[4].append(secs)
    elif status == "OPTIMAL":
        opt_n += 1
        if unplaced:
            small_incomplete += 1
            continue
        opt_total += used
        our_total += ours
        opt_hit += ours == used
print("completeness against the referee")
print(f"{'hosts':>8} {'fleets':>7} {'feasible':>9} {'complete':>9} {'unknown':>8} {'referee s':>10}")
for h, (n, feas, comp, unk, secs) in sorted(sizes.items()):
    secs.sort()
    print(f"{h:>8} {n:>7} {feas:>9} {comp:>9} {unk:>8} {secs[len(secs)//2]:>10.2f}")
print(f"quality: {opt_n} small fleets solved to optimality; kloud incomplete on {small_incomplete}; "
      f"{our_total} machines against {opt_total} optimal "
      f"({our_total / max(opt_total, 1):.4f}x), optimal on {opt_hit} of {opt_n - small_incomplete}")
EOF
