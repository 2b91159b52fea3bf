machine_class "x" {
  cpu = 
}
