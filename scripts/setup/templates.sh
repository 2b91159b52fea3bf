# shellcheck shell=bash
# Sourced by scripts/test.sh: the programs the template tests drive (tests/templates.rs):
# haproxy (configured by a rendered template, checked with `haproxy -c`, reloaded by
# on_change), munin (its master parser and munin-update read a rendered config; a munin-node
# of the test's own on a free loopback port answers them) and busybox (httpd backends in LXC
# containers). Each test starts its own processes with their own config, pid and data
# directories and stops them by pid. Safe to source twice.
# Exports: KLOUD_TEST_HAPROXY, KLOUD_TEST_MUNIN_NODE, KLOUD_TEST_MUNIN_UPDATE.

kloud_setup_templates() {
    local need=()
    [ -x /usr/sbin/haproxy ] || need+=(haproxy)
    [ -x /usr/share/munin/munin-update ] || need+=(munin)
    [ -x /usr/sbin/munin-node ] || need+=(munin-node)
    command -v busybox >/dev/null 2>&1 || need+=(busybox)
    if [ ${#need[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || return 1
    fi
    id munin >/dev/null 2>&1 || { echo "templates.sh: no munin user" >&2; return 1; }
    export KLOUD_TEST_HAPROXY=/usr/sbin/haproxy
    export KLOUD_TEST_MUNIN_NODE=/usr/sbin/munin-node
    export KLOUD_TEST_MUNIN_UPDATE=/usr/share/munin/munin-update
}

kloud_setup_templates || echo "scripts/setup/templates.sh: setup failed; template tests will skip (or fail under CI=true)" >&2
