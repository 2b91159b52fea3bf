#!/usr/bin/env python3
"""Writes the corpus of invalid configs under tests/configs/invalid/ (one directory each).

Each case is the valid base config below with a mutation. The expected diagnostics of every case
are insta snapshots (tests/snapshots/config_corpus__*.snap): regenerate the corpus with this
script, then review the snapshots with `INSTA_UPDATE=always cargo test --test config_corpus`.
"""
import os, shutil

BASE = '''kloud {
  domain = "t.example"
}

variable "web_count" {
  default = 2
}

machine_class "m" {
  cpu    = 8
  memory = "16GiB"
  disk   = "100GiB"
}

machines "g" {
  class   = "m"
  count   = 2
  labels  = { rack = "r1", switch = "s1" }
  connect = "local"
}

network "n" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
}

tag "t" {
  properties = { a = 1 }
}

host_class "web" {
  count   = var.web_count
  cpu     = 1
  memory  = "1GiB"
  disk    = "10GiB"
  image   = "busybox"
  network = "n"
  tags    = ["t"]

  placement {
    max_per  = { machine = 1 }
    strategy = "pack"
  }
}
'''

def sub(*pairs, base=BASE):
    s = base
    for a, b in pairs:
        assert a in s, a
        s = s.replace(a, b, 1)
    return s

