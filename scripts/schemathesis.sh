#!/usr/bin/env bash
# Run schemathesis against a live `kloud hostdb serve` with schema/hostdb.openapi.yaml:
# no 5xx, every status, content type, header and body as the spec says.
#
# Installs schemathesis (PyPI) into a venv in $KLOUD_SCHEMATHESIS_VENV on first use, builds
# kloud, serves a fresh SQLite HostDB on a free loopback port with an admin token, runs the
# checks and stops the server. Extra arguments are passed to `st run` (e.g. --max-examples 20).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${KLOUD_SCHEMATHESIS_VENV:-/var/tmp/kloud-schemathesis}
if [ ! -x "$venv/bin/st" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q schemathesis
fi

cd "$repo"
cargo build -q --bin kloud
kloud="$repo/target/debug/kloud"

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

token=$("$kloud" hostdb token create --role admin --name schemathesis --store "sqlite:$work/hostdb.db" 2>/dev/null | tail -n 1)

port=""
for _ in $(seq 1 50); do
    try=$(( 20000 + RANDOM % 20000 ))
    if ! ss -Htln "sport = :$try" | grep -q .; then port=$try; break; fi
done
[ -n "$port" ] || { echo "schemathesis.sh: no free port" >&2; exit 1; }

# Held queries are capped short so generated `index`/`wait` values do not stall the run.
"$kloud" hostdb serve --listen "127.0.0.1:$port" --store "sqlite:$work/hostdb.db" \
    --max-wait 200ms 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/index"; then break; fi
    sleep 0.1
done

"$venv/bin/st" run "$repo/schema/hostdb.openapi.yaml" \
    --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --request-timeout 10 \
    --exclude-operation-id revokeToken \
    "$@"
