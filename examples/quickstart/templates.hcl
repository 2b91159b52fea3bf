# The lb hosts' haproxy config, rendered from HostDB: the running web hosts as backends.
# `kloud apply` renders it after the hosts; `kloud sync template haproxy --watch` keeps it
# true as HostDB changes. The check runs only where haproxy is installed.

template "haproxy" {
  source      = "templates/haproxy.cfg.j2"
  destination = ".kloud/haproxy/haproxy.cfg" # relative to this directory
  hosts       = { class = "web" }
  check       = "if command -v haproxy >/dev/null; then haproxy -c -q -f {{ path }}; fi"
}
