#!/usr/bin/env bash
# Benchmark for the talk's headline: 60 containers created by `kloud apply`, recorded in HostDB
# and answering on their addresses.
#
#   scripts/bench-apply.sh [PARALLELISM...]          busybox: from the start of `kloud apply` to the
#                                                    last container answering a ping, per
#                                                    parallelism (default: 5 10 20)
#   scripts/bench-apply.sh debian-12 [RUNS] [PAR]    real hosts: the first build of the debian-12
#                                                    image (debootstrap, in a fresh image cache),
#                                                    then RUNS times (default 3) 60 debian-12 hosts
#                                                    from `kloud apply` to all 60 answering ssh as
#                                                    their login user with first boot done (image
#                                                    cached; parallelism PAR, default 10), and the
#                                                    memory of an idle Debian container; medians.
#
# Needs root and LXC (scripts/setup/lxc.sh); debian-12 also debootstrap, ssh and the Debian
# archive. Cleans up after itself (destroy, bridge, image cache).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bin kloud  # apply time is LXC's, not kloud's: a debug build measures the same
kloud="$PWD/target/debug/kloud"
if [ "${1:-}" = debian-12 ]; then
  shift
  exec bash scripts/bench-debian.sh "$kloud" "$@"
fi
work=$(mktemp -d)
root=/var/lib/kloud/bench-apply-$$
trap '(cd "$work" && KLOUD_LXC_ROOT=$root "$kloud" destroy . --auto-approve >/dev/null 2>&1); rm -rf "$work" "$root"; ip link del kl-bench60 2>/dev/null || true' EXIT
cat > "$work/main.hcl" <<'HCL'
kloud {
  domain = "bench.kloud.test"
}

machine_class "box" {
  cpu    = 32
  memory = "16GiB"
  disk   = "200GiB"
}

machines "m" {
  class   = "box"
  count   = 3
  name    = "m{{ index }}"
  labels  = { rack = "r1", switch = "s1" }
  connect = "local"
}

network "bench60" {
  cidr    = "10.253.0.0/24"
  gateway = "10.253.0.1"
}

host_class "web" {
  count   = 60
  cpu     = 1
  memory  = "32MiB"
  disk    = "1GiB"
  image   = "busybox"
  network = "bench60"

  placement {
    strategy = "spread"
  }
}
HCL
for p in ${@:-5 10 20}; do
  start=$(date +%s.%N)
  (cd "$work" && KLOUD_LXC_ROOT=$root "$kloud" apply . --auto-approve --parallelism "$p" >/dev/null)
  for i in $(seq 2 61); do
    until ping -c1 -W1 "10.253.0.$i" >/dev/null 2>&1; do sleep 0.05; done
  done
  end=$(date +%s.%N)
  recorded=$(cd "$work" && KLOUD_LXC_ROOT=$root "$kloud" hosts --kind container --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo "?")
  (cd "$work" && KLOUD_LXC_ROOT=$root "$kloud" plan . --detailed-exitcode >/dev/null) && noop=yes || noop=no
  printf 'parallelism %2d: 60 containers created and answering in %.1f s (%s records; plan after apply: %s)\n' \
    "$p" "$(echo "$end - $start" | bc)" "$recorded" "$([ $noop = yes ] && echo 'no changes' || echo 'CHANGES')"
  (cd "$work" && KLOUD_LXC_ROOT=$root "$kloud" destroy . --auto-approve >/dev/null)
  # Machine directories only (not the image cache in .images), entries that are not lock files.
  left=$(find "$root" -mindepth 2 -maxdepth 2 -not -path "$root/.*" -not -name '.*' 2>/dev/null | wc -l)
  echo "  destroy: $left containers left"
done
