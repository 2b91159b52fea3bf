host_class "db" {
  count   = 1
  cpu     = 1
  memory  = "1GiB"
  disk    = "1GiB"
  image   = "busybox"
  network = "nope"
}
