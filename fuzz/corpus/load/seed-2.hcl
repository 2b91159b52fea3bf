provider "dns" {
  server   = "127.0.0.1:5353"
  zone     = "dc1.example.internal"
  key_name = "kloud"
  secret   = env("KLOUD_TSIG_SECRET") # secrets come from the environment, never shown in plans
}

provider "prometheus" {
  file_sd = "/var/lib/kloud/prometheus/targets.json"
  port    = 9100
}

provider "nagios" {
  dir = "/etc/nagios4/kloud"
}

provider "puppet" {
  environment = "production"
}
