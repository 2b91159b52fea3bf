# The quickstart: three "machines" that all live on this computer (connect = "local"), each
# keeping its containers apart in its own LXC path: Debian 12 web servers to log into, busybox
# load balancers.

kloud {
  domain = "qs.kloud.internal"
  hostdb = "sqlite:.kloud/hostdb.db" # relative to this directory
}

variable "web_count" {
  default     = 3
  description = "how many web servers to run"
}

variable "ops_ssh_keys" {
  default     = []
  description = "public keys of the people who log in to the web servers as `ops`"
}

machine_class "small" {
  cpu    = 2
  memory = "2GiB"
  disk   = "20GiB"
}

machines "a" {
  class   = "small"
  count   = 2
  name    = "node-a{{ index }}"
  labels  = { rack = "r1", switch = "sw-a" }
  driver  = "lxc"
  connect = "local"
}

machines "b" {
  class   = "small"
  count   = 1
  name    = "node-b{{ index }}"
  labels  = { rack = "r2", switch = "sw-b" }
  driver  = "lxc"
  connect = "local"
}

network "lab" {
  cidr    = "10.251.0.0/24"
  gateway = "10.251.0.1"
}
