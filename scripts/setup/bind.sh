# Sourced by scripts/test.sh: makes the DNS servers the DNS integration tests run against
# (BIND 9, Knot, PowerDNS) and the client tools (dig, nsupdate) available. Each test starts its
# own server on a free loopback port in a temp dir (so tests stay isolated and clean up after
# themselves); this script only installs and exports paths. Safe to source twice.
if ! [ -x /usr/sbin/named ] || ! command -v dig >/dev/null 2>&1 || ! command -v nsupdate >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9 bind9-dnsutils >/dev/null
fi
export KLOUD_TEST_NAMED=/usr/sbin/named
export KLOUD_TEST_DIG="$(command -v dig || echo /usr/bin/dig)"
export KLOUD_TEST_NSUPDATE="$(command -v nsupdate || echo /usr/bin/nsupdate)"
# Knot DNS: the same DNS tests run against it too (another RFC 2136 + TSIG implementation).
if ! [ -x /usr/sbin/knotd ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends knot >/dev/null
fi
export KLOUD_TEST_KNOTD=/usr/sbin/knotd
# PowerDNS (SQLite backend): the third RFC 2136 + TSIG implementation the DNS tests run against.
if ! [ -x /usr/sbin/pdns_server ] || ! [ -x /usr/bin/pdnsutil ] || ! [ -x /usr/bin/sqlite3 ] \
    || ! [ -f /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        pdns-server pdns-backend-sqlite3 sqlite3 >/dev/null
fi
export KLOUD_TEST_PDNS=/usr/sbin/pdns_server
export KLOUD_TEST_PDNSUTIL=/usr/bin/pdnsutil
export KLOUD_TEST_SQLITE3=/usr/bin/sqlite3
export KLOUD_TEST_PDNS_SCHEMA=/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
