"""The derived flavors exist, public, with their sizes and extra specs; the SR-IOV
provider networks exist on their physnet, with their subnet."""


def test_each_flavor_has_its_size_and_specs(openstack):
    gpu = openstack("flavor", "show", "gpu.h100-sxm5-80gb.x2")
    assert (gpu["vcpus"], gpu["ram"], gpu["disk"]) == (2, 512, 1)
    assert gpu["properties"] == {"pci_passthrough:alias": "h100-sxm5-80gb:2"}
    assert gpu["os-flavor-access:is_public"] is True
    assert gpu["description"] == "2 x NVIDIA H100 SXM5 80GB"
    dpdk = openstack("flavor", "show", "dpdk.2m")
    assert dpdk["properties"] == {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "2MB"}


def test_the_flavor_list_shows_them(openstack):
    names = {f["Name"] for f in openstack("flavor", "list")}
    assert {"gpu.h100-sxm5-80gb.x2", "dpdk.2m"} <= names


def test_each_network_sits_on_its_physnet_with_its_subnet(openstack):
    vlan = openstack("network", "show", "sriov-vlan")
    assert vlan["provider:network_type"] == "vlan"
    assert vlan["provider:physical_network"] == "physnet1"
    assert vlan["provider:segmentation_id"] == 101
    assert vlan["shared"] is True and vlan["router:external"] is False
    subnet = openstack("subnet", "show", "sriov-vlan")
    assert (subnet["cidr"], subnet["gateway_ip"], subnet["enable_dhcp"]) == (
        "10.99.1.0/24",
        "10.99.1.1",
        True,
    )
    flat = openstack("network", "show", "sriov-flat")
    assert flat["provider:network_type"] == "flat" and flat["shared"] is False
    subnet = openstack("subnet", "show", "sriov-flat")
    assert subnet["gateway_ip"] is None and subnet["enable_dhcp"] is False
