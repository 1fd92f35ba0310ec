# Two sandbox hosts on their own podman network.
module "sandbox" {
  source = "../.."

  deployment          = "example"
  network             = "example-net"
  subnet              = "10.89.50.0/24"
  image               = "localhost/sovdeploy/debian13-sandbox:latest"
  ssh_authorized_keys = "/root/.ssh/authorized_keys"
  containers_conf     = "/etc/containers/containers.conf"
  hosts = [
    { name = "ctl1", groups = ["control"] },
    { name = "cmp1", groups = ["compute"] },
  ]
}

output "hosts" {
  description = "The created hosts."
  value       = module.sandbox.hosts
}
