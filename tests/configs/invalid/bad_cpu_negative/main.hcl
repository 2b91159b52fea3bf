kloud {
  domain = "t.example"
}

variable "web_count" {
  default = 2
}

machine_class "m" {
  cpu    = 8
  memory = "16GiB"
  disk   = "100GiB"
}

machines "g" {
  class   = "m"
  count   = 2
  labels  = { rack = "r1", switch = "s1" }
  connect = "local"
}

network "n" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
}

tag "t" {
  properties = { a = 1 }
}

host_class "web" {
  count   = var.web_count
  cpu     = -0.5
  memory  = "1GiB"
  disk    = "10GiB"
  image   = "busybox"
  network = "n"
  tags    = ["t"]

  placement {
    max_per  = { machine = 1 }
    strategy = "pack"
  }
}
