"""The site on two containers serves a cloud that a new user can use, and a re-run kept
the tenant's data. The checks are `sovdeploy verify`'s own, through the public API."""

import hashlib
import os
from pathlib import Path

import pytest

from sovdeploy import guest, verify

CLOUD = "molecule"
TENANT_IMAGE = b"sovdeploy aio tenant image\n"


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    import testinfra

    ctl = testinfra.get_host(
        "ansible://aio-ctl", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )
    facts = ctl.ansible("setup", "gather_subset=network")["ansible_facts"]
    address = facts["ansible_default_ipv4"]["address"]
    inventory_dir = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    state = tmp_path_factory.mktemp("state")
    clouds, secure = verify.write_clouds_yaml(
        state,
        cloud=CLOUD,
        endpoint=address,
        region="RegionOne",
        ca_file=inventory_dir / ".sovdeploy" / "pki" / "ca.crt",
        password=ctl.ansible.get_variables()["keystone_admin_password"],
    )
    return verify.connect(clouds, secure, CLOUD)


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
