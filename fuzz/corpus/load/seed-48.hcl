kloud {
  domain = "t.example"
}

variable "web_count" {
  default = 2
}

machine_class "m" {
  cpu    = "eight"
  memory = "16GiB"
  disk   = "100GiB"
}

machines "g" {
  class   = "m"
  count   = 2
  labels  = { rack = 1 }
  connect = "local"
}

network "n" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
}

tag "t" {
  properties = "a"
}

host_class "web" {
  count   = var.web_count
  cpu     = 1
  memory  = "1GiB"
  disk    = "10GiB"
  image   = "busybox"
  network = "n"
  tags    = [1, 2]

  placement {
    max_per  = { machine = 1 }
    strategy = "pack"
  }
}
