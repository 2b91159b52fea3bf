host_class "web" {
  count   = 1
  cpu     = 1
  memory  = 512
  disk    = 5
  image   = "busybox"
  network = "n"
}
