output "hosts" {
  description = "Deployed hosts by name: Ironic node UUID and provision state."
  value = {
    for name, node in ironic_node_v1.host : name => {
      uuid            = node.id
      provision_state = ironic_deployment.host[name].provision_state
      groups          = local.hosts[name].groups
    }
  }
}
