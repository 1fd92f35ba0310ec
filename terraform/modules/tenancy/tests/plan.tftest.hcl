# Plan-mode tests with a mocked OpenStack provider. `terraform init` must still install
# the provider schema, so these run only where SOVDEPLOY_TF_PLUGIN_MIRROR names a mirror.

mock_provider "openstack" {}

variables {
  flavors = [
    {
      name        = "gpu.h100-sxm5-80gb.x1"
      vcpus       = 8
      ram         = 32768
      disk        = 80
      extra_specs = { "pci_passthrough:alias" = "h100-sxm5-80gb:1" }
      description = "1 x NVIDIA H100 SXM5 80GB"
    },
    {
      name        = "dpdk.1g"
      vcpus       = 8
      ram         = 32768
      disk        = 80
      extra_specs = { "hw:cpu_policy" = "dedicated", "hw:mem_page_size" = "1GB" }
    },
  ]
}

run "one_public_flavor_each_with_its_specs" {
  command = plan

  assert {
    condition     = length(openstack_compute_flavor_v2.this) == 2
    error_message = "one flavor per entry"
  }

  assert {
    condition     = openstack_compute_flavor_v2.this["gpu.h100-sxm5-80gb.x1"].extra_specs["pci_passthrough:alias"] == "h100-sxm5-80gb:1"
    error_message = "a GPU flavor asks for its PCI alias"
  }

  assert {
    condition     = openstack_compute_flavor_v2.this["dpdk.1g"].extra_specs["hw:mem_page_size"] == "1GB" && openstack_compute_flavor_v2.this["dpdk.1g"].is_public
    error_message = "the DPDK flavor is public, pinned and hugepage-backed"
  }
}

run "a_network_per_physnet_with_its_subnet" {
  command = plan

  variables {
    networks = [
      { name = "sriov-a", physnet = "physnet-sriov", type = "vlan", vlan = 101, cidr = "10.99.1.0/24", gateway = "10.99.1.1", dhcp = true, shared = true },
      { name = "sriov-b", physnet = "physnet-sriov", type = "flat", cidr = "10.99.2.0/24", dhcp = false, shared = false },
    ]
  }

  assert {
    condition     = one(openstack_networking_network_v2.sriov["sriov-a"].segments).segmentation_id == 101
    error_message = "a vlan network carries its VLAN ID"
  }

  assert {
    condition     = openstack_networking_subnet_v2.sriov["sriov-b"].no_gateway && !openstack_networking_subnet_v2.sriov["sriov-b"].enable_dhcp
    error_message = "a network without a gateway gets a subnet without one"
  }
}

run "rejects_a_vlan_network_without_its_id" {
  command = plan

  variables {
    networks = [{ name = "x", physnet = "p", type = "vlan", cidr = "10.99.3.0/24", dhcp = true, shared = true }]
  }

  expect_failures = [var.networks]
}

run "rejects_a_repeated_name" {
  command = plan

  variables {
    flavors = [
      { name = "a", vcpus = 1, ram = 256, disk = 1, extra_specs = {} },
      { name = "a", vcpus = 2, ram = 256, disk = 1, extra_specs = {} },
    ]
  }

  expect_failures = [var.flavors]
}
