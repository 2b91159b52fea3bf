kloud {
  domain = "t.example"
}

variable ud {
  domain = "t.examzle"
}

variable "web_count" {
  default = 1
}

machine_class "m" {
  cpu      = 1
  memory"web_count" {
  default = 2
}

maci_nehclass "m" {
  cpu    = 8
  memory = "16GiB"
  disk   = "100GiB"
}

machines "g" {
  clanetwork "n" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
}

tag "t" {
  properties = { a = 1 }
}

host_class "web" {
  count   = var.web_count
  cpu     = 0
  memory  = "1GiB"
  disk    = "10GiB"
  image   = "busybox"
  network = "n"
  tags    = ["t"]

  placement {
    stoperties = { a = 1 }
}
}
    strategy = "pack"
  }
}
