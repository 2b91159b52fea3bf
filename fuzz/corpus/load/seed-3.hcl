tag "web" {
  properties = { nagios_checks = ["http"], owner = "web-team" }
}

host_class "web" {
  count        = var.web_count
  cpu          = 1
  memory       = "128MiB"
  disk         = "1GiB"
  image        = "busybox"
  network      = "lab"
  tags         = ["web"]
  properties   = { env = "quickstart" }
  puppet_roles = ["role::web"]

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
