tag "t" {
}

network "n2" {
  cidr = "nope"
}
