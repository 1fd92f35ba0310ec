"""The runbook's data-store catalogue and topology picture, from the deployment's model."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest

from sovdeploy import inventory as inv
from sovdeploy.model import Deployment
from sovdeploy.runbook import stores, topology

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-eu"


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return inv.load(EXAMPLE).deployment


def test_every_data_store_of_the_example_is_catalogued(deployment: Deployment) -> None:
    found = {s.key: s for s in stores.data_stores(deployment)}
    assert {k for k in found if k.startswith("mariadb/")} == {
        f"mariadb/{name}"
        for name in (
            "keystone",
            "glance",
            "cinder",
            "placement",
            "neutron",
            "nova_api",
            "nova",
            "nova_cell0",
        )
    }
    # The databases live on the first control host; the pools on every storage host.
    assert found["mariadb/nova"].hosts == ("ctl01",)
    assert found["ceph/volumes"].hosts == ("sto01", "sto02", "sto03")
    assert found["etcd"].hosts == ("k8s-cp01", "k8s-cp02", "k8s-cp03")
    assert found["ledger"].hosts == ("log01", "log02")
    assert found["ledger-archive"].service is not None
    assert "(DE)" in found["ledger-archive"].service
    assert {"vault", "ca", "terraform", "run-ledger"} <= set(found)


def test_a_store_is_listed_only_where_its_hosts_are(deployment: Deployment) -> None:
    no_storage = deployment.model_copy(
        update={"hosts": tuple(h for h in deployment.hosts if "storage" not in h.groups)}
    )
    keys = {s.key for s in stores.data_stores(no_storage)}
    assert not [k for k in keys if k.startswith("ceph/")]
    assert "mariadb/keystone" in keys


def test_each_host_is_drawn_in_its_sites_box_with_its_country(deployment: Deployment) -> None:
    text = topology.dot(deployment, stores.data_stores(deployment))
    clusters = dict(re.findall(r'subgraph "cluster_(\w+)" \{\n    label="([^"]+)";', text))
    assert clusters["ams1"] == "ams1: Amsterdam, NL"
    assert clusters["fra1"] == "fra1: Frankfurt am Main, DE"
    for host in deployment.hosts:
        block = text.split(f'subgraph "cluster_{host.site}"')[1].split("  }")[0]
        assert f'"{host.name}" [shape=box' in block
    cylinders = "\n".join(line for line in text.splitlines() if "shape=cylinder" in line)
    for store in stores.data_stores(deployment):
        # Stores of one kind on the same hosts share a node: the databases, the pools.
        name = store.key.split("/", 1)[-1] if store.hosts else store.title
        assert name in cylinders, store.key
    # A store on hosts is drawn in the site of the first of them.
    ams1 = text.split('subgraph "cluster_ams1"')[1].split("  }")[0]
    assert '"database@ctl01" [shape=cylinder, label="MariaDB\\nkeystone, glance, cinder' in ams1
    assert text == topology.dot(deployment, stores.data_stores(deployment))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed (make deps)")
def test_the_svg_names_every_host_and_is_the_same_each_time(deployment: Deployment) -> None:
    text = topology.dot(deployment, stores.data_stores(deployment))
    svg = topology.svg(text)
    assert svg.startswith(b"<?xml") and b"<svg" in svg
    shown = html.unescape(svg.decode())  # Graphviz writes "-" as &#45;
    for host in deployment.hosts:
        assert f">{host.name}</text>" in shown
    assert topology.svg(text) == svg


def test_without_graphviz_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topology.shutil, "which", lambda _name: None)
    with pytest.raises(topology.TopologyError, match="graphviz"):
        topology.svg("digraph {}")
