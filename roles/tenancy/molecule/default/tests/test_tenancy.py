"""The derived flavors exist, public, with their sizes and extra specs."""


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
