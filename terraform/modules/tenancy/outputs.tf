output "flavors" {
  description = "Flavor IDs by name."
  value       = { for name, f in openstack_compute_flavor_v2.this : name => f.id }
}

output "networks" {
  description = "SR-IOV provider network IDs by name."
  value       = { for name, n in openstack_networking_network_v2.sriov : name => n.id }
}
