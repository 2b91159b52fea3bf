#!/usr/bin/env bash
# Run schemathesis against a live `kloud serve` with schema/serve.openapi.yaml, as a person
# signed in with LDAP (carol of scripts/setup/slapd.sh): no 5xx, every status, content type,
# header and body as the spec says.
#
# The config has offers and one recorded machine whose driver (openvz) this computer does not
# have, so generated requests are placed and recorded for real but never make a container.
# Needs KLOUD_TEST_LDAP_URL (source scripts/setup/slapd.sh). Extra arguments go to `st run`.
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
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
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
  ldap {
    url     = "$KLOUD_TEST_LDAP_URL"
    user_dn = "uid={{ username }},ou=People,dc=example,dc=org"
    groups  = "ou=Groups,dc=example,dc=org"
    ssh_key_attribute = "sshPublicKey"
    timeout = "3s"
  }
}
HCL
(cd "$work" && "$kloud" apply . --auto-approve >/dev/null)

port=""
for _ in $(seq 1 50); do
    try=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then port=$try; break; fi
done
[ -n "$port" ] || { echo "schemathesis-serve.sh: no free port" >&2; exit 1; }

(cd "$work" && exec "$kloud" serve . --listen "127.0.0.1:$port" 2>"$work/server.log") &
server_pid=$!
for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/hostdb/v1/hosts"; then break; fi
    sleep 0.1
done
token=$(curl -fsS -H 'Content-Type: application/json' \
    -d '{"username":"carol","password":"carol-secret"}' \
    "http://127.0.0.1:$port/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

cd "$work"
"$venv/bin/st" run "$repo/schema/serve.openapi.yaml" \
    --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --request-timeout 30 \
    --exclude-operation-id logout \
    "$@"
