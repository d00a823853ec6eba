# /etc/yurt.d/yurt.hcl — default production configuration for a yurt agent.
#
# yurt reads every *.hcl and *.json file in /etc/yurt.d in lexical order; later files
# override earlier ones (scalars replace, maps like `meta` merge, plugin blocks merge by
# name). Drop site-specific overrides into e.g. /etc/yurt.d/50-site.hcl rather than
# editing this file. Keys are Nomad's; unknown keys are logged and ignored.

# Where server state (jobs, allocations, …) and client state (allocation dirs, the
# client state db) live. Must survive reboots.
data_dir = "/var/lib/yurt"

# Address every listener binds to, unless `addresses` below says otherwise.
bind_addr = "0.0.0.0"

region     = "global"
datacenter = "dc1"

# TRACE, DEBUG, INFO, WARN or ERROR. `log_json = true` emits one JSON object per line.
log_level = "INFO"
log_json  = false

ports {
  http = 4646 # HTTP API (what NOMAD_ADDR points at)
  rpc  = 4647 # server RPC, used by clients to register and heartbeat
}

# Uncomment to expose the HTTP API on loopback only while RPC stays reachable:
# addresses {
#   http = "127.0.0.1"
# }

# Addresses other agents should use to reach this one, when bind_addr is 0.0.0.0.
# advertise {
#   http = "10.0.0.5"
#   rpc  = "10.0.0.5"
# }

# Enable on the machine(s) that run the bundled server.
server {
  enabled = false
  # heartbeat_grace   = "10s"
  # min_heartbeat_ttl = "10s"
}

# Enable on every worker machine.
client {
  enabled = true

  # Server RPC addresses to register with.
  servers = ["127.0.0.1:4647"]

  # node_class = "general"
  # node_pool  = "default"
  # network_interface = "eth0"

  # meta {
  #   rack = "r1"
  # }

  # Resources withheld from tasks for the OS and the agent itself.
  reserved {
    cpu            = 100  # MHz
    memory         = 256  # MB
    disk           = 1024 # MB
    reserved_ports = "22"
  }

  # How often terminal allocations are garbage collected.
  gc_interval = "1m"
}

# Task drivers. raw_exec runs tasks without isolation and is therefore off by default.
plugin "raw_exec" {
  config {
    enabled = false
  }
}

# plugin "docker" {
#   config {
#     allow_privileged = false
#   }
# }

acl {
  enabled = false
}

# TLS on the HTTP API and the RPC port (docs/configuration.md, "TLS"). The RPC port then
# requires client certificates signed by ca_file.
# tls {
#   http = true
#   rpc  = true
#   ca_file   = "/etc/yurt.d/tls/ca.pem"
#   cert_file = "/etc/yurt.d/tls/agent.pem"
#   key_file  = "/etc/yurt.d/tls/agent-key.pem"
#   verify_server_hostname = true
#   verify_https_client    = false
# }
