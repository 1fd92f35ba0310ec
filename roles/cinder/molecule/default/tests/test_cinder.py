"""Cinder's services are up; a volume is an RBD image in the volumes pool; a backup
goes to the backups pool."""

import time


def _wait(openstack, kind, ident, status, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = openstack(kind, "show", ident)["status"]
        if current == status:
            return
        assert "error" not in current, f"{kind} {ident} is {current}"
        time.sleep(3)
    raise AssertionError(f"{kind} {ident} did not become {status}")


def test_every_cinder_service_is_up(openstack):
    services = {s["Binary"]: s for s in openstack("volume", "service", "list")}
    for binary in ("cinder-scheduler", "cinder-volume", "cinder-backup"):
        assert services[binary]["State"] == "up", services


def test_volume_and_its_backup_live_in_ceph(host, openstack):
    volume = openstack("volume", "create", "--size", "1", "--type", "rbd", "molecule-probe")
    try:
        _wait(openstack, "volume", volume["id"], "available")
        pool = host.run("rbd --id cinder -p volumes ls").stdout.split()
        assert f"volume-{volume['id']}" in pool
        backup = openstack("volume", "backup", "create", "--name", "molecule-probe", volume["id"])
        try:
            _wait(openstack, "volume backup", backup["id"], "available")
            assert host.run("rbd --id cinder-backup -p backups ls").stdout.strip()
        finally:
            openstack("volume", "backup", "delete", backup["id"], parse=False)
    finally:
        _wait(openstack, "volume", volume["id"], "available")
        openstack("volume", "delete", volume["id"], parse=False)
