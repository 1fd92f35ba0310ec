"""Validation: the real inventories pass, each broken one fails with its expected messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sovdeploy.cli import main
from sovdeploy.inventory import load

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "inventories" / "broken"
EXPECTED = yaml.safe_load((BROKEN / "expected.yml").read_text())


@pytest.mark.parametrize(
    "name", ["inventories/sandbox", "inventories/example-eu", "tests/inventories/minimal"]
)
def test_shipped_inventories_validate(name):
    result = CliRunner().invoke(main, ["validate", "-i", str(ROOT / name)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_example_eu_models_the_production_layout():
    d = load(ROOT / "inventories/example-eu").deployment
    assert len(d.hosts_in("control")) == 3
    assert {s.country for s in d.settings.sites.values()} == {"NL", "DE"}
    gpu_hosts = [h for h in d.hosts if h.hardware.gpus]
    assert {g.pci_id for h in gpu_hosts for g in h.hardware.gpus} == {"10de:2330", "10de:26b9"}
    assert any(n.sriov_vfs for h in d.hosts for n in h.hardware.nics)
    assert {h.name for h in d.hosts if h.hardware.dpdk} == {"net01", "net02"}
    assert len(d.hosts_in("logging")) == 2
    assert all(h.bmc is not None for h in d.hosts)


@pytest.mark.parametrize("name", sorted(k for k in EXPECTED if not k.endswith("-count")))
def test_broken_inventory_fails_with_expected_messages(name):
    runner = CliRunner()
    result = runner.invoke(main, ["validate", "-i", str(BROKEN / name)], terminal_width=400)
    assert result.exit_code == 2, result.output
    for text in EXPECTED[name]["output"]:
        assert text in result.output, f"{text!r} missing from:\n{result.output}"
    as_json = runner.invoke(main, ["validate", "--json", "-i", str(BROKEN / name)])
    assert as_json.exit_code == 2
    report = json.loads(as_json.output)
    assert report["valid"] is False
    codes = {f["code"] for f in report["findings"] if f["severity"] == "error"}
    assert set(EXPECTED[name]["codes"]) <= codes, codes


def test_every_problem_is_reported_at_once():
    report = json.loads(
        CliRunner().invoke(main, ["validate", "--json", "-i", str(BROKEN / "unknown-keys")]).output
    )
    unknown = [f for f in report["findings"] if f["code"] == "inventory.unknown_key"]
    assert len(unknown) == EXPECTED["unknown-keys-count"]
    assert all(f["file"] and f["line"] for f in unknown)


def test_deployment_wide_setting_on_a_group_is_refused(inventory_copy):
    inv = inventory_copy("minimal")
    (inv / "group_vars" / "compute.yml").write_text("sovdeploy_region: Elsewhere\n")
    result = CliRunner().invoke(main, ["validate", "-i", str(inv)], terminal_width=400)
    assert result.exit_code == 2
    assert "inventory.misplaced_setting" in result.output
    assert "move it to group_vars/all/" in result.output


def test_missing_inventory_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(
        main, ["validate", "-i", str(tmp_path / "nope")], terminal_width=400
    )
    assert result.exit_code == 2
    assert "no such inventory" in result.output


def test_validate_never_creates_state(inventory_copy):
    inv = inventory_copy("minimal")
    CliRunner().invoke(main, ["validate", "-i", str(inv)])
    assert not (inv / ".sovdeploy").exists()


def test_secret_values_are_redacted(inventory_copy):
    inv = inventory_copy("minimal")
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "ctl1.yml").write_text("sovdeploy_bmc_password: hunter2-very-secret\n")
    result = CliRunner().invoke(main, ["validate", "-i", str(inv)], terminal_width=400)
    assert result.exit_code == 2
    assert "hunter2" not in result.output
    assert "<redacted>" in result.output


def test_ansible_reads_the_same_files(tmp_path):
    """The inventory stays a plain Ansible inventory: ansible-inventory parses it as is."""
    import subprocess
    import sys

    bindir = Path(sys.executable).parent
    out = subprocess.run(
        [
            str(bindir / "ansible-inventory"),
            "-i",
            str(ROOT / "inventories/example-eu"),
            "--host",
            "gpu01",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    hostvars = json.loads(out)
    assert hostvars["sovdeploy_site"] == "ams1"
    assert hostvars["sovdeploy_hardware"]["gpus"][0]["pci_id"] == "10de:2330"


def test_the_sandbox_runs_its_log_host_as_a_virtual_machine():
    sandbox = load(Path("inventories/sandbox")).deployment.settings.sandbox
    assert sandbox.vms == ("sbx-log1",)


def test_a_sandbox_vm_must_be_a_host_of_the_inventory(inventory_copy):
    inv = inventory_copy("minimal")
    (inv / "group_vars" / "all" / "vms.yml").write_text("sovdeploy_sandbox:\n  vms: [ctl9]\n")
    result = CliRunner().invoke(main, ["validate", "-i", str(inv)], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert "inventory.unknown_host" in result.output
    assert "ctl1" in result.output  # did you mean


def test_a_waiver_must_name_a_rule_that_exists(inventory_copy):
    inv = inventory_copy("minimal")
    (inv / "group_vars" / "all" / "waiver.yml").write_text(
        "sovdeploy_waivers:\n"
        "  - rule: jurisdiction.artifact_sourc\n"
        "    subject: artifact_sources.debian\n"
        "    reason: a test of a misspelt rule\n"
        "    expires: 2099-01-01\n"
    )
    result = CliRunner().invoke(main, ["validate", "--json", "-i", str(inv)])
    found = [
        f for f in json.loads(result.output)["findings"] if f["code"] == "inventory.unknown_rule"
    ]
    assert len(found) == 1, result.output
    assert found[0]["key"] == "sovdeploy_waivers.0.rule"
    assert found[0]["line"] == 2 and found[0]["file"].endswith("waiver.yml")
    assert "jurisdiction.artifact_source" in found[0]["hint"]
