output "hosts" {
  description = "Created hosts by name: address on the podman network and container name."
  value = {
    for name, host in local.hosts : name => {
      address   = host.address
      container = terraform_data.host[name].input.name
      groups    = host.groups
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
