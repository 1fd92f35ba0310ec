"""Neutron's agents are alive, and a network and router created through the API
become logical switches and routers in OVN's northbound database."""


def test_ovn_agents_are_alive(openstack):
    agents = openstack("network", "agent", "list")
    kinds = {a["Agent Type"] for a in agents if a["Alive"]}
    assert "OVN Metadata agent" in kinds, agents
    assert any(k.startswith("OVN Controller") for k in kinds), agents


def test_network_and_router_reach_ovn(host, openstack, address):
    net = openstack("network", "create", "molecule-probe")
    try:
        openstack(
            "subnet",
            "create",
            "--network",
            net["id"],
            "--subnet-range",
            "192.0.2.0/24",
            "molecule-probe",
        )
        router = openstack("router", "create", "molecule-probe")
        try:
            nb = f"ovn-nbctl --db=tcp:{address}:6641"
            switches = host.check_output(f"{nb} --bare --columns=name list Logical_Switch")
            assert f"neutron-{net['id']}" in switches.split()
            routers = host.check_output(f"{nb} --bare --columns=name list Logical_Router")
            assert f"neutron-{router['id']}" in routers.split()
        finally:
            openstack("router", "delete", router["id"], parse=False)
    finally:
        openstack("network", "delete", net["id"], parse=False)


def test_api_is_served_through_haproxy(http_get, address):
    status, body = http_get(f"https://{address}:9696/")
    assert status == 200
    assert '"versions"' in body
