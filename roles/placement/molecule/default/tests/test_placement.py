"""Placement answers through HAProxy's TLS endpoint, knows its resource classes, and
its database schema is current."""


def test_version_document_is_public(http_get, address):
    status, body = http_get(f"https://{address}:8778/")
    assert status == 200
    assert '"versions"' in body


def test_admin_lists_resource_classes(placement):
    classes = {c["name"] for c in placement("/resource_classes")["resource_classes"]}
    assert {"VCPU", "MEMORY_MB", "DISK_GB", "PCI_DEVICE"} <= classes


def test_catalog_has_placement_on_the_endpoint(openstack, address):
    urls = {
        e["Interface"]: e["URL"] for e in openstack("endpoint", "list", "--service", "placement")
    }
    assert urls["public"] == f"https://{address}:8778"


def test_upgrade_check_passes(host):
    result = host.run("placement-status upgrade check")
    assert result.rc == 0, result.stdout + result.stderr
