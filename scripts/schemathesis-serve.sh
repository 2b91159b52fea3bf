#!/usr/bin/env bash
# Run schemathesis against a live `kloud serve`: schema/serve.openapi.yaml as a person signed
# in with LDAP (carol of scripts/setup/slapd.sh, role user), then schema/hostdb-v1.openapi.yaml
# (the HostDB v1 API at /hostdb/v1) on the same server with a v1 session of an operator (alice,
# group ops), so generated writes are made. No 5xx, every status, content type, header and body
# as the spec says; v1's text bodies are checked against their schemas through
# scripts/schemathesis-text.py.
#
# The config has offers and one recorded machine whose driver (openvz) this computer does not
# have, so generated requests are placed and recorded for real but never make a container.
# Needs KLOUD_TEST_LDAP_URL (source scripts/setup/slapd.sh); with KLOUD_TEST_PG_URL and
# KLOUD_TEST_PG_BIN (scripts/setup/postgres.sh) the v1 run is made over PostgreSQL too. Extra
# arguments go to every `st run`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${KLOUD_SCHEMATHESIS_VENV:-/var/tmp/kloud-schemathesis}
if [ ! -x "$venv/bin/st" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q schemathesis
fi
: "${KLOUD_TEST_LDAP_URL:?source scripts/setup/slapd.sh first}"

cd "$repo"
cargo build -q --bin kloud
kloud="$repo/target/debug/kloud"

work=$(mktemp -d)
server_pids=()
pg_schema=""
cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$pg_schema" ]; then
        "$KLOUD_TEST_PG_BIN/psql" "$KLOUD_TEST_PG_URL" -qc "DROP SCHEMA IF EXISTS $pg_schema CASCADE" \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/main.hcl" <<HCL
kloud {
  domain = "st.kloud.test"
}
machine_class "box" {
  cpu    = 64
  memory = "64GiB"
  disk   = "1000GiB"
}
machines "m" {
  class   = "box"
  count   = 1
  name    = "stm{{ index }}"
  driver  = "openvz"
  connect = "local"
}
network "st" {
  cidr = "10.250.0.0/16"
}
offer "small" {
  cpu      = 1
  memory   = "64MiB"
  disk     = "1GiB"
  image    = "busybox"
  network  = "st"
  per_user = 3
  driver   = "openvz"
}
auth {
  roles = { ops = "operator", admins = "admin" }
  ldap {
    url     = "$KLOUD_TEST_LDAP_URL"
    user_dn = "uid={{ username }},ou=People,dc=example,dc=org"
    groups  = "ou=Groups,dc=example,dc=org"
    ssh_key_attribute = "sshPublicKey"
    timeout = "3s"
  }
}
HCL

# start_server NAME: apply the config and start `kloud serve` over it in $work/NAME, on the
# HostDB KLOUD_HOSTDB names (the default, SQLite in that directory, when unset); sets $port.
start_server() {
    local dir="$work/$1"
    mkdir -p "$dir"
    cp "$work/main.hcl" "$dir/"
    (cd "$dir" && "$kloud" apply . --auto-approve >/dev/null)
    port=""
    for _ in $(seq 1 50); do
        try=$(( 20000 + RANDOM % 20000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then port=$try; break; fi
    done
    [ -n "$port" ] || { echo "schemathesis-serve.sh: no free port" >&2; exit 1; }
    (cd "$dir" && exec "$kloud" serve . --listen "127.0.0.1:$port" 2>"$dir/server.log") &
    server_pids+=("$!")
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/hostdb/v1/hosts"; then break; fi
        sleep 0.1
    done
}

# seed_v1: sign alice in through v1, as the original's clients do (a form POST to
# /hostdb/v1/auth/session, answered with the session id as text), into $v1_session; then write
# the objects the spec's examples name (web-1.example, tag web, ...) through v1.
seed_v1() {
    v1_session=$(curl -fsS --data-urlencode username=alice --data-urlencode password=alice-secret \
        "http://127.0.0.1:$port/hostdb/v1/auth/session")
    [ -n "$v1_session" ] || { echo "schemathesis-serve.sh: no v1 session" >&2; exit 1; }
    v1_put hosts/web-1.example $'Network:\n  IP: 10.9.0.1\nrole: web\ndisks: [sda, sdb]\n'
    v1_put hosts/web-2.example $'Network:\n  IP: 10.9.0.2\nrole: web\n'
    v1_put tags/web $'port: 80\n'
    v1_put tags/frontend $'tier: front\n'
    v1_put tags/web/members $'web-1.example\n'
    v1_put tags/frontend/members $'@web\n'
    v1_put dns/www.example $'cname: web-1.example\n'
}
v1_put() {
    curl -fsS -o /dev/null -X PUT --data-urlencode "value=$2" --data-urlencode log=seed \
        --data-urlencode "session=$v1_session" "http://127.0.0.1:$port/hostdb/v1/$1"
}

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
status=0

# run_v1 WHAT: schema/hostdb-v1.openapi.yaml against the server on $port. The bearer token is
# alice's v1 session: a request without a `session` field or cookie writes as her (generated
# `session` values are not sessions: 401). v1CreateSession is tried with generated names.
# Beyond serve's checks: a method the spec does not list for a path is 405 with `Allow`.
run_v1() {
    echo "==> schemathesis: schema/hostdb-v1.openapi.yaml ($1)"
    (cd "$work" && SCHEMATHESIS_HOOKS="$repo/scripts/schemathesis-text.py" \
        "$venv/bin/st" run "$repo/schema/hostdb-v1.openapi.yaml" \
        --url "http://127.0.0.1:$port" \
        -H "Authorization: Bearer $v1_session" \
        --checks "$checks,unsupported_method,allow_header_conformance" \
        --request-timeout 30 \
        "${st_args[@]}") || status=$?
}
st_args=("$@")

start_server sqlite
token=$(curl -fsS -H 'Content-Type: application/json' \
    -d '{"username":"carol","password":"carol-secret"}' \
    "http://127.0.0.1:$port/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
seed_v1

# schemathesis keeps its state in ./.schemathesis: keep it out of the repository.
echo "==> schemathesis: schema/serve.openapi.yaml"
(cd "$work" && "$venv/bin/st" run "$repo/schema/serve.openapi.yaml" \
    --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $token" \
    --checks "$checks" \
    --request-timeout 30 \
    --exclude-operation-id logout \
    "$@") || status=$?
run_v1 SQLite

# v1 again over PostgreSQL (scripts/setup/postgres.sh), in a schema of its own: it refuses
# text SQLite takes (a NUL), so some answers differ.
if [ -n "${KLOUD_TEST_PG_URL:-}" ]; then
    pg_schema="st_v1_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
    "$KLOUD_TEST_PG_BIN/psql" "$KLOUD_TEST_PG_URL" -qc "CREATE SCHEMA $pg_schema"
    KLOUD_HOSTDB="$KLOUD_TEST_PG_URL?options=-c%20search_path%3D$pg_schema" start_server pg
    seed_v1
    run_v1 PostgreSQL
elif [ "${CI:-}" = true ]; then
    echo "schemathesis-serve.sh: CI=true but KLOUD_TEST_PG_URL is not set: source scripts/setup/postgres.sh" >&2
    status=1
else
    echo "schemathesis-serve.sh: KLOUD_TEST_PG_URL not set, v1 not run over PostgreSQL" >&2
fi

for name in sqlite pg; do
    [ -f "$work/$name/server.log" ] || continue
    if grep -q panicked "$work/$name/server.log"; then
        echo "schemathesis-serve.sh: kloud serve ($name) panicked; its log:" >&2
        cat "$work/$name/server.log" >&2
        status=1
    fi
done
for pid in "${server_pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "schemathesis-serve.sh: a kloud serve exited early" >&2
        status=1
    fi
done
exit "$status"
