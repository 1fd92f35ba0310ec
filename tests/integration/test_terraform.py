"""The Terraform-language modules: format, validate and native tests, with OpenTofu.

``tofu`` is the one `make mirror` builds from pinned source (linked into the venv); the
OpenStack provider comes from the filesystem mirror it builds beside it, and must hash
to what each module's committed lock file pins (``-lockfile=readonly``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "terraform" / "modules"
SANDBOX = ROOT / "inventories" / "sandbox"


def _mirror() -> str | None:
    """The provider mirror: SOVDEPLOY_TF_PLUGIN_MIRROR, else the sandbox inventory's tree."""
    if os.environ.get("SOVDEPLOY_TF_PLUGIN_MIRROR"):
        return os.environ["SOVDEPLOY_TF_PLUGIN_MIRROR"]
    from sovdeploy import inventory

    tree = Path(inventory.load(SANDBOX, hardware=False).deployment.settings.supply.dir)
    return str(tree / "providers") if (tree / "providers").is_dir() else None


MIRROR = _mirror()

pytestmark = pytest.mark.skipif(
    shutil.which("tofu") is None,
    reason="tofu is not on PATH: `make mirror` builds it from pinned source and links it",
)
needs_mirror = pytest.mark.skipif(
    not MIRROR,
    reason="no provider mirror: `make mirror` builds the OpenStack provider into "
    "/var/cache/sovdeploy/mirror/providers (or set SOVDEPLOY_TF_PLUGIN_MIRROR)",
)


def tf(
    module: Path, *args: str, tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = dict(
        os.environ,
        TF_DATA_DIR=str(tmp_path / ".terraform"),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        **(env or {}),
    )
    cli = tmp_path / "cli.tfrc"
    mirror = MIRROR or str(tmp_path / "no-mirror")
    Path(mirror).mkdir(exist_ok=True)
    cli.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n'
    )
    environ["TF_CLI_CONFIG_FILE"] = str(cli)
    return subprocess.run(
        ["tofu", *args], cwd=module, env=environ, capture_output=True, text=True, check=False
    )


def init(module: Path, tmp_path: Path) -> None:
    proc = tf(
        module, "init", "-input=false", "-backend=false", "-lockfile=readonly", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def runs_in(directory: Path) -> int:
    """How many run blocks the test files of ``directory`` hold."""
    return sum(
        len(re.findall(r'^run "', f.read_text(), re.MULTILINE))
        for f in directory.glob("*.tftest.hcl")
    )


def test_fmt_is_clean(tmp_path):
    proc = tf(ROOT / "terraform", "fmt", "-check", "-recursive", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def native_tests(module: Path, tmp_path: Path) -> None:
    """`tofu test` of ``module``: every run block of its test files ran and passed."""
    init(module, tmp_path)
    proc = tf(module, "test", "-no-color", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = runs_in(module / "tests")
    assert runs > 0
    assert f"{runs} passed, 0 failed" in proc.stdout, proc.stdout


def test_sandbox_hosts_native_tests(tmp_path):
    native_tests(MODULES / "sandbox_hosts", tmp_path)


@needs_mirror
def test_tenancy_validates_with_the_real_provider(tmp_path):
    init(MODULES / "tenancy", tmp_path)
    proc = tf(MODULES / "tenancy", "validate", "-no-color", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_mirror
def test_tenancy_plan_tests(tmp_path):
    """Plan-mode tests: the real provider's schema, a mocked cloud."""
    native_tests(MODULES / "tenancy", tmp_path)


@needs_mirror
def test_a_provider_that_differs_from_the_lock_file_is_refused(tmp_path):
    """A mirror whose provider is not the locked bytes fails init, naming the provider."""
    module = tmp_path / "tenancy"
    shutil.copytree(MODULES / "tenancy", module)
    lock = module / ".terraform.lock.hcl"
    text = lock.read_text()
    assert re.search(r'"h1:[^"]+"', text)
    lock.write_text(
        re.sub(r'"h1:[^"]+"', '"h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="', text)
    )
    proc = tf(
        module, "init", "-input=false", "-backend=false", "-lockfile=readonly", tmp_path=tmp_path
    )
    assert proc.returncode != 0
    assert "terraform-provider-openstack/openstack" in proc.stdout + proc.stderr


def _sandbox_cloud() -> dict[str, str] | None:
    """OS_* for the sandbox cloud, where `make up` has deployed it and it answers."""
    state = SANDBOX / ".sovdeploy"
    clouds, secure = state / "clouds.yaml", state / "secure.yaml"
    if not (clouds.is_file() and secure.is_file()):
        return None
    from keystoneauth1.exceptions import ClientException
    from openstack.exceptions import SDKException

    from sovdeploy.openstack import usercheck

    try:
        usercheck.connect(clouds, secure, "sandbox").authorize()
    except (ClientException, SDKException):  # unreachable, or not this deployment's cloud
        return None
    import yaml

    password = yaml.safe_load(secure.read_text())["clouds"]["sandbox"]["auth"]["password"]
    # gophercloud reads no OS_CLIENT_SECURE_FILE: the password goes as sovdeploy passes it.
    return {"OS_CLOUD": "sandbox", "OS_CLIENT_CONFIG_FILE": str(clouds), "OS_PASSWORD": password}


@needs_mirror
def test_tenancy_applies_on_the_sandbox_cloud(tmp_path):
    env = _sandbox_cloud()
    if env is None:
        pytest.skip("the sandbox cloud is not up (make up deploys it): no cloud to apply to")
    init(MODULES / "tenancy", tmp_path)
    proc = tf(
        MODULES / "tenancy",
        "test",
        "-no-color",
        "-test-directory=tests/cloud",
        tmp_path=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = runs_in(MODULES / "tenancy" / "tests" / "cloud")
    assert f"{runs} passed, 0 failed" in proc.stdout, proc.stdout


@needs_mirror
def test_the_preflights_lock_check_agrees_with_tofu(tmp_path):
    """The mirror holds what the committed lock file pins, by the preflight's own hash."""
    from sovdeploy.engines import terraform

    lock = MODULES / "tenancy" / ".terraform.lock.hcl"
    assert terraform.check_locked(lock, Path(MIRROR or "")) == []
    init(MODULES / "tenancy", tmp_path)  # and tofu, with -lockfile=readonly, agrees
