# Sourced by scripts/test.sh: makes Puppet (and the Ruby it runs on) available to the ENC
# tests, which run `puppet apply` with private conf/var/code dirs in a temp dir, and Debian's
# puppetserver to tests/real_hosts.rs, which starts its own server (private dirs, its own
# address and port) for debian-12 containers' first-boot agent run. Installs and exports the
# paths only: the system's puppetserver service is never started here (the package's postinst
# does not start it in a container without systemd; on a machine with systemd it is stopped
# and disabled). Safe to source twice.
if ! [ -x /usr/bin/puppet ] || ! [ -x /usr/bin/ruby ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends puppet-agent >/dev/null
fi
if ! [ -f /usr/share/puppetserver/puppetserver.jar ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends puppetserver >/dev/null \
        || echo "scripts/setup/puppet.sh: puppetserver did not install; its test will skip (or fail under CI=true)" >&2
    if [ -d /run/systemd/system ]; then
        systemctl disable --now puppetserver.service >/dev/null 2>&1 || true
    fi
fi
export KLOUD_TEST_PUPPET=/usr/bin/puppet
export KLOUD_TEST_RUBY=/usr/bin/ruby
# The server's jar; tests run it with java directly (the /usr/bin/puppetserver wrapper uses
# the system's /etc/puppet paths and the puppet user).
if [ -f /usr/share/puppetserver/puppetserver.jar ]; then
    export KLOUD_TEST_PUPPETSERVER=/usr/share/puppetserver/puppetserver.jar
fi
