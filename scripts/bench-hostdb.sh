#!/usr/bin/env bash
# HostDB benchmarks in release mode: SQLite always, PostgreSQL too (started by
# scripts/setup/postgres.sh). Needs `wrk` for the HTTP GET figure.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
# 1,000 watchers hold 2,000 sockets in one process.
ulimit -n 20000 2>/dev/null || true
# shellcheck source=setup/postgres.sh
source scripts/setup/postgres.sh
# Arguments go to the bench: `scripts/bench-hostdb.sh watchers` runs only the watcher figure.
cargo bench --bench hostdb -- "$@"
