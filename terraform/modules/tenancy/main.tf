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

resource "openstack_networking_network_v2" "sriov" {
  for_each = { for n in var.networks : n.name => n }

  name     = each.key
  shared   = each.value.shared
  external = false

  segments {
    physical_network = each.value.physnet
    network_type     = each.value.type
    segmentation_id  = each.value.vlan
  }
}

resource "openstack_networking_subnet_v2" "sriov" {
  for_each = { for n in var.networks : n.name => n }

  name       = each.key
  network_id = openstack_networking_network_v2.sriov[each.key].id
  cidr       = each.value.cidr
  ip_version = 4
  gateway_ip = each.value.gateway
  # The provider refuses no_gateway beside gateway_ip, even when false: set one or the other.
  no_gateway  = each.value.gateway == null ? true : null
  enable_dhcp = each.value.dhcp
}
