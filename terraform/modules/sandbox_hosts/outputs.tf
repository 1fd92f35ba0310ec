output "hosts" {
  description = "Created hosts by name: address on the podman network, container name (null for a VM), whether it is a VM."
  value = {
    for name, host in local.hosts : name => {
      address   = host.address
      container = host.vm ? null : terraform_data.host[name].input.name
      groups    = host.groups
      vm        = host.vm
    }
  }
}

output "network" {
  description = "The podman network and its subnet."
  value = {
    name   = terraform_data.network.input.name
    subnet = terraform_data.network.input.subnet
  }
}
