"""A one-OSD cluster is up and its service identities reach exactly their own pools."""

import json


def _ceph(host, *args, user="admin"):
    result = host.run("ceph --id %s --format json " + " ".join(args), user)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_monitor_in_quorum_and_the_osd_up_and_in(host):
    status = _ceph(host, "status")
    assert status["quorum_names"], status
    assert status["osdmap"]["num_up_osds"] == 1
    assert status["osdmap"]["num_in_osds"] == 1
    assert status["fsid"] == host.ansible.get_variables().get("ceph_fsid", status["fsid"])


def test_osd_is_bluestore_on_its_file(host):
    meta = _ceph(host, "osd", "metadata", "0")
    assert meta["osd_objectstore"] == "bluestore"
    assert host.file("/var/lib/ceph/osd/ceph-0/block").linked_to == (
        "/var/lib/ceph/osd-files/osd0.img"
    )


def test_every_pool_exists_for_rbd(host):
    pools = {p["pool_name"]: p for p in _ceph(host, "osd", "pool", "ls", "detail")}
    for name in ("images", "volumes", "vms", "backups"):
        assert name in pools
        assert "rbd" in pools[name]["application_metadata"]


def test_glance_writes_an_rbd_image_in_its_pool_through_librbd(host):
    name = "molecule-probe"
    create = host.run("rbd --id glance -p images create --size 8 %s", name)
    assert create.rc == 0, create.stderr
    try:
        listed = host.run("rbd --id glance -p images ls")
        assert name in listed.stdout.split()
        data = host.run("rbd --id glance -p images bench --io-type write --io-total 1M %s", name)
        assert data.rc == 0, data.stderr
    finally:
        host.run("rbd --id glance -p images rm %s", name)


def test_glance_cannot_touch_the_volumes_pool(host):
    denied = host.run("rbd --id glance -p volumes create --size 8 molecule-denied")
    assert denied.rc != 0
    assert "Operation not permitted" in denied.stderr or "permission" in denied.stderr.lower()
