"""The role left each node enrolled as declared and deployed, in a real Ironic.

Ironic runs in the instance (standalone, fake-hardware: see prepare.yml); its API is
asked directly, not through the role's own modules.
"""

import json

import pytest

NODES = {
    "bm-ctl1": ("52:54:00:aa:00:01", "https://10.20.0.11/redfish/v1/Systems/1"),
    "bm-cmp1": ("52:54:00:aa:00:02", "https://10.20.0.12/redfish/v1/Systems/1"),
}
IMAGE = "http://mirror.lab.invalid/files/debian-13-genericcloud-amd64.qcow2"


def api(host, path):
    script = (
        "import json, sys, urllib.request; "
        "r = urllib.request.Request('http://127.0.0.1:6385/v1' + sys.argv[1], "
        "headers={'X-OpenStack-Ironic-API-Version': '1.80'}); "
        "print(urllib.request.urlopen(r).read().decode())"
    )
    result = host.run("python3 -c %s %s", script, path)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(NODES))
def test_the_node_is_active_with_its_bmc_and_class(host, name):
    node = api(host, f"/nodes/{name}")
    assert node["provision_state"] == "active", node["last_error"]
    # (fake-hardware's deploy does not power the node on: its power state says nothing)
    assert node["driver"] == "fake-hardware"
    assert node["resource_class"] == "baremetal"
    info = node["driver_info"]
    assert info["redfish_address"] == NODES[name][1]
    assert info["redfish_username"] == "sovdeploy"
    # Ironic holds the password and never shows it.
    assert set(info["redfish_password"]) == {"*"}


def test_declared_properties_are_set(host):
    assert api(host, "/nodes/bm-ctl1")["properties"].get("cpu_arch") == "x86_64"


@pytest.mark.parametrize("name", sorted(NODES))
def test_the_boot_nic_is_the_nodes_only_port(host, name):
    node = api(host, f"/nodes/{name}")
    ports = api(host, f"/nodes/{node['uuid']}/ports?detail=True")["ports"]
    assert [p["address"] for p in ports] == [NODES[name][0]]


@pytest.mark.parametrize("name", sorted(NODES))
def test_the_image_and_config_drive_were_given(host, name):
    node = api(host, f"/nodes/{name}")
    assert node["instance_info"]["image_source"] == IMAGE
    assert node["instance_info"]["image_checksum"] == (
        "7d3b3d0c1a2f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d"
    )
    # The config drive Ironic built from the role's meta_data and user_data.
    assert node["instance_info"].get("configdrive") or node["instance_info"].get("config_drive"), (
        sorted(node["instance_info"])
    )
