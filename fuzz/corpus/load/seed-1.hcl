# The talk's fleet: standardised hardware in four racks behind two switches each.
# App class: 32 cores / 128 GiB. Database class: 24 cores / 64 GiB.

kloud {
  domain = "dc1.example.internal"
  hostdb = "sqlite:.kloud/hostdb.db"
}

machine_class "app" {
  cpu    = 32
  memory = "128GiB"
  disk   = "2TiB"
}

machine_class "database" {
  cpu    = 24
  memory = "64GiB"
  disk   = "4TiB"
}

machines "r1a" {
  class  = "app"
  count  = 5
  name   = "hw-r1a-{{ index }}"
  labels = { rack = "r1", switch = "sw-r1a", row = "a" }
}

machines "r1b" {
  class  = "app"
  count  = 5
  name   = "hw-r1b-{{ index }}"
  labels = { rack = "r1", switch = "sw-r1b", row = "a" }
}

machines "r2a" {
  class  = "app"
  count  = 5
  name   = "hw-r2a-{{ index }}"
  labels = { rack = "r2", switch = "sw-r2a", row = "a" }
}

machines "r2b" {
  class  = "app"
  count  = 5
  name   = "hw-r2b-{{ index }}"
  labels = { rack = "r2", switch = "sw-r2b", row = "a" }
}

machines "r3db" {
  class  = "database"
  count  = 4
  name   = "hw-r3db-{{ index }}"
  labels = { rack = "r3", switch = "sw-r3", row = "b" }
}

machines "r4db" {
  class  = "database"
  count  = 4
  name   = "hw-r4db-{{ index }}"
  labels = { rack = "r4", switch = "sw-r4", row = "b" }
}

network "prod" {
  cidr    = "10.40.0.0/16"
  gateway = "10.40.0.1"
}
