# The provider finds the cloud through OS_CLOUD, OS_CLIENT_CONFIG_FILE and
# OS_CLIENT_SECURE_FILE, which sovdeploy sets: nothing secret is in the configuration.
resource "openstack_compute_flavor_v2" "this" {
  for_each = { for f in var.flavors : f.name => f }

  name        = each.key
  vcpus       = each.value.vcpus
  ram         = each.value.ram
  disk        = each.value.disk
  description = each.value.description
  is_public   = true
  extra_specs = each.value.extra_specs
}
