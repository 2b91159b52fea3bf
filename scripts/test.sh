#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root: installs what the tests need
# (Debian packages, the Rust toolchain if missing), starts the services they use on loopback
# (scripts/setup/*.sh, each sourced so it can export the addresses it picked), then runs every
# test of the workspace. Under CI=true a test whose component is missing fails; it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need_apt=()
for pkg in build-essential pkg-config iproute2 iputils-ping python3 python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    apt-get install -y -qq curl ca-certificates >/dev/null
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# Services and tools the tests use; each script is idempotent and exports what it started.
for setup in scripts/setup/*.sh; do
  [ -e "$setup" ] || continue
  echo "==> $setup"
  # shellcheck disable=SC1090
  source "$setup"
done

if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
  rustup component add clippy rustfmt
fi

# Style first: the same checks CI holds every submission to.
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo test"
cargo test --workspace --no-fail-fast "$@"

# The README's main command, end to end, then destroyed again. Not where a quickstart is already
# applied (its HostDB exists): that one belongs to whoever applied it.
if [ -e examples/quickstart/.kloud ]; then
  echo "==> quickstart: not run, examples/quickstart is applied here already (destroy it to run this step)"
  [ "${CI:-}" != "true" ] || { echo "under CI=true the clone must be clean" >&2; exit 1; }
else
  echo "==> quickstart"
  quickstart=ok
  bash scripts/quickstart.sh || quickstart=failed
  # Clean up whatever happened: its containers, HostDB and bridge.
  (cd examples/quickstart && ../../target/debug/kloud destroy . --auto-approve >/dev/null) || quickstart=failed
  rm -rf examples/quickstart/.kloud
  ip link del kl-lab 2>/dev/null || true
  [ "$quickstart" = ok ] || { echo "the quickstart failed" >&2; exit 1; }
fi

# The HostDB API against its OpenAPI spec, from outside: no 5xx, every response conforms.
echo "==> schemathesis"
bash scripts/schemathesis.sh --max-examples 20

# kloud serve's sign-in and self-service routes against their spec, as a person signed in, and
# its HostDB v1 API against schema/hostdb-v1.openapi.yaml as an operator (SQLite, PostgreSQL).
echo "==> schemathesis (kloud serve)"
bash scripts/schemathesis-serve.sh --max-examples 20