CASES = {
  # --- single errors ---
  "syntax_missing_brace": {"main.hcl": sub(('  disk   = "100GiB"\n}', '  disk   = "100GiB"\n'))},
  "syntax_double_equals": {"main.hcl": sub(("cpu    = 8", "cpu    = = 8"))},
  "unknown_block": {"main.hcl": BASE + '\nhostclass "x" {\n  count = 1\n}\n'},
  "unknown_attribute": {"main.hcl": sub(('memory = "16GiB"', 'memroy = "16GiB"'))},
  "unknown_placement_attribute": {"main.hcl": sub(("max_per  =", "max_pr   ="))},
  "unknown_nested_block": {"main.hcl": sub(("  placement {", "  placment {"))},
  "attribute_written_as_block": {"main.hcl": sub(('  tags    = ["t"]\n', '  tags    = ["t"]\n  properties {\n    a = 1\n  }\n'))},
  "top_level_attribute": {"main.hcl": 'domain = "x"\n' + BASE},
  "duplicate_attribute": {"main.hcl": sub(("  cpu     = 1\n", "  cpu     = 1\n  cpu     = 2\n"))},
  "wrong_type_count": {"main.hcl": sub(("count   = var.web_count", 'count   = "two"'))},
  "wrong_type_tags": {"main.hcl": sub(('tags    = ["t"]', 'tags    = "t"'))},
  "wrong_type_labels": {"main.hcl": sub(('labels  = { rack = "r1", switch = "s1" }', 'labels  = ["r1"]'))},
  "missing_image": {"main.hcl": sub(('  image   = "busybox"\n', ''))},
  "missing_kloud_block": {"main.hcl": sub(('kloud {\n  domain = "t.example"\n}\n', ''))},
  "duplicate_class_across_files": {"main.hcl": BASE, "more.hcl": 'host_class "web" {\n  count   = 1\n  cpu     = 1\n  memory  = 512\n  disk    = 5\n  image   = "busybox"\n  network = "n"\n}\n'},
  "duplicate_kloud_block": {"main.hcl": BASE, "second.hcl": 'kloud {\n  domain = "other.example"\n}\n'},
  "bad_size_unit": {"main.hcl": sub(('memory  = "1GiB"', 'memory  = "1GB"'))},
  "bad_size_fraction": {"main.hcl": sub(('disk    = "10GiB"', 'disk    = "512MiB"'))},
  "negative_count": {"main.hcl": sub(("count   = var.web_count", "count   = -1"))},
  "bad_cpu_too_fine": {"main.hcl": sub(("cpu     = 1", "cpu     = 0.0005"))},
  "bad_cpu_negative": {"main.hcl": sub(("cpu     = 1", "cpu     = -0.5"))},
  "bad_cpu_string": {"main.hcl": sub(("cpu    = 8", 'cpu    = "eight cores"'))},
  "bad_cpu_millicores": {"main.hcl": sub(("cpu    = 8", 'cpu    = "1.5m"'))},
  "bad_overcommit_below_one": {"main.hcl": sub(('  disk   = "100GiB"\n', '  disk   = "100GiB"\n  overcommit = { cpu = 0.5 }\n'))},
  "bad_overcommit_not_a_number": {"main.hcl": sub(('  disk   = "100GiB"\n', '  disk   = "100GiB"\n  overcommit = { cpu = "lots" }\n'))},
  "bad_overcommit_unknown_key": {"main.hcl": sub(('  disk   = "100GiB"\n', '  disk   = "100GiB"\n  overcommit = { cpu = 2, memory = 2 }\n'))},
  "bad_overcommit_not_an_object": {"main.hcl": sub(('  disk   = "100GiB"\n', '  disk   = "100GiB"\n  overcommit = 2\n'))},
  "invalid_class_name": {"main.hcl": sub(('host_class "web"', 'host_class "Web_1"'))},
  "invalid_rendered_name": {"main.hcl": sub(('  image   = "busybox"\n', '  image   = "busybox"\n  name    = "web_{{ index }}"\n'))},
  "template_undefined_variable": {"main.hcl": sub(('  image   = "busybox"\n', '  image   = "busybox"\n  name    = "web-{{ idx }}"\n'))},
  "template_syntax": {"main.hcl": sub(('  image   = "busybox"\n', '  image   = "busybox"\n  name    = "web-{{ index "\n'))},
  "undefined_machine_class": {"main.hcl": sub(('class   = "m"', 'class   = "n1"'))},
  "undefined_network": {"main.hcl": sub(('network = "n"', 'network = "prod"'))},
  "undefined_tag": {"main.hcl": sub(('tags    = ["t"]', 'tags    = ["t", "tt"]'))},
  "undefined_variable": {"main.hcl": sub(("var.web_count", "var.wbe_count"))},
  "bare_identifier": {"main.hcl": sub(('network = "n"', 'network = n'))},
  "unknown_function": {"main.hcl": sub(('image   = "busybox"', 'image   = upper("busybox")'))},
  "env_not_set": {"main.hcl": sub(('image   = "busybox"', 'image   = env("KLOUD_TEST_SURELY_UNSET")'))},
  "unknown_max_per_key": {"main.hcl": sub(("max_per  = { machine = 1 }", "max_per  = { machine = 1, rak = 1 }"))},
  "max_per_zero": {"main.hcl": sub(("max_per  = { machine = 1 }", "max_per  = { machine = 0 }"))},
  "network_too_small": {"main.hcl": sub(('cidr    = "10.0.0.0/24"', 'cidr    = "10.0.0.0/30"'))},
  "duplicate_fqdn": {"main.hcl": BASE + '\nhost_class "api" {\n  count   = 1\n  cpu     = 1\n  memory  = "1GiB"\n  disk    = "10GiB"\n  image   = "busybox"\n  network = "n"\n  name    = "web-{{ index }}"\n}\n'},
  "machine_name_clash": {"main.hcl": sub(('  connect = "local"\n', '  connect = "local"\n  name    = "web-{{ index }}"\n'))},
  "unknown_provider": {"main.hcl": BASE + '\nprovider "dnss" {\n  server = "127.0.0.1:53"\n}\n'},
  "provider_missing_attribute": {"main.hcl": BASE + '\nprovider "dns" {\n  server   = "127.0.0.1:53"\n  key_name = "k"\n  secret   = "s"\n}\n'},
  "provider_wrong_type": {"main.hcl": BASE + '\nprovider "prometheus" {\n  port = "ninety"\n}\n'},
  "provider_unknown_attribute": {"main.hcl": BASE + '\nprovider "puppet" {\n  enviroment = "production"\n}\n'},
  "bad_strategy": {"main.hcl": sub(('strategy = "pack"', 'strategy = "packed"'))},
  "bad_cidr": {"main.hcl": sub(('cidr    = "10.0.0.0/24"', 'cidr    = "10.0.0.0/33"'))},
  "gateway_outside_network": {"main.hcl": sub(('gateway = "10.0.0.1"', 'gateway = "10.1.0.1"'))},
  "bad_connect": {"main.hcl": sub(('connect = "local"', 'connect = "telnet://{{ name }}"'))},
  "bad_connect_port": {"main.hcl": sub(('connect = "local"', 'connect = "ssh://root@{{ name }}:99999"'))},
  "unknown_driver": {"main.hcl": sub(('  connect = "local"\n', '  connect = "local"\n  driver  = "docker"\n'))},
  "bad_var_override": {"main.hcl": BASE, "vars": "web_count=many\n"},
  "unknown_var_override": {"main.hcl": BASE, "vars": "web_cnt=3\n"},
  "missing_variable_value": {"main.hcl": sub(("variable \"web_count\" {\n  default = 2\n}", "variable \"web_count\" {\n  description = \"no default\"\n}"))},
  "block_without_label": {"main.hcl": sub(('network "n" {', 'network {'))},
  "eval_type_error": {"main.hcl": sub(("count   = var.web_count", 'count   = "a" + 1'))},
  "invalid_domain": {"main.hcl": sub(('domain = "t.example"', 'domain = "t..example"'))},
  "bad_hostdb_url": {"main.hcl": sub(('domain = "t.example"', 'domain = "t.example"\n  hostdb = "mysql://db"'))},
  "empty_directory": {"README": "no hcl here\n"},
  "driver_no_machine_runs": {"main.hcl": sub(('  tags    = ["t"]\n', '  tags    = ["t"]\n  driver  = "openvz"\n'))},
  # --- several errors at once ---
  "multi_unknown_attributes": {"main.hcl": sub(('memory = "16GiB"', 'memroy = "16GiB"'), ('cidr    =', 'cdir    ='), ('image   = "busybox"', 'imag    = "busybox"'))},
  "multi_missing_and_undefined": {"main.hcl": sub(('  image   = "busybox"\n', ''), ('network = "n"', 'network = "prod"'), ('memory  = "1GiB"', 'memory  = "1GB"'))},
  "multi_across_files": {"main.hcl": BASE + '\nhostclass "x" {\n}\n', "extra.hcl": 'tag "t" {\n}\n\nnetwork "n2" {\n  cidr = "nope"\n}\n'},
  "multi_syntax_and_semantic": {"main.hcl": BASE, "broken.hcl": 'machine_class "x" {\n  cpu = \n}\n', "bad.hcl": 'host_class "db" {\n  count   = 1\n  cpu     = 1\n  memory  = "1GiB"\n  disk    = "1GiB"\n  image   = "busybox"\n  network = "nope"\n}\n'},
  "multi_references": {"main.hcl": sub(("var.web_count", "var.count"), ('tags    = ["t"]', 'tags    = ["x"]'), ('strategy = "pack"', 'strategy = "fill"'))},
  "multi_types": {"main.hcl": sub(("cpu    = 8", 'cpu    = "eight"'), ('labels  = { rack = "r1", switch = "s1" }', 'labels  = { rack = 1 }'), ('tags    = ["t"]', 'tags    = [1, 2]'), ('properties = { a = 1 }', 'properties = "a"'))},
  "multi_providers_and_classes": {"main.hcl": sub(("count   = var.web_count", "count   = -3")) + '\nprovider "dns" {\n  zone = 5\n}\n\nprovider "nagio" {\n}\n'},
  "multi_names_and_cidr": {"main.hcl": sub(('host_class "web"', 'host_class "-web"'), ('cidr    = "10.0.0.0/24"', 'cidr    = "10.0.0.300/24"'), ('machines "g"', 'machines "G"'))},
  "multi_fqdn_and_capacity": {"main.hcl": sub(('cidr    = "10.0.0.0/24"', 'cidr    = "10.0.0.0/29"'), ('count   = var.web_count', 'count   = 5')) + '\nhost_class "api" {\n  count   = 3\n  cpu     = 1\n  memory  = "1GiB"\n  disk    = "10GiB"\n  image   = "busybox"\n  network = "n"\n  name    = "web-{{ index }}"\n}\n'},
  "multi_rules": {"main.hcl": sub(("max_per  = { machine = 1 }", "max_per  = { machine = 1, rack = 1, row = 2 }"), ('strategy = "pack"', 'strategy = "spred"'))},
  "multi_no_kloud": {"main.hcl": sub(('kloud {\n  domain = "t.example"\n}\n', ''), ('class   = "m"', 'class   = "big"'))},
  "multi_expressions": {"main.hcl": sub(('image   = "busybox"', 'image   = lower(env("X"))'), ('network = "n"', 'network = n'), ('cpu     = 1', 'cpu     = var.cpus'))},
  "multi_everything_in_one_block": {"main.hcl": sub(('  count   = var.web_count\n  cpu     = 1\n  memory  = "1GiB"\n  disk    = "10GiB"\n  image   = "busybox"\n  network = "n"\n', '  count   = -1\n  cpu     = "x"\n  memory  = "lots"\n  disk    = "10 GB"\n  network = "m"\n  colour  = "red"\n'))},
  "multi_duplicates": {"main.hcl": BASE + '\nnetwork "n" {\n  cidr = "10.1.0.0/24"\n}\n\ntag "t" {\n}\n\nmachine_class "m" {\n  cpu    = 1\n  memory = 1024\n  disk   = 10\n}\n'},
}

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "invalid")
shutil.rmtree(out, ignore_errors=True)
for name, files in CASES.items():
    d = os.path.join(out, name)
    os.makedirs(d)
    for fname, text in files.items():
        with open(os.path.join(d, fname), "w") as f:
            f.write(text)
print(len(CASES), "cases;", sum(1 for n in CASES if n.startswith("multi_")), "with several errors")
