# Sourced by scripts/test.sh: makes BIND 9 (named) and its client tools available to the DNS
# integration tests. Each test starts its own named on a free loopback port in a temp dir (so
# tests stay isolated and clean up after themselves); this script only installs and exports.
# Safe to source twice.
if ! [ -x /usr/sbin/named ] || ! command -v dig >/dev/null 2>&1 || ! command -v nsupdate >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9 bind9-dnsutils >/dev/null
fi
export KLOUD_TEST_NAMED=/usr/sbin/named
export KLOUD_TEST_DIG="$(command -v dig || echo /usr/bin/dig)"
export KLOUD_TEST_NSUPDATE="$(command -v nsupdate || echo /usr/bin/nsupdate)"
