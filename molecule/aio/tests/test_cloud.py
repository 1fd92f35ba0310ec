"""The site on two containers serves a cloud that a new user can use, and a re-run kept
the tenant's data. The checks are `sovdeploy verify`'s own, through the public API."""

import hashlib
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sovdeploy import guest, verify

CLOUD = "molecule"
TENANT_IMAGE = b"sovdeploy aio tenant image\n"


@pytest.fixture(scope="module")
def ctl():
    import testinfra

    return testinfra.get_host(
        "ansible://aio-ctl", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )


@pytest.fixture(scope="module")
def address(ctl):
    facts = ctl.ansible("setup", "gather_subset=network")["ansible_facts"]
    return facts["ansible_default_ipv4"]["address"]


@pytest.fixture(scope="module")
def ca_file():
    return Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent / ".sovdeploy" / "pki" / "ca.crt"


@pytest.fixture(scope="module")
def conn(tmp_path_factory, ctl, address, ca_file):
    state = tmp_path_factory.mktemp("state")
    clouds, secure = verify.write_clouds_yaml(
        state,
        cloud=CLOUD,
        endpoint=address,
        region="RegionOne",
        ca_file=ca_file,
        password=ctl.ansible.get_variables()["keystone_admin_password"],
    )
    return verify.connect(clouds, secure, CLOUD)


def _get(url, ca_file):
    """GET through HAProxy's TLS endpoint, trusting only the deployment's CA."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(url, context=context, timeout=30) as response:  # noqa: S310
        return response.status, response.read().decode(errors="replace")


def test_the_tenants_project_and_image_survived_every_rerun(conn):
    project = conn.identity.find_project("aio-tenant")
    assert project is not None, "the project created by converge is gone"
    image = conn.image.find_image("aio-tenant-image")
    assert image is not None, "the image created by converge is gone"
    assert image.status == "active"
    data = conn.image.download_image(image).content
    assert hashlib.sha256(data).digest() == hashlib.sha256(TENANT_IMAGE).digest()


def test_the_cloud_passes_every_verify_check(conn):
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sovdeploy"
    image = guest.build(
        cache,
        "localhost/sovdeploy/debian13-sandbox:latest",
        Path("/var/cache/sovdeploy/apt/guest-image"),
    )
    checks: list[verify.Check] = []
    report = verify.Verifier(conn, image, "aio-verify-", checks.append).run()
    for c in checks:
        print(f"{'pass' if c.ok else 'FAIL'} {c.name} ({c.seconds:.1f}s) {c.detail}")
    assert report.ok, "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
    names = [c.name for c in checks]
    assert "a server boots to ACTIVE" in names and "everything is deleted again" in names


def test_the_dashboard_and_its_compressed_styles_are_served_through_haproxy(address, ca_file):
    status, page = _get(f"https://{address}/horizon/auth/login/", ca_file)
    assert status == 200 and 'name="password"' in page
    stylesheets = re.findall(r'href="(/horizon/static/dashboard/css/[^"]+\.css)"', page)
    assert stylesheets, "the login page links no compressed stylesheet"
    status, css = _get(f"https://{address}{stylesheets[0]}", ca_file)
    assert status == 200 and len(css) > 1000


def test_fernet_keys_are_private_to_keystone(ctl):
    assert ctl.file("/etc/keystone/fernet-keys").user == "keystone"
    assert ctl.file("/etc/keystone/fernet-keys/0").mode == 0o600


def test_the_log_host_holds_both_hosts_journals_and_verifies(address, ca_file):
    """aio-ctl is also the log host: both hosts' journals reach its ledger, which an
    auditor verifies over HTTPS with the verifier key the role handed back."""
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    args = [
        str(Path(sys.executable).parent / "sovdeploy"), "audit", "verify",
        f"https://{address}:8443",
        "--key", str(ephemeral / "logging" / "aio-ctl.vkey"),
        "--cacert", str(ca_file),
        "--expect-source", "journal/aio-ctl", "--expect-source", "journal/aio-cmp",
    ]  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified" in result.stdout
