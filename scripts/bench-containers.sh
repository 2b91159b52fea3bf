#!/usr/bin/env bash
# The "60 servers" figure for the LXC driver: COUNT busybox containers created in parallel
# through the driver and answering ping, for each worker count, median of RUNS runs.
# Usage (as root): scripts/bench-containers.sh [COUNT] [W,W,...] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=setup/lxc.sh
source scripts/setup/lxc.sh
exec cargo bench -q -p kloud-provider-lxc --bench containers -- "${1:-60}" "${2:-5,10,15,20,30}" "${3:-3}"
