"""The Terraform wrapper against the real terraform binary, offline."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from sovdeploy.engines import terraform
from sovdeploy.errors import TerraformError

ROOT = Path(__file__).resolve().parents[2]


def sandbox_ws(tmp_path, **inputs):
    base = {
        "deployment": "unit",
        "network": "unit-net",
        "subnet": "10.89.77.0/24",
        "image": "img",
        "ssh_authorized_keys": "/tmp/k",
        "containers_conf": "/tmp/c",
        "hosts": [{"name": "a1", "groups": ["control"]}, {"name": "b1", "groups": ["compute"]}],
    }
    base.update(inputs)
    return terraform.Workspace(
        workdir=tmp_path / "ws", module=ROOT / "terraform/modules/sandbox_hosts", inputs=base
    )


def test_plan_reports_what_would_be_created(tmp_path):
    ws = sandbox_ws(tmp_path)
    terraform.init(ws)
    summary = terraform.plan(ws)
    assert summary.changes
    assert set(summary.add) == {
        "module.this.terraform_data.network",
        'module.this.terraform_data.host["a1"]',
        'module.this.terraform_data.host["b1"]',
    }
    assert summary.describe() == "3 to add, 0 to change, 0 to destroy"
    assert ws.plan_file.exists()


def test_a_vm_host_is_planned_as_a_vm_not_a_container(tmp_path):
    hosts = [
        {"name": "a1", "groups": ["control"]},
        {"name": "b1", "groups": ["logging"], "vm": True},
    ]
    ws = sandbox_ws(tmp_path, hosts=hosts, vm_image="/var/lib/sovdeploy/vm-images/x")
    terraform.init(ws)
    summary = terraform.plan(ws)
    assert set(summary.add) == {
        "module.this.terraform_data.network",
        'module.this.terraform_data.host["a1"]',
        'module.this.terraform_data.vm["b1"]',
    }


def test_providers_come_only_from_the_mirror(tmp_path):
    ws = sandbox_ws(tmp_path)
    terraform.write_root(ws)
    cli = (ws.workdir / "cli.tfrc").read_text()
    assert "filesystem_mirror" in cli and "direct" not in cli
    root = json.loads((ws.workdir / "main.tf.json").read_text())
    assert root["terraform"]["backend"] == {"local": {"path": "terraform.tfstate"}}


def test_invalid_input_raises_with_command_and_output(tmp_path):
    ws = sandbox_ws(tmp_path, subnet="fd00::/64")
    terraform.init(ws)
    with pytest.raises(TerraformError) as exc:
        terraform.plan(ws)
    assert exc.value.cmd[1:2] == ["plan"], exc.value.cmd
    assert shlex.join(exc.value.cmd) in str(exc.value)
    assert "subnet must be an IPv4 CIDR" in exc.value.output_tail.replace("\n", " ")


def test_a_workspaces_environment_reaches_terraform(tmp_path):
    """How the tenancy module's provider finds the cloud (OS_CLOUD and the clouds.yaml
    files): a workspace's env is terraform's environment."""
    ws = sandbox_ws(tmp_path)
    ws = terraform.Workspace(
        workdir=ws.workdir,
        module=ws.module,
        inputs=ws.inputs,
        env={"TF_CLI_ARGS_init": "-no-such-flag"},
    )
    with pytest.raises(TerraformError) as caught:
        terraform.init(ws)
    assert "no-such-flag" in str(caught.value)
