# Sourced by scripts/test.sh: makes Puppet (and the Ruby it runs on) available to the ENC
# tests, which run `puppet apply` with private conf/var/code dirs in a temp dir. Installs and
# exports the paths only. Safe to source twice.
if ! [ -x /usr/bin/puppet ] || ! [ -x /usr/bin/ruby ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends puppet-agent >/dev/null
fi
export KLOUD_TEST_PUPPET=/usr/bin/puppet
export KLOUD_TEST_RUBY=/usr/bin/ruby
