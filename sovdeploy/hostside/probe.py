"""Read what a host holds for the runbook, as one JSON document on standard output.

Runs on the host itself (``ansible.builtin.script``, as root), so it uses the standard
library only. It reads and never writes: the installed packages and container images
(for the SBOM), and for each store the orchestrator names (``--store KIND[:PATH]``)
its size and contents. A store that cannot be read is reported with the reason, never
left out: the runbook says so in that store's section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMEOUT = 60

#: Glance's active images, Cinder's volumes and backups, Nova's servers: what the
#: workload section moves out. Read from the databases, so no API credentials are needed.
QUERIES = {
    "images": "SELECT id, name, disk_format, container_format, size, os_hash_algo, "
    "os_hash_value FROM glance.images WHERE deleted = 0 AND status = 'active' ORDER BY id",
    "volumes": "SELECT id, display_name, size, status FROM cinder.volumes "
    "WHERE deleted = 0 ORDER BY id",
    "backups": "SELECT id, volume_id, size, status FROM cinder.backups "
    "WHERE deleted = 0 ORDER BY id",
    "servers": "SELECT uuid, display_name, vm_state, host FROM nova.instances "
    "WHERE deleted = 0 ORDER BY uuid",
}
COLUMNS = {
    "images": ("id", "name", "disk_format", "container_format", "size", "hash_algo", "hash"),
    "volumes": ("id", "name", "size_gb", "status"),
    "backups": ("id", "volume_id", "size_gb", "status"),
    "servers": ("id", "name", "state", "host"),
}
NUMERIC = {"size", "size_gb"}


class ProbeError(Exception):
    """A command the probe runs failed."""


def run(*cmd: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except FileNotFoundError as exc:
        raise ProbeError(f"{cmd[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"{' '.join(cmd)} did not answer within {TIMEOUT}s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ProbeError(f"{' '.join(cmd)} exited {done.returncode}: {tail[0]}")
    return done.stdout


def packages() -> list[list[str]]:
    """Installed Debian packages: name, version, architecture, source package."""
    if shutil.which("dpkg-query") is None:
        return []
    out = run(
        "dpkg-query",
        "-W",
        "-f=${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\n",
    )
    rows = [line.split("\t") for line in out.splitlines()]
    return sorted(row[1:] for row in rows if len(row) == 5 and row[0] == "installed")


def images() -> list[dict[str, str]]:
    """Container images the host's container runtime holds, by digest."""
    if shutil.which("crictl") is None or not Path("/run/containerd/containerd.sock").exists():
        return []
    listing = json.loads(run("crictl", "images", "-o", "json"))
    found = []
    for image in listing.get("images", []):
        for digest in image.get("repoDigests") or []:
            found.append({"ref": digest, "tags": ",".join(sorted(image.get("repoTags") or []))})
    return sorted(found, key=lambda i: i["ref"])


def _rows(sql: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    out = run("mariadb", "--batch", "--skip-column-names", "-e", sql)
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        row: dict[str, Any] = {}
        for col, value in zip(columns, values, strict=False):
            row[col] = None if value == "NULL" else int(value) if col in NUMERIC else value
        rows.append(row)
    return rows


def mariadb() -> dict[str, Any]:
    sizes = _rows(
        "SELECT table_schema, SUM(data_length + index_length) FROM information_schema.tables "
        "GROUP BY table_schema ORDER BY table_schema",
        ("database", "size"),
    )
    found: dict[str, Any] = {
        "version": run(
            "mariadb", "--batch", "--skip-column-names", "-e", "SELECT VERSION()"
        ).strip(),
        "databases": {r["database"]: r["size"] for r in sizes},
    }
    for key, sql in QUERIES.items():
        try:
            found[key] = _rows(sql, COLUMNS[key])
        except ProbeError as exc:
            # A database the deployment does not have (no Cinder, say) is not an error.
            found[key] = []
            found.setdefault("notes", []).append(f"{key}: {exc}")
    return found


def ceph() -> dict[str, Any]:
    df = json.loads(run("ceph", "--connect-timeout", "20", "df", "--format", "json"))
    pools = {
        p["name"]: {"stored": p["stats"].get("stored", 0), "objects": p["stats"].get("objects", 0)}
        for p in df.get("pools", [])
    }
    rbd = {}
    for pool in sorted(pools):
        if pool.startswith(".") or "rgw" in pool:
            continue
        listing = json.loads(run("rbd", "ls", "--long", "--format", "json", "--pool", pool))
        rbd[pool] = sorted(
            ({"image": i["image"], "size": i["size"]} for i in listing if "snapshot" not in i),
            key=lambda i: i["image"],
        )
    return {"pools": dict(sorted(pools.items())), "rbd": rbd}


def du(path: Path) -> int:
    if not path.exists():
        raise ProbeError(f"{path} does not exist")
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def ledger(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = {"path": str(path), "bytes": du(path)}
    checkpoint = path / "checkpoint"
    if checkpoint.exists():
        found["checkpoint"] = checkpoint.read_text().splitlines()[:3]
    return found


def etcd(path: Path) -> dict[str, Any]:
    db = path / "member" / "snap" / "db"
    if not db.exists():
        raise ProbeError(f"{db} does not exist: etcd has not started here")
    return {"path": str(path), "bytes": db.stat().st_size}


READERS: dict[str, Callable[[str | None], dict[str, Any]]] = {
    "mariadb": lambda _arg: mariadb(),
    "ceph": lambda _arg: ceph(),
    "ledger": lambda arg: ledger(Path(arg or "/var/lib/sovdeploy-ledger")),
    "etcd": lambda arg: etcd(Path(arg or "/var/lib/etcd")),
}


def probe(stores: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {"host": socket.gethostname(), "stores": {}}
    for key, reader in (("packages", packages), ("images", images)):
        try:
            found[key] = reader()
        except ProbeError as exc:
            found[key] = []
            found.setdefault("errors", []).append(f"{key}: {exc}")
    for spec in stores:
        kind, _, arg = spec.partition(":")
        try:
            found["stores"][kind] = {"ok": True, **READERS[kind](arg or None)}
        except (ProbeError, OSError, ValueError, KeyError) as exc:
            found["stores"][kind] = {"ok": False, "error": str(exc)}
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--store", action="append", default=[], help="KIND[:PATH]: " + ", ".join(READERS)
    )
    args = parser.parse_args()
    unknown = [s for s in args.store if s.partition(":")[0] not in READERS]
    if unknown:
        parser.error(f"unknown store(s): {', '.join(unknown)}; known: {', '.join(READERS)}")
    json.dump(probe(args.store), sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
