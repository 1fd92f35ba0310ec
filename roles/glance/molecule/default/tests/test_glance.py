"""Glance stores an uploaded image in Ceph's images pool and returns its bytes."""

import hashlib


def test_image_lands_in_rbd_and_comes_back_intact(host, openstack):
    data = b"sovdeploy-molecule-glance-probe " * 1000
    assert host.run("printf %s > /root/probe.img", data.decode()).rc == 0
    image = openstack(
        "image",
        "create",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--file",
        "/root/probe.img",
        "molecule-probe",
    )
    try:
        assert image["status"] == "active"
        stored = host.run("rbd --id glance -p images ls")
        assert image["id"] in stored.stdout.split()
        openstack("image", "save", "--file", "/root/probe.out", image["id"], parse=False)
        back = host.file("/root/probe.out").content
        assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        openstack("image", "delete", image["id"], parse=False)
    assert image["id"] not in host.run("rbd --id glance -p images ls").stdout.split()


def test_only_rbd_is_a_store(host):
    conf = host.file("/etc/glance/glance-api.conf").content_string
    assert "enabled_backends = rbd:rbd" in conf.replace("  ", " ")
