"""The bare-metal provision path: what playbooks/baremetal.yml hands the baremetal role.

The role itself runs against a real standalone Ironic in its Molecule scenario
(roles/baremetal/molecule/default); here, the playbook's node list is templated by
Ansible over the example inventory, and the vault check that runs before Ironic is
asked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.vars.manager import VariableManager
from click.testing import CliRunner

from sovdeploy.cli import main
from sovdeploy.errors import EXIT_INVALID

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example-eu"


def _nodes(credentials: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    play = yaml.safe_load((ROOT / "playbooks" / "baremetal.yml").read_text())[0]
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(EXAMPLE / "hosts.yml")])
    variables = VariableManager(loader=loader, inventory=inventory)
    hostvars = {
        h.name: variables.get_vars(host=h, include_hostvars=False) for h in inventory.get_hosts()
    }
    templar = Templar(
        loader=loader,
        variables={
            "groups": {"all": [h.name for h in inventory.get_hosts()]},
            "hostvars": hostvars,
            "bmc_credentials": credentials,
        },
    )
    return templar.template(play["vars"]["baremetal_nodes"])


def test_every_host_with_a_bmc_becomes_a_node_with_its_vault_credentials():
    credentials = {
        name.removesuffix(".yml"): {"username": "admin", "password": f"pw-{name}"}
        for name in (p.name for p in (EXAMPLE / "host_vars").glob("*.yml"))
    }
    nodes = _nodes(credentials)
    assert len(nodes) == len(credentials) == 19
    ctl01 = next(n for n in nodes if n["name"] == "ctl01")
    assert ctl01 == {
        "name": "ctl01",
        "driver": "redfish",
        "bmc_address": "https://bmc-ctl01.oob.example-cloud.eu",
        "boot_mac": "52:54:00:10:00:01",
        "bmc_username": "admin",
        "bmc_password": "pw-ctl01.yml",
    }
    assert len({n["boot_mac"] for n in nodes}) == 19


def test_missing_bmc_credentials_stop_up_before_ironic_is_asked(tmp_path):
    inventory = tmp_path / "example-eu"
    shutil.copytree(EXAMPLE, inventory)
    env = {"SOVDEPLOY_VAULT_PASSWORD_FILE": str(tmp_path / "vault.pass")}
    runner = CliRunner(env=env)
    made = runner.invoke(main, ["secrets", "generate", "-i", str(inventory)])
    assert made.exit_code == 0, made.output
    result = runner.invoke(
        main, ["up", "-i", str(inventory), "--only", "preflight"], terminal_width=300
    )
    assert result.exit_code == EXIT_INVALID, result.output
    assert "the vault has no BMC credentials for " in result.output
    assert "ctl01" in result.output
    assert "nothing was touched" in result.output
