"""The site on two containers serves a cloud that a new user can use, and a re-run kept
the tenant's data. The checks are `sovdeploy verify`'s own, through the public API."""

import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import openstack.exceptions
import pytest

from sovdeploy import guest
from sovdeploy.openstack import usercheck as verify

CLOUD = "molecule"
TENANT_IMAGE = b"sovdeploy aio tenant image\n"


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
    result = _audit_verify_until_clean(args, wait=90, every=5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified" in result.stdout


def _audit_verify_until_clean(args, *, wait, every, env=None):
    """Run `sovdeploy audit verify` until it exits 0 or ``wait`` seconds pass: what the
    services ship arrives a little after the converge that set them up."""
    deadline = time.monotonic() + wait
    while True:
        result = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(every)


def _ledger_records(address, ca_file):
    """Every record under the log host's latest checkpoint, read over HTTPS."""
    from sovdeploy.ledger import audit, records, tiles

    files = audit.HttpFiles(
        f"https://{address}:8443", ssl.create_default_context(cafile=str(ca_file))
    )
    size = int(files.read("checkpoint").decode().splitlines()[1])
    reader = tiles.TileReader(files.read, size)
    return [records.decode(reader.entry(i)) for i in range(size)]


def test_an_api_call_reaches_the_ledger_as_cadf_events(conn, address, ca_file):
    """keystonemiddleware's audit filter -> RabbitMQ's vhost audit -> the ledger service.
    A request for a server that does not exist, named by a fresh UUID, must arrive as
    its request and response events; a token request as Keystone's own event."""
    marker = str(uuid.uuid4())
    assert conn.compute.find_server(marker) is None
    events = _cadf_events_naming(marker, address, ca_file)
    assert {e["event_type"] for e in events} == {"audit.http.request", "audit.http.response"}
    # The publisher is the API's process (uWSGI); what was called is in the CADF event.
    assert all(e["source"] == "cadf" and marker in e["payload"]["requestPath"] for e in events)
    response = next(e for e in events if e["event_type"] == "audit.http.response")
    assert response["payload"]["typeURI"] == "http://schemas.dmtf.org/cloud/audit/1.0/event"
    assert response["payload"]["reason"]["reasonCode"] == "404"
    assert "_context_auth_token" not in json.dumps(events)
    everything = _ledger_records(address, ca_file)
    assert any(r["kind"] == "cadf" and r["event_type"].startswith("identity.") for r in everything)
    cadf = [r["seq"] for r in everything if r["source"] == "cadf"]
    assert cadf == list(range(len(cadf)))


def _cadf_events_naming(marker, address, ca_file, *, wait=90):
    """The CADF records whose event names ``marker``, once both the request's and the
    response's have arrived (or ``wait`` seconds have passed)."""
    deadline = time.monotonic() + wait
    events = []
    while time.monotonic() < deadline and len(events) < 2:
        time.sleep(3)
        events = [
            r
            for r in _ledger_records(address, ca_file)
            if r["kind"] == "cadf" and marker in json.dumps(r["payload"])
        ]
    return events


def test_a_placement_call_reaches_the_ledger_as_cadf_events(conn, address, ca_file):
    """Placement builds its middleware in code; the role's WSGI entry point puts the
    audit filter inside authtoken there too."""
    marker = str(uuid.uuid4())
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.placement.get_resource_provider(marker)
    events = _cadf_events_naming(marker, address, ca_file)
    assert {e["event_type"] for e in events} == {"audit.http.request", "audit.http.response"}
    response = next(e for e in events if e["event_type"] == "audit.http.response")
    target = response["payload"]["target"]["typeURI"]
    assert target == "service/placement/resource_providers/resource_provider"
    assert response["payload"]["initiator"]["name"] == "admin"
    assert response["payload"]["reason"]["reasonCode"] == "404"


def test_the_log_is_archived_worm_and_verifies_from_the_archive(ctl, address, ca_file):
    """The ledger service uploads what it publishes to the RADOS gateway's locked bucket:
    the archive verifies on its own with the auditors' keys, and the uploader's keys
    cannot delete what they wrote."""
    from botocore.exceptions import ClientError

    from sovdeploy.ledger import archive

    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    where = json.loads((ephemeral / "logging" / "aio-ctl.archive.json").read_text())
    assert where["url"] == "s3://sovdeploy-ledger/sovdeploy/molecule/aio-ctl"
    assert where["endpoint"] == f"https://{address}:7480"
    secrets = ctl.ansible.get_variables()
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=where["auditor_access_key"],
        AWS_SECRET_ACCESS_KEY=secrets["logging_archive_auditor_secret"],
    )
    args = [
        str(Path(sys.executable).parent / "sovdeploy"), "audit", "verify", where["url"],
        "--s3-endpoint", where["endpoint"], "--cacert", str(ca_file),
        "--key", str(ephemeral / "logging" / "aio-ctl.vkey"),
        "--expect-source", "journal/aio-ctl", "--expect-source", "cadf", "--json",
    ]  # fmt: skip
    result = _audit_verify_until_clean(args, wait=120, every=10, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["size"] > 0

    bucket = archive.Bucket(where["endpoint"], "sovdeploy-ledger", "", str(ca_file))
    uploader = bucket.client("SOVDEPLOYARCHIVEUPLOADER", secrets["logging_archive_uploader_secret"])
    key = "sovdeploy/molecule/aio-ctl/checkpoints/"
    first = uploader.list_objects_v2(Bucket=bucket.name, Prefix=key, MaxKeys=1)["Contents"][0]
    with pytest.raises(ClientError) as denied:
        uploader.delete_object(Bucket=bucket.name, Key=first["Key"])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


# -- a PCI device as a GPU: Placement and the PCI filter ---------------------------------


@pytest.fixture(scope="module")
def accel():
    """prepare's derivation (`sovdeploy extravars accelerators` on the scenario inventory with
    the compute host's stand-in GPU): the plans, the flavors, and the alias."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "accel.json"
    derived = json.loads(path.read_text())
    if not derived["accel_plans"]:
        pytest.skip("no virtio balloon or entropy device on this machine to stand in for a GPU")
    (host, plan), *_ = derived["accel_plans"].items()
    (alias,) = plan["nova"]["pci"]["alias"]
    return {"host": host, "alias": alias, "flavors": derived["accel_flavors"]}


def _pci_providers(conn, rc, wait=180):
    """Placement's providers with inventory of resource class ``rc``: {name: total}. The
    compute host reports its PCI devices at start and then every minute."""
    deadline = time.monotonic() + wait
    while True:
        found = {}
        providers = conn.placement.get(
            f"/resource_providers?resources={rc}:1", microversion="1.14"
        ).json()["resource_providers"]
        for rp in providers:
            inventory = conn.placement.get(
                f"/resource_providers/{rp['uuid']}/inventories", microversion="1.14"
            ).json()["inventories"]
            found[rp["name"]] = inventory[rc]["total"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(10)


def _resource_class(alias):
    return f"CUSTOM_PCI_{alias['vendor_id']}_{alias['product_id']}".upper()


def test_the_stand_in_gpu_is_reported_in_placement(conn, accel):
    """nova-compute's device_spec (derived from the declared GPU) makes the device a
    child provider of the compute host, with one unit of the device's resource class."""
    found = _pci_providers(conn, _resource_class(accel["alias"]))
    assert len(found) == 1, found
    ((name, total),) = found.items()
    assert name.startswith(accel["host"]) and re.search(r"_[0-9a-f]{4}:[0-9a-f]{2}:", name)
    assert total == 1


def _boot_and_wait(conn, flavor, image):
    server = conn.compute.create_server(
        name=f"aio-pci-{uuid.uuid4().hex[:8]}",
        flavor_id=flavor.id,
        image_id=image.id,
        networks="none",
    )
    return conn.compute.wait_for_server(server, status="ERROR", failures=["ACTIVE"], wait=600)


def _events(conn, server):
    """Every event of the server's create action: (event, host, result, traceback)."""
    (action,) = [a for a in conn.compute.server_actions(server) if a.action == "create"]
    detail = conn.compute.get_server_action(action.request_id, server)
    return [
        (e["event"], e.get("host"), e["result"], e.get("traceback") or "") for e in detail.events
    ]


@pytest.fixture(scope="module")
def blank_image(conn, tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "blank.raw"
    path.write_bytes(bytes(1 << 20))
    image = conn.image.create_image(
        name=f"aio-pci-{uuid.uuid4().hex[:8]}",
        filename=str(path),
        disk_format="raw",
        container_format="bare",
        wait=True,
    )
    yield image
    conn.image.delete_image(image, ignore_missing=True)


def test_a_gpu_flavor_is_scheduled_by_the_pci_filter_and_stops_at_the_vfio_attach(
    conn, accel, blank_image, cmp
):
    """The tenancy phase's flavor for one device: Placement and the PCI filter send the
    server to the host with the device; there libvirt refuses to attach it, as the
    sandbox has no VFIO (no IOMMU, no /dev/vfio): on hardware this is where it boots.
    With no other host to try, the build ends there."""
    flavor = conn.compute.find_flavor(f"gpu.{accel['alias']['name']}.x1", ignore_missing=False)
    assert flavor.extra_specs == {"pci_passthrough:alias": f"{accel['alias']['name']}:1"}
    server = _boot_and_wait(conn, flavor, blank_image)
    try:
        events = _events(conn, server)
        built = [e for e in events if e[0] == "compute__do_build_and_run_instance"]
        assert [e[1] for e in built] == [accel["host"]], events
        assert "Exhausted all hosts available" in server.fault["message"], server.fault
        # "Instance failed to spawn", with libvirt's reason.
        log = cmp.run(f"grep -h -- '{server.id}' /var/log/nova/nova-compute.log").stdout
        refused = [line for line in log.splitlines() if "libvirtError" in line]
        assert refused, log[-3000:]
        assert re.search(r"support (VFIO PCI )?passthrough", refused[-1]), refused[-1]
        # The failed build gave the device back, before the server is deleted.
        held = conn.placement.get(f"/allocations/{server.id}", microversion="1.14").json()
        assert held["allocations"] == {}, held
    finally:
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=300)


def test_more_devices_than_any_host_has_is_refused_at_scheduling(conn, accel, blank_image):
    """A flavor asking for two of the alias, where the only host has one: no valid host,
    and no compute host was tried."""
    flavor = conn.compute.create_flavor(
        name=f"aio-pci-x2-{uuid.uuid4().hex[:8]}", ram=256, vcpus=1, disk=1
    )
    try:
        conn.compute.create_flavor_extra_specs(
            flavor, {"pci_passthrough:alias": f"{accel['alias']['name']}:2"}
        )
        server = _boot_and_wait(conn, flavor, blank_image)
        try:
            assert "No valid host" in server.fault["message"], server.fault
            events = _events(conn, server)
            assert [e[0] for e in events] == ["conductor_schedule_and_build_instances"], events
            assert events[0][2] == "Error"
        finally:
            conn.compute.delete_server(server)
            conn.compute.wait_for_delete(server, wait=300)
    finally:
        conn.compute.delete_flavor(flavor)
