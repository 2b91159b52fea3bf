# Sourced by scripts/test.sh: makes Prometheus and Nagios 4 available to the monitoring
# integration tests. Each Prometheus test starts its own server on a free loopback port with a
# temp storage dir (and stops it); `nagios4 -v` only reads config. This script installs and
# exports the binaries' paths. Safe to source twice.
if ! [ -x /usr/bin/prometheus ] || ! [ -x /usr/sbin/nagios4 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus nagios4-core >/dev/null
fi
export KLOUD_TEST_PROMETHEUS=/usr/bin/prometheus
export KLOUD_TEST_NAGIOS=/usr/sbin/nagios4
