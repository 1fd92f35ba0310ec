"""Terraform modules: formatting and native tests, with the real terraform binary."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "terraform" / "modules"
MIRROR = os.environ.get("SOVDEPLOY_TF_PLUGIN_MIRROR")

pytestmark = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="terraform is not on PATH"
)


def tf(module: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_DATA_DIR=str(tmp_path / ".terraform"), TF_IN_AUTOMATION="1")
    cli = tmp_path / "cli.tfrc"
    mirror = MIRROR or str(tmp_path / "no-mirror")
    Path(mirror).mkdir(exist_ok=True)
    cli.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n'
    )
    env["TF_CLI_CONFIG_FILE"] = str(cli)
    return subprocess.run(
        ["terraform", *args], cwd=module, env=env, capture_output=True, text=True, check=False
    )


def test_fmt_is_clean(tmp_path):
    proc = tf(ROOT / "terraform", "fmt", "-check", "-recursive", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sandbox_hosts_native_tests(tmp_path):
    init = tf(
        MODULES / "sandbox_hosts", "init", "-input=false", "-backend=false", tmp_path=tmp_path
    )
    assert init.returncode == 0, init.stdout + init.stderr
    proc = tf(MODULES / "sandbox_hosts", "test", "-no-color", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every run block of the module's tests ran and passed: counted from the test files.
    runs = sum(
        len(re.findall(r'^run "', f.read_text(), re.MULTILINE))
        for f in (MODULES / "sandbox_hosts" / "tests").glob("*.tftest.hcl")
    )
    assert runs > 0
    assert f"{runs} passed, 0 failed" in proc.stdout, proc.stdout


@pytest.mark.skipif(
    not MIRROR,
    reason="SOVDEPLOY_TF_PLUGIN_MIRROR is not set: no provider mirror holds "
    "openshift-metal3/ironic or terraform-provider-openstack/openstack on this machine, "
    "and no registry is reachable",
)
@pytest.mark.parametrize("module", ["baremetal", "tenancy"])
@pytest.mark.parametrize("command", [("validate", "-no-color"), ("test", "-no-color")])
def test_provider_modules(module, command, tmp_path):
    init = tf(MODULES / module, "init", "-input=false", "-backend=false", tmp_path=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    proc = tf(MODULES / module, *command, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
