output "flavors" {
  description = "Flavor IDs by name."
  value       = { for name, f in openstack_compute_flavor_v2.this : name => f.id }
}
