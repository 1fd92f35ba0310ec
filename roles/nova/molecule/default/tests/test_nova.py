"""Nova's services are up, the compute host is discovered into cell1 and reported to
Placement with its inventory, and the scheduler filters the accelerators need are on."""


def test_every_nova_service_is_up(openstack):
    services = {s["Binary"]: s for s in openstack("compute", "service", "list")}
    for binary in ("nova-scheduler", "nova-conductor", "nova-compute"):
        assert services[binary]["State"] == "up", services


def test_the_host_is_a_hypervisor_in_placement(openstack, placement):
    hypervisors = openstack("hypervisor", "list")
    assert len(hypervisors) == 1 and hypervisors[0]["State"] == "up"
    providers = placement("/resource_providers")["resource_providers"]
    assert [p["name"] for p in providers] == [hypervisors[0]["Hypervisor Hostname"]]
    inventory = placement(f"/resource_providers/{providers[0]['uuid']}/inventories")
    assert {"VCPU", "MEMORY_MB"} <= set(inventory["inventories"])


def test_cells_are_set_up_and_the_host_mapped(host):
    cells = host.run("nova-manage cell_v2 list_cells")
    assert cells.rc == 0 and "cell0" in cells.stdout and "cell1" in cells.stdout
    hosts = host.run("nova-manage cell_v2 list_hosts")
    assert host.check_output("hostname") in hosts.stdout


def test_scheduler_filters_for_accelerators_are_enabled(host):
    conf = host.file("/etc/nova/nova.conf").content_string
    line = next(x for x in conf.splitlines() if x.startswith("enabled_filters"))
    assert "PciPassthroughFilter" in line and "NUMATopologyFilter" in line


def test_upgrade_check_passes(host):
    result = host.run("nova-status upgrade check")
    assert result.rc == 0, result.stdout + result.stderr
