tag "web" {
  properties = { nagios_checks = ["http"], owner = "web-team" }
}

# The web servers are real Debian 12 hosts people log into (built once with debootstrap, then
# cloned in a second); the load balancers stay busybox, which is where speed matters.
host_class "web" {
  count        = var.web_count
  cpu          = 1
  memory       = "256MiB"
  disk         = "2GiB"
  image        = "debian-12"
  network      = "lab"
  tags         = ["web"]
  properties   = { env = "quickstart" }
  puppet_roles = ["role::web"]

  login {
    user     = "ops"
    ssh_keys = var.ops_ssh_keys # scripts/quickstart.sh passes your ~/.ssh/id_ed25519.pub
    sudo     = true
  }
  first_boot = ["echo \"$KLOUD_FQDN ($KLOUD_CLASS: $KLOUD_ROLES) booted\" > /etc/motd"]

  placement {
    max_per  = { machine = 2 } # at most two web servers on one machine
    strategy = "spread"
  }
}

host_class "lb" {
  count        = 2
  cpu          = 1
  memory       = "64MiB"
  disk         = "1GiB"
  image        = "busybox"
  network      = "lab"
  puppet_roles = ["role::haproxy"]

  placement {
    max_per = { switch = 1 } # not more than one load balancer behind one switch
  }
}

provider "prometheus" {
  file_sd = ".kloud/prometheus/targets.json"
  port    = 9100
}

provider "puppet" {
  environment = "production"
}
