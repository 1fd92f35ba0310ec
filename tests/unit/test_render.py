"""`sovdeploy plan` of the production example renders each host's configuration files
(without hosts, without the provider mirror) and shows the production shape: three
Galera controllers, HAProxy on the keepalived VIP, KVM on the compute hosts."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovdeploy import secrets
from sovdeploy.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONTROLLERS = {"ctl01": "10.10.0.11", "ctl02": "10.10.0.12", "ctl03": "10.20.0.11"}
VIP = "10.10.0.10"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("render")
    inventory = tmp / "example-eu"
    shutil.copytree(ROOT / "inventories" / "example-eu", inventory)
    env = {
        "SOVDEPLOY_VAULT_PASSWORD_FILE": str(tmp / "vault.pass"),
        "SOVDEPLOY_TF_PLUGIN_MIRROR": None,
    }
    runner = CliRunner(env=env)
    made = runner.invoke(main, ["secrets", "generate", "-i", str(inventory)])
    assert made.exit_code == 0, made.output
    result = runner.invoke(main, ["plan", "-i", str(inventory)], terminal_width=300)
    assert result.exit_code == 0, result.output
    return inventory, result.output


def _out(plan: tuple[Path, str]) -> Path:
    return plan[0] / ".sovdeploy" / "plan" / "openstack"


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(path.read_text())
    return parser


def test_plan_says_what_it_skips_and_what_it_rendered(plan):
    _, output = plan
    # Bare metal: the hosts Ironic would enroll, each with its BMC; Ironic is not asked.
    assert re.search(
        r"provision done .*would enroll 19 host\(s\) in Ironic and deploy https://", output
    ), output
    assert (
        "+ ctl01: redfish https://bmc-ctl01.oob.example-cloud.eu, boots from 52:54:00:10:00:01"
        in output
    )
    rendered = re.search(r"openstack done .*rendered (\d+) file\(s\) for (\d+) host\(s\)", output)
    assert rendered, output
    # 3 controllers, 4 compute and 3 storage hosts write files; network hosts set OVN
    # through ovs-vsctl only.
    assert int(rendered.group(2)) == 10
    assert "need the host's state" in output


def test_plan_lists_the_flavors_the_tenancy_phase_would_make(plan):
    _, output = plan
    assert "tenancy done" in output
    # The 13 SCS-0103 flavors a cloud without declared SSD root disks gets, and 6 for the
    # accelerators; the two SSD flavors are named as left out.
    assert "would ensure 19 flavor(s), 1 network(s) (openstack.cloud)" in output
    assert "SCS-0103 flavors not made: SCS-4V-16-100s, SCS-2V-4-20s" in output
    assert "network sriov-fabric: physnet-sriov vlan 2001, subnet 10.60.0.0/22" in output
    assert "flavor gpu.h100-sxm5-80gb.x8: 64 vCPU, 262144 MB, 80 GB; " in output
    assert "pci_passthrough:alias=h100-sxm5-80gb:8" in output
    assert "flavor vgpu.L40S-12C: " in output


def test_three_controllers_form_one_galera_cluster(plan):
    for host, address in CONTROLLERS.items():
        cnf = _ini(_out(plan) / host / "etc/mysql/mariadb.conf.d/99-sovdeploy.cnf")
        assert cnf["galera"]["wsrep_on"] == "ON"
        members = cnf["galera"]["wsrep_cluster_address"].removeprefix("gcomm://").split(",")
        assert sorted(members) == sorted(CONTROLLERS.values())
        assert cnf["galera"]["wsrep_node_address"] == address
        assert cnf["mysqld"]["bind-address"] == address


def test_haproxy_serves_every_api_on_the_vip_that_keepalived_moves(plan):
    priorities = set()
    for host in CONTROLLERS:
        cfg = (_out(plan) / host / "etc/haproxy/haproxy.cfg").read_text()
        binds = re.findall(r"^\s*bind (\S+):(\d+) ssl", cfg, re.M)
        assert {port for _, port in binds} >= {"5000", "9292", "8774", "9696", "8776", "8778"}
        assert {address for address, _ in binds} == {VIP}
        for address in CONTROLLERS.values():
            assert f" {address}:15000 check" in cfg  # every keystone backend
        keepalived = (_out(plan) / host / "etc/keepalived/keepalived.conf").read_text()
        assert f"{VIP} dev bond0.100" in keepalived
        priorities.add(re.search(r"priority (\d+)", keepalived).group(1))
    assert len(priorities) == 3


def test_compute_hosts_run_kvm_guests_on_rbd(plan):
    for host in ("gpu01", "gpu02"):
        conf = _ini(_out(plan) / host / "etc/nova/nova.conf")
        assert conf["libvirt"]["virt_type"] == "kvm"
        assert conf["libvirt"]["images_type"] == "rbd"
        transports = conf["DEFAULT"]["transport_url"].split(",")
        assert len(transports) == 3  # one RabbitMQ node per controller


def test_rendered_files_hold_placeholders_never_secrets(plan):
    inventory, _ = plan
    values = secrets.decrypt(
        secrets.vault_file(inventory), (inventory.parent / "vault.pass").read_bytes().strip()
    )
    assert secrets.scan(_out(plan), values) == []
    nova = (_out(plan) / "ctl01/etc/nova/nova.conf").read_text()
    assert "password = <vault:nova_keystone_password>" in nova
    # Inside a URL the placeholder is percent-encoded, as a real secret would be.
    assert "mysql+pymysql://nova:%3Cvault%3Anova_database_password%3E@" in nova
    for path in _out(plan).rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_nova_gets_the_accelerator_plans(plan):
    text = (_out(plan) / "gpu01/etc/nova/nova.conf").read_text()
    pci = text.split("[pci]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    specs = [json.loads(line.split(" = ", 1)[1]) for line in pci if line.startswith("device_spec")]
    assert {"vendor_id": "10de", "product_id": "2330"} in specs
    assert {"devname": "ens1f0np0", "physical_network": "physnet-sriov"} in specs
    assert 'alias = {"name": "h100-sxm5-80gb", ' in text
    assert "report_in_placement = true" in pci
    assert "cpu_dedicated_set = 2-55,58-111,114-167,170-223" in text
    # nova-api on the controllers resolves flavors' aliases; its scheduler asks Placement.
    control = (_out(plan) / "ctl01/etc/nova/nova.conf").read_text()
    assert 'alias = {"name": "h100-sxm5-80gb", ' in control
    assert "pci_in_placement = true" in control
    assert "device_spec" not in control


def test_vgpu_hosts_nova_conf_waits_for_their_mdev_types(plan):
    """gpu03 (MIG-backed vGPU) and gpu04 (vGPU): which mdev type ID a vGPU type has, only
    the host's driver tells; their nova.conf is listed as not rendered, never written
    without its [devices] section."""
    _, output = plan
    for host in ("gpu03", "gpu04"):
        assert not (_out(plan) / host / "etc/nova/nova.conf").exists()
        assert f"not rendered: {host}:/etc/nova/nova.conf (the vGPU types need the host" in output


def test_neutron_gets_the_sriov_physnets_and_agents(plan):
    ml2 = _ini(_out(plan) / "ctl01/etc/neutron/plugins/ml2/ml2_conf.ini")
    assert ml2["ml2"]["mechanism_drivers"] == "ovn,sriovnicswitch"
    assert "physnet-sriov" in ml2["ml2_type_flat"]["flat_networks"].split(",")
    assert "physnet-sriov" in ml2["ml2_type_vlan"]["network_vlan_ranges"].split(",")
    agent = _ini(_out(plan) / "gpu01/etc/neutron/plugins/ml2/sriov_agent.ini")
    mappings = agent["sriov_nic"]["physical_device_mappings"]
    assert mappings == "physnet-sriov:ens1f0np0,physnet-sriov:ens1f1np1"
    assert agent["securitygroup"]["firewall_driver"] == "noop"
