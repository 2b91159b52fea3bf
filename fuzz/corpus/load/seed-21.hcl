kloud {
  domain = "other.example"
}
