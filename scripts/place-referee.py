#!/usr/bin/env python3
"""The placement referee: an exact CP-SAT model (OR-Tools) of a kloud placement problem.

Reads problems as kloud serialises them (`kloud::place::Problem` as JSON: machines, existing
hosts, rules, requests) and says, per problem, whether every request can be placed under the same
capacities and `max_per` rules, and with --optimise the fewest machines in use.

The model counts hosts per (group, machine), a group being the requests of one class, driver and
size: x[g, m] in 0..k, where k is what capacity and `max_per machine` allow. Per machine and
dimension, existing hosts plus new hosts fit the capacity; per class and label value, existing plus
new hosts stay within max_per. With --optimise, y[m] says machine m is in use (it holds a host,
existing or new) and the sum of y is minimised.

Output, one line per problem: name, status (OPTIMAL, FEASIBLE, INFEASIBLE, UNKNOWN), machines in
use (-1 when not known), seconds.

Usage: place-referee.py [--optimise] [--time-limit S] [--workers N] problem.json...
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from ortools.sat.python import cp_model

MACHINE_KEY = "machine"
DIMS = ("cpu", "memory_mib", "disk_gib")


def size(res):
    # cpu is a number of cores that may be fractional (0.5): the model counts millicores, as
    # kloud does.
    cpu = round(float(res.get("cpu", 0)) * 1000)
    return (cpu,) + tuple(int(res.get(d, 0)) for d in DIMS[1:])


def build(problem, optimise):
    machines = {}
    for m in problem["machines"]:
        machines.setdefault(m["name"], m)
    names = sorted(machines)
    rules = problem.get("rules", {})
    used = {n: [0, 0, 0] for n in names}
    existing_count = defaultdict(int)  # (class, key, value) -> hosts
    holds_existing = set()
    for e in problem.get("existing", []):
        if e["machine"] not in machines:
            continue
        s = size(e["size"])
        for d in range(3):
            used[e["machine"]][d] += s[d]
        holds_existing.add(e["machine"])
        for key in rules.get(e["class"], {}).get("max_per", {}):
            v = value(machines[e["machine"]], key)
            if v is not None:
                existing_count[(e["class"], key, v)] += 1
    groups = defaultdict(int)
    seen = set()
    for r in problem["requests"]:
        if r["name"] in seen:
            continue
        seen.add(r["name"])
        groups[(r["class"], r["driver"], size(r["size"]))] += 1

    model = cp_model.CpModel()
    x = {}
    per_machine = defaultdict(list)
    per_value = defaultdict(list)
    bounds = {}
    for gi, ((cls, driver, s), count) in enumerate(sorted(groups.items())):
        max_per = rules.get(cls, {}).get("max_per", {})
        terms = []
        for n in names:
            m = machines[n]
            if m["driver"] != driver:
                continue
            cap = size(m["capacity"])
            k = count
            for d in range(3):
                if s[d] > 0:
                    k = min(k, max(0, (cap[d] - used[n][d]) // s[d]))
            labels_ok = True
            for key, limit in max_per.items():
                v = value(m, key)
                if v is None:
                    labels_ok = False
                    break
                k = min(k, max(0, limit - existing_count[(cls, key, v)]))
            if not labels_ok or k == 0:
                continue
            var = model.NewIntVar(0, k, f"x{gi}_{n}")
            x[(gi, n)] = (var, s)
            terms.append(var)
            per_machine[n].append((var, s))
            bounds[var.Name()] = k
            for key in max_per:
                per_value[(cls, key, value(m, key))].append(var)
        if not terms:
            return None, None
        model.Add(sum(terms) == count)
    for n, items in per_machine.items():
        cap = size(machines[n]["capacity"])
        for d in range(3):
            if any(s[d] for _, s in items):
                model.Add(sum(v * s[d] for v, s in items) <= cap[d] - used[n][d])
    for (cls, key, v), vars_ in per_value.items():
        limit = rules[cls]["max_per"][key]
        model.Add(sum(vars_) <= max(0, limit - existing_count[(cls, key, v)]))
    if optimise:
        ys = []
        for n in names:
            items = per_machine.get(n, [])
            if n in holds_existing:
                ys.append(1)
                continue
            if not items:
                continue
            y = model.NewBoolVar(f"y_{n}")
            for var, _ in items:
                model.Add(var <= bounds[var.Name()] * y)
            model.Add(sum(v for v, _ in items) >= 1).OnlyEnforceIf(y)
            ys.append(y)
        model.Minimize(sum(ys))
    return model, per_machine


def value(machine, key):
    if key == MACHINE_KEY:
        return machine["name"]
    return machine.get("labels", {}).get(key)


def solve(path, optimise, time_limit, workers):
    problem = json.loads(Path(path).read_text())
    start = time.monotonic()
    model, per_machine = build(problem, optimise)
    if model is None:
        return "INFEASIBLE", -1, time.monotonic() - start
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = workers
    status = solver.Solve(model)
    secs = time.monotonic() - start
    name = solver.StatusName(status)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        machines_used = len(
            {n for n, items in per_machine.items() if any(solver.Value(v) for v, _ in items)}
            | {e["machine"] for e in problem.get("existing", [])}
        )
        if not optimise:
            name = "FEASIBLE"
        return name, machines_used, secs
    return name, -1, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimise", action="store_true")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("problems", nargs="+")
    args = ap.parse_args()
    for p in args.problems:
        status, used, secs = solve(p, args.optimise, args.time_limit, args.workers)
        print(f"{Path(p).stem}\t{status}\t{used}\t{secs:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
