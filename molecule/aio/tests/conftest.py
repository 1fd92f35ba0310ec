"""Fixtures shared by the aio scenario's tests: its hosts, the API address, the CA."""

import os
from pathlib import Path

import pytest


def _host(name):
    import testinfra

    return testinfra.get_host(
        f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )


@pytest.fixture(scope="module")
def ctl():
    return _host("aio-ctl")


@pytest.fixture(scope="module")
def cmp():
    return _host("aio-cmp")


@pytest.fixture(scope="module")
def address(ctl):
    facts = ctl.ansible("setup", "gather_subset=network")["ansible_facts"]
    return facts["ansible_default_ipv4"]["address"]


@pytest.fixture(scope="module")
def ca_file():
    return Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent / ".sovdeploy" / "pki" / "ca.crt"
