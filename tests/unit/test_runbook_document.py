"""The runbook document: every store named, unreadable ones said so, same facts, same bytes.

The facts here have the shape the probe writes (``sovdeploy/hostside/probe.py``); the
sandbox integration test renders the runbook from a deployed sandbox's real ones.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from sovdeploy import inventory as inv
from sovdeploy.runbook import document, facts, register, stores

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "inventories" / "sandbox"
EXAMPLE = ROOT / "inventories" / "example-eu"

pytestmark = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz is not installed (make deps installs it)"
)

GLANCE_IMAGE = {
    "id": "0b1c",
    "name": "debian-13",
    "disk_format": "qcow2",
    "container_format": "bare",
    "size": 41943040,
    "hash_algo": "sha512",
    "hash": "ab" * 64,
}


def _probe(host: str, stores_read: dict[str, Any], *, nova: bool = True) -> dict[str, Any]:
    packages = [["libc6", "2.41-12", "amd64", "glibc"]]
    if nova:
        packages += [
            ["nova-common", "2:31.0.0-6", "all", "nova"],
            ["nova-compute", "2:31.0.0-6", "all", "nova"],
        ]
    return {
        "host": host,
        "packages": packages,
        "images": [],
        "stores": stores_read,
    }


def sandbox_facts(deployment: Any, *, ledger_ok: bool = True) -> dict[str, Any]:
    dbs = {name: 1 << 20 for _, name in stores.DATABASES}
    probed = {
        "sbx-ctl1": _probe(
            "sbx-ctl1",
            {
                "mariadb": {
                    "ok": True,
                    "version": "11.8.3-MariaDB-1",
                    "databases": dbs,
                    "images": [GLANCE_IMAGE],
                    "volumes": [{"id": "v1", "name": "data", "size_gb": 1, "status": "available"}],
                    "backups": [],
                    "servers": [],
                },
                "ceph": {
                    "ok": True,
                    "pools": {p: {"stored": 4096, "objects": 1} for p, _ in stores.POOLS},
                    "rbd": {"volumes": [{"image": "volume-v1", "size": 1 << 30}], "vms": []},
                },
            },
        ),
        "sbx-cmp1": _probe("sbx-cmp1", {}),
        "sbx-k8s1": _probe(
            "sbx-k8s1",
            {"etcd": {"ok": True, "path": "/var/lib/etcd", "bytes": 2 << 20}},
            nova=False,
        ),
        "sbx-k8s2": _probe("sbx-k8s2", {}, nova=False),
        "sbx-log1": _probe(
            "sbx-log1",
            {
                "ledger": {
                    "ok": True,
                    "path": stores.LOG_HOST_LEDGER,
                    "bytes": 123456,
                    "checkpoint": ["lab/ledger", "42", "cm9vdA=="],
                }
                if ledger_ok
                else {"ok": False, "error": "/var/lib/sovdeploy-ledger/log does not exist"}
            },
        ),
    }
    deployer = {
        key: {"ok": True, "path": f"/state/{key}", "bytes": 100}
        for key in ("vault", "ca", "terraform", "run-ledger")
    }
    asked = facts.probe_stores(stores.data_stores(deployment))
    return facts.assemble(deployment, asked, probed, deployer, "2026-11-22T10:00:00+00:00")


@pytest.fixture(scope="module")
def loaded() -> inv.LoadedInventory:
    return inv.load(SANDBOX)


def _build(
    loaded: inv.LoadedInventory,
    found: dict[str, Any],
    drill: Any = None,
    conformance: dict[str, Any] | None = None,
) -> Any:
    return document.build(
        loaded.deployment,
        list(loaded.findings),
        found,
        drill,
        inventory=str(SANDBOX),
        state="/state",
        conformance=conformance,
    )


def test_the_same_facts_give_the_same_bytes(loaded: inv.LoadedInventory, tmp_path: Path) -> None:
    found = sandbox_facts(loaded.deployment)
    first = _build(loaded, found)
    second = _build(loaded, copy.deepcopy(found))
    assert first.files == second.files
    document.write(tmp_path / "a", first)
    document.write(tmp_path / "b", second)
    for name in document.FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_every_store_of_the_sandbox_is_named(loaded: inv.LoadedInventory) -> None:
    md = _build(loaded, sandbox_facts(loaded.deployment)).files[document.MARKDOWN].decode()
    for store in stores.data_stores(loaded.deployment):
        assert f"### {store.title}" in md, store.key
    for title in ("keystone database", "Ceph pool images", "the ledger", "Terraform state"):
        assert title in md
    assert "Every data store answered" in md
    # Sizes from the facts, export commands from the catalogue.
    assert "1.0 MiB (1,048,576 B)" in md
    assert "mariadb-dump --single-transaction" in md
    assert "rbd export --no-progress volumes/volume-v1@exit -" in md
    # The live ledgers are exported as snapshots, checked under their own keys.
    assert (
        "env PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/opt/sovdeploy-ledger/current "
        "python3 -m sovdeploy.hostside.snapshot "
        "/var/lib/sovdeploy-ledger/log > ledger/log-host.tar.part"
    ) in md
    assert "python3 -m sovdeploy.hostside.snapshot /state/ledger > deployer/run-ledger.tar" in md
    assert "--key /state/logging/keys/sbx-log1.vkey" in md
    assert "--key /state/keys/ledger.pub" in md
    # Which release of each component runs where, from the hosts' packages.
    assert "| OpenStack Nova | 2:31.0.0-6 | sbx-cmp1, sbx-ctl1, sbx-log1 |" in md


def test_an_unreadable_store_is_said_so_not_left_out(loaded: inv.LoadedInventory) -> None:
    found = sandbox_facts(loaded.deployment, ledger_ok=False)
    md = _build(loaded, found).files[document.MARKDOWN].decode()
    assert "**1 data store(s) could not be read**" in md
    assert "the ledger on sbx-log1: /var/lib/sovdeploy-ledger/log does not exist" in md
    assert "### the ledger" in md
    assert "**Status: unreadable.**" in md


def test_a_host_that_did_not_answer_makes_its_stores_unreadable(
    loaded: inv.LoadedInventory,
) -> None:
    found = sandbox_facts(loaded.deployment)
    asked = facts.probe_stores(stores.data_stores(loaded.deployment))
    probed = {h: v for h, v in found["hosts"].items() if h != "sbx-ctl1"}
    found = facts.assemble(loaded.deployment, asked, probed, found["deployer"], found["gathered"])
    md = _build(loaded, found).files[document.MARKDOWN].decode()
    assert "keystone database on sbx-ctl1: the host did not answer" in md
    assert "Ceph pool volumes on sbx-ctl1: the host did not answer" in md
    assert "| sbx-ctl1 | 0 | 0 | **no answer** |" in md


def test_the_html_is_one_self_contained_page(loaded: inv.LoadedInventory) -> None:
    page = _build(loaded, sandbox_facts(loaded.deployment)).files[document.HTML].decode()
    assert page.startswith("<!DOCTYPE html>")
    assert '<div class="topology"><svg' in page
    # Nothing fetched from elsewhere: no external stylesheet, script or image.
    assert not re.search(r"<(link|script)\b", page)
    assert not re.search(r"<img\b", page)
    assert "<table>" in page


def test_the_sbom_is_valid_cyclonedx(loaded: inv.LoadedInventory) -> None:
    pytest.importorskip("cyclonedx.validation.json")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    raw = _build(loaded, sandbox_facts(loaded.deployment)).files[document.SBOM].decode()
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw)
    assert error is None, error
    bom = json.loads(raw)
    purls = {c["purl"] for c in bom["components"] if "purl" in c}
    assert "pkg:deb/debian/nova-compute@2%3A31.0.0-6?arch=all&distro=debian-13" in purls
    nova = next(c for c in bom["components"] if c["name"] == "nova-compute")
    assert {"name": "sovdeploy:hosts", "value": "sbx-cmp1,sbx-ctl1,sbx-log1"} in nova["properties"]


def test_the_sbom_lists_what_was_built_from_source(loaded: inv.LoadedInventory) -> None:
    from sovdeploy.supply import build as supply_build
    from sovdeploy.supply import recipes

    tofu = recipes.load().get("tofu")
    ok, detail = supply_build.tree(loaded.deployment).verify(tofu)
    if not ok:
        pytest.skip(f"the sandbox's mirror tree is not built ({detail}): make mirror builds it")
    raw = _build(loaded, sandbox_facts(loaded.deployment)).files[document.SBOM].decode()
    bom = json.loads(raw)
    built = {c["name"]: c for c in bom["components"] if c["bom-ref"].startswith("sovdeploy-build:")}
    wanted = recipes.load().in_groups(supply_build.needed_groups(loaded.deployment))
    assert set(built) == {r.name for r in wanted}
    # OpenTofu and the provider; the Kubernetes hosts' runtime, kubelet and test suite.
    assert {"tofu", "terraform-provider-openstack", "containerd", "kubelet", "e2e.test"} <= set(
        built
    )
    assert built["tofu"]["purl"] == "pkg:golang/github.com/opentofu/opentofu@v1.12.6"
    assert built["tofu"]["hashes"] == [
        {"alg": "SHA-256", "content": detail.removeprefix("sha256:")}
    ]
    assert {
        "name": "sovdeploy:provenance",
        "value": "files/opentofu/v1.12.6/linux_amd64/tofu.intoto.json",
    } in built["tofu"]["properties"]


def test_the_example_sbom_pins_the_kubernetes_artifacts_by_digest() -> None:
    from sovdeploy.runbook import sbom

    loaded = inv.load(EXAMPLE)
    asked = facts.probe_stores(stores.data_stores(loaded.deployment))
    found = facts.assemble(loaded.deployment, asked, {}, {}, "2026-11-22T10:00:00+00:00")
    bom = sbom.build(loaded.deployment, found)
    kubeadm = next(c for c in bom["components"] if c["name"] == "kubeadm")
    assert kubeadm["type"] == "file"
    assert re.fullmatch(r"[0-9a-f]{64}", kubeadm["hashes"][0]["content"])
    assert kubeadm["externalReferences"][0]["url"].startswith("https://mirror.ams1")


def test_the_register_names_every_party_with_its_country() -> None:
    deployment = inv.load(EXAMPLE).deployment
    entries = register.entries(deployment)
    by_name = {e.name: e for e in entries}
    assert by_name["NVIDIA Corporation"].country == "US"
    assert by_name["NVIDIA Corporation"].kind == "hardware"
    assert by_name["Equinix (Netherlands) B.V."].ends == "2029-06-30"
    kinds = {e.kind for e in entries}
    assert {"artifact source (apt)", "site", "time source", "log archive", "support"} <= kinds
    assert all(re.fullmatch(r"[A-Z]{2}", e.country) for e in entries)


def test_the_drills_figures_reach_the_checklists(loaded: inv.LoadedInventory) -> None:
    drill = {
        "id": "drill-x",
        "ok": True,
        "started": "2026-11-22T10:00:00+00:00",
        "finished": "2026-11-22T10:05:00+00:00",
        "target": "/state/exit/drill-x",
        "exported": 14,
        "bytes": 5 << 20,
        "restored": 3,
        "rto_seconds": 300.0,
        "rpo_seconds": 7300.0,
        "items": [
            {
                "store": "mariadb/keystone",
                "item": "keystone database",
                "file": "mariadb/keystone.sql",
                "bytes": 1000,
                "sha256": "ab" * 32,
                "seconds": 1.5,
                "ok": True,
            },
            {
                "store": "ledger",
                "item": "the ledger",
                "file": "-",
                "ok": False,
                "error": "unreadable: the host did not answer",
                "seconds": 0,
            },
        ],
        "restores": [{"what": "keystone database dump", "ok": True, "seconds": 9.0, "detail": "x"}],
        "canary_left": [{"kind": "volume", "id": "v-1", "error": "HttpException: 409"}],
    }
    md = _build(loaded, sandbox_facts(loaded.deployment), drill).files[document.MARKDOWN].decode()
    assert "| Measured RTO / RPO (last drill) | 5.0 min / 121.7 min |" in md
    # Declared 4 h RTO and 1 h RPO in the sandbox inventory: one met, one missed.
    assert "RTO 5.0 min (met), RPO 121.7 min (**missed**)" in md
    assert "drill drill-x passed: 14 file(s), 5.0 MiB (5,242,880 B), 3 restore(s) proven" in md
    assert "| mariadb/keystone | keystone database | `mariadb/keystone.sql` |" in md
    assert "| ledger | the ledger | `-` | - | `-` | 0.0 s | **failed**: unreadable: the host" in md
    assert "**The drill's canary volume `v-1` could not be deleted** (HttpException" in md


def test_the_conformance_counts_of_each_kind_of_run_are_reported(
    loaded: inv.LoadedInventory, tmp_path: Path
) -> None:
    found = sandbox_facts(loaded.deployment)
    md = _build(loaded, found).files[document.MARKDOWN].decode()
    assert "No conformance run has been recorded for this cluster yet" in md
    results = tmp_path / "conformance"
    results.mkdir()
    full = {
        "kubernetes": "v1.37.2",
        "subset": None,
        "path": "conformance/v1.37.2",
        "tests": 7000,
        "passed": 460,
        "failed": 2,
        "skipped": 6538,
        "seconds": 9000,
        "sha256": "ab" * 32,
    }
    ci = {
        **full,
        "subset": "ci",
        "path": "conformance/runs/r1/results",
        "passed": 17,
        "failed": 0,
        "skipped": 6983,
        "seconds": 600,
    }
    del ci["sha256"]
    (results / "full.json").write_text(json.dumps(full))
    (results / "ci.json").write_text(json.dumps(ci))
    runbook = _build(loaded, found, conformance=document.load_conformance(results))
    md = runbook.files[document.MARKDOWN].decode()
    assert (
        "| every [Conformance] test | v1.37.2 | 460 | **2** | 6538 | 150 | "
        "`conformance/v1.37.2` (SHA256SUMS digest `abababababababab…`) |"
    ) in md
    assert "| subset ci | v1.37.2 | 17 | 0 | 6983 | 10 | `conformance/runs/r1/results` |" in md
