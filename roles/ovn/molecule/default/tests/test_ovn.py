"""OVN's databases answer on the internal address, the host is a registered gateway
chassis on the userspace datapath, and a logical switch written to the northbound
database reaches the southbound one through northd."""

import json
import time

import pytest


def _ctl(host, tool, address, port):
    def run(*args):
        result = host.run(f"{tool} --db=tcp:{address}:{port} " + " ".join(args))
        assert result.rc == 0, result.stderr
        return result.stdout

    return run


@pytest.fixture
def nbctl(host, address):
    return _ctl(host, "ovn-nbctl", address, 6641)


@pytest.fixture
def sbctl(host, address):
    return _ctl(host, "ovn-sbctl", address, 6642)


def test_databases_listen_on_the_internal_address(host, address):
    assert host.socket(f"tcp://{address}:6641").is_listening
    assert host.socket(f"tcp://{address}:6642").is_listening


def test_the_host_is_a_gateway_chassis_with_a_geneve_tunnel_on_its_address(host, address, sbctl):
    hostname = host.check_output("hostname")
    chassis = json.loads(sbctl("--format=json", "--columns=hostname,encaps", "list", "Chassis"))
    assert [row[0] for row in chassis["data"]] == [hostname]
    encap = sbctl("--bare", "--columns=type,ip", "list", "Encap").split()
    assert encap == ["geneve", address]
    other = host.check_output("ovs-vsctl get open_vswitch . external_ids:ovn-cms-options")
    assert "enable-chassis-as-gw" in other


def test_bridges_use_the_userspace_datapath(host):
    for bridge in ("br-int", "br-ex"):
        assert host.check_output("ovs-vsctl get bridge %s datapath_type", bridge) == "netdev"
    mappings = host.check_output("ovs-vsctl get open_vswitch . external_ids:ovn-bridge-mappings")
    assert "physnet1:br-ex" in mappings


def test_northd_carries_a_logical_switch_to_the_southbound_database(nbctl, sbctl):
    nbctl("--may-exist", "ls-add", "molecule-probe")
    try:
        uuid = nbctl("--bare", "--columns=_uuid", "find", "Logical_Switch", "name=molecule-probe")
        # northd names the switch's datapath after it (which column depends on OVN's version).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            datapaths = sbctl("list", "Datapath_Binding")
            if uuid.strip() in datapaths or "molecule-probe" in datapaths:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no datapath for the switch after 30 s: {datapaths}")
    finally:
        nbctl("--if-exists", "ls-del", "molecule-probe")
