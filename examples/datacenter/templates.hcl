# Files rendered from HostDB and kept true (docs/templates.md). Run `kloud sync template
# haproxy --watch` on each lb host (or let `kloud apply` render them after the hosts).

template "haproxy" {
  source      = "templates/haproxy.cfg.j2"
  destination = "/etc/haproxy/haproxy.cfg"
  hosts       = { class = "web" }                # the lb class balances the web hosts
  check       = "haproxy -c -q -f {{ path }}"    # the new file, before it replaces the old
  on_change   = "systemctl reload haproxy"
  vars        = { bind = "*:80" }
}

template "munin" {
  source      = "templates/munin.conf.j2"
  destination = "/etc/munin/munin-conf.d/kloud.conf"
  # munin's own parser (the one munin-update uses) reads the new file.
  check     = "perl -MMunin::Master::Config -e 'Munin::Master::Config->instance->parse_config_from_file(shift)' {{ path }}"
  on_change = "true" # munin-update reads its config on every run (from cron)
}
