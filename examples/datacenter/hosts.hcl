variable "web_count" {
  default = 24
}

tag "web" {
  properties = { nagios_checks = ["http"], owner = "web-team" }
}

tag "checkout" {
  properties = { team = "checkout", pager = "checkout-oncall" }
}

tag "storage" {
  properties = { backup = true, nagios_checks = ["disk", "mysql"] }
}

host_class "web" {
  count        = var.web_count
  cpu          = 4
  memory       = "8GiB"
  disk         = "40GiB"
  image        = "debian-12"
  network      = "prod"
  name         = "web-{{ index }}"
  tags         = ["web", "checkout"]
  properties   = { env = "prod" }
  puppet_roles = ["role::nginx"]

  placement {
    max_per  = { machine = 2, switch = 8 } # not more than two web servers on one machine
    strategy = "spread"
  }
}

host_class "lb" {
  count        = 4
  cpu          = 2
  memory       = "2GiB"
  disk         = "10GiB"
  image        = "debian-12"
  network      = "prod"
  puppet_roles = ["role::haproxy"]

  placement {
    max_per = { switch = 1 } # not more than one load balancer on the same switch
  }
}

host_class "app" {
  count        = var.web_count * 2
  cpu          = 8
  memory       = "16GiB"
  disk         = "80GiB"
  image        = "debian-12"
  network      = "prod"
  tags         = ["checkout"]
  puppet_roles = ["role::tomcat"]

  placement {
    max_per = { machine = 3 }
  }
}

host_class "db" {
  count        = 6
  cpu          = 16
  memory       = "48GiB"
  disk         = "1TiB"
  image        = "debian-12"
  network      = "prod"
  name         = "mysql-{{ index }}"
  tags         = ["storage"]
  puppet_roles = ["role::mysql"]

  placement {
    max_per = { machine = 1, rack = 3 }
  }
}
