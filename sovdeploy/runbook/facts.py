"""What the runbook is written from: each host's probe, and the deployer's own stores.

``gather`` reads every host through Ansible (``playbooks/runbook.yml`` runs
:mod:`sovdeploy.hostside.probe`, read-only) and the deployer's files, and keeps the
result in ``runbook/facts.json`` in the state dir. The document is rendered from that
file alone, so rendering it again gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sovdeploy import secrets
from sovdeploy.fsutil import atomic_write, read_json
from sovdeploy.model import Deployment
from sovdeploy.runbook.stores import LOG_HOST_LEDGER, DataStore
from sovdeploy.state import StateDir, now

FACTS = "facts.json"


#: The probe's reader of each kind of store on the hosts (its ``--store`` name).
PROBE = {"database": "mariadb", "ceph-pool": "ceph", "etcd": "etcd", "ledger": "ledger"}
#: Where a reader looks, when it is not where the probe looks by default.
PROBE_PATHS = {"ledger": LOG_HOST_LEDGER}


def probe_stores(stores: list[DataStore]) -> dict[str, list[str]]:
    """The ``--store`` arguments of the probe, by host: what each host is asked about."""
    asked: dict[str, list[str]] = {}
    for store in stores:
        reader = PROBE.get(store.kind)
        if reader is None or not store.hosts:
            continue
        arg = f"{reader}:{PROBE_PATHS[reader]}" if reader in PROBE_PATHS else reader
        # One host answers for a replicated store (Ceph, etcd): the first that holds it.
        holders = store.hosts if store.kind == "ledger" else store.hosts[:1]
        for host in holders:
            if arg not in asked.setdefault(host, []):
                asked[host].append(arg)
    return asked


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in sorted(path.rglob("*")) if f.is_file())


def local(state: StateDir, inventory: Path) -> dict[str, Any]:
    """The deployer's stores: the vault, the CA, Terraform's state and the run ledger."""
    paths = {
        "vault": secrets.vault_file(inventory),
        "ca": state.root / "pki",
        "terraform": state.root / "terraform",
        "run-ledger": state.root / "ledger",
    }
    found: dict[str, Any] = {}
    for key, path in paths.items():
        if path.exists():
            found[key] = {"ok": True, "path": str(path), "bytes": _size(path)}
        elif key == "terraform":
            # Hosts that sovdeploy did not provision (enrolled ones): no state to take.
            found[key] = {"ok": True, "path": str(path), "bytes": 0, "empty": True}
        else:
            found[key] = {"ok": False, "path": str(path), "error": f"{path} does not exist"}
    checkpoint = state.root / "ledger" / "checkpoint"
    if checkpoint.exists():
        found["run-ledger"]["checkpoint"] = checkpoint.read_text().splitlines()[:3]
    return found


def assemble(
    deployment: Deployment,
    asked: Mapping[str, list[str]],
    probed: Mapping[str, Mapping[str, Any]],
    deployer: Mapping[str, Any],
    gathered: str,
    *,
    addresses: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One document: every host asked, with what it answered or why it did not.

    ``addresses``: each host's address, from the inventory or provision's outputs.
    """
    hosts: dict[str, Any] = {}
    for host in sorted(h.name for h in deployment.hosts):
        if host in probed:
            hosts[host] = dict(probed[host])
        else:
            hosts[host] = {
                "unreachable": "the host did not answer the probe (see the run's record)",
                "stores": {
                    arg.partition(":")[0]: {"ok": False, "error": "the host did not answer"}
                    for arg in asked.get(host, [])
                },
            }
    return {
        "gathered": gathered,
        "hosts": hosts,
        "deployer": dict(deployer),
        "addresses": dict(sorted((addresses or {}).items())),
    }


def save(state: StateDir, facts: Mapping[str, Any]) -> Path:
    path = state.root / "runbook" / FACTS
    atomic_write(path, json.dumps(facts, indent=1, sort_keys=True) + "\n", mode=0o600)
    return path


def load(state: StateDir) -> dict[str, Any] | None:
    path = state.root / "runbook" / FACTS
    if not path.exists():
        return None
    loaded: dict[str, Any] = read_json(
        path, "run `sovdeploy runbook` without --no-gather to read the hosts again"
    )
    return loaded


def stamp() -> str:
    return now()
