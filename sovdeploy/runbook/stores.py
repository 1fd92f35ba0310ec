"""Every data store a deployment has, from its model: where it is and what holds it.

The catalogue follows the roles: the OpenStack databases on MariaDB on the first
control host, Glance images, Cinder volumes and backups and the guests' disks in Ceph
pools on the storage hosts, etcd on the Kubernetes control hosts, the ledger on the log
hosts and its WORM archive, and on the deployer the vault, the CA, the Terraform state
and the orchestrator's own ledger. A store is listed only where the deployment has the
hosts that hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sovdeploy.model import Deployment

#: The OpenStack databases, by the service that owns them (as the roles create them).
DATABASES = (
    ("Keystone: projects, users, role assignments, credentials", "keystone"),
    ("Glance: image records, locations, hashes, members", "glance"),
    ("Cinder: volume, snapshot and backup records", "cinder"),
    ("Placement: resource providers, inventories, allocations", "placement"),
    ("Neutron: networks, subnets, ports, routers, security groups", "neutron"),
    ("Nova API: flavors, key pairs, cell mappings, request specs", "nova_api"),
    ("Nova: servers, their block device mappings and actions", "nova"),
    ("Nova cell0: servers that were never scheduled", "nova_cell0"),
)
#: The Ceph pools the ceph role creates, and what each holds.
POOLS = (
    ("images", "Glance images"),
    ("volumes", "Cinder volumes"),
    ("vms", "guests' ephemeral disks"),
    ("backups", "Cinder backups"),
)


@dataclass(frozen=True)
class DataStore:
    key: str
    title: str
    kind: str
    #: The hosts that hold it; empty: the deployer (the operator's machine), unless
    #: ``service`` names the outside service that holds it.
    hosts: tuple[str, ...]
    holds: str
    service: str | None = None
    #: For a store outside the hosts (the WORM archive): its S3 endpoint and bucket.
    endpoint: str | None = None
    bucket: str | None = None


def _first(deployment: Deployment, group: str) -> tuple[str, ...]:
    names = sorted(h.name for h in deployment.hosts_in(group))
    return tuple(names[:1])


def data_stores(deployment: Deployment) -> list[DataStore]:
    """The deployment's data stores, in the order the runbook exports them."""
    found: list[DataStore] = []
    control = _first(deployment, "control")
    if control and deployment.settings.endpoint is not None:
        for service, name in DATABASES:
            found.append(
                DataStore(f"mariadb/{name}", f"{name} database", "database", control, service)
            )
    storage = tuple(sorted(h.name for h in deployment.hosts_in("storage")))
    if storage:
        for pool, holds in POOLS:
            found.append(
                DataStore(f"ceph/{pool}", f"Ceph pool {pool}", "ceph-pool", storage, holds)
            )
    k8s = tuple(sorted(h.name for h in deployment.hosts_in("k8s_control")))
    if k8s:
        found.append(DataStore("etcd", "etcd", "etcd", k8s, "the Kubernetes cluster's state"))
    logs = tuple(sorted(h.name for h in deployment.hosts_in("logging")))
    if logs:
        found.append(
            DataStore("ledger", "the ledger", "ledger", logs, "every host's journal, sealed")
        )
        archive = deployment.settings.log_archive
        found.append(
            DataStore(
                "ledger-archive",
                f"WORM archive {archive.bucket}",
                "s3-bucket",
                (),
                "the ledger's tiles, under Object Lock",
                service=f"S3 {archive.endpoint} ({archive.country})",
                endpoint=archive.endpoint,
                bucket=archive.bucket,
            )
        )
    found += [
        DataStore("vault", "secrets vault", "file", (), "the deployment's generated secrets"),
        DataStore("ca", "deployment CA", "file", (), "the CAs' certificates"),
        DataStore("terraform", "Terraform state", "file", (), "what provision created"),
        DataStore("run-ledger", "orchestrator ledger", "ledger", (), "every sovdeploy command"),
    ]
    return found


@dataclass(frozen=True)
class Step:
    """One export: a command whose standard output is the exported file.

    The drill runs ``before``, then ``argv`` into ``<file>.part``, checks it, renames it
    to ``file``, then runs ``after``; the runbook prints the same commands.
    """

    store: str
    #: The host it runs on; None: the deployer.
    host: str | None
    item: str
    file: str
    argv: tuple[str, ...]
    fmt: str
    before: tuple[tuple[str, ...], ...] = ()
    after: tuple[tuple[str, ...], ...] = ()
    #: What the export must hash to, when the store itself records it: (algorithm, hex).
    expect: tuple[str, str] | None = None


def _rbd(pool: str, image: str, snap: str | None) -> tuple[str, ...]:
    source = f"{pool}/{image}" + (f"@{snap}" if snap else "")
    return ("rbd", "export", "--no-progress", source, "-")


def _pool_steps(store: DataStore, facts: dict[str, Any], snap: str) -> list[Step]:
    pool = store.key.split("/", 1)[1]
    host = store.hosts[0]
    steps = []
    if pool == "images":
        # Glance's own record says what each image hashes to: the export must match it.
        for image in facts.get("images", []):
            expect = (str(image["hash_algo"]), str(image["hash"])) if image.get("hash") else None
            steps.append(
                Step(
                    store.key,
                    host,
                    f"image {image['name'] or image['id']} ({image['disk_format']})",
                    f"images/{image['id']}.{image['disk_format']}",
                    _rbd(pool, str(image["id"]), None),
                    str(image["disk_format"]),
                    expect=expect,
                )
            )
        return steps
    for rbd in facts.get("rbd", {}).get(pool, []):
        name = str(rbd["image"])
        # A snapshot makes the export of an attached disk consistent to one instant.
        steps.append(
            Step(
                store.key,
                host,
                f"{holds_of(pool)}: {name}",
                f"{pool}/{name}.raw",
                _rbd(pool, name, snap),
                "raw",
                before=(("rbd", "snap", "create", f"{pool}/{name}@{snap}"),),
                after=(("rbd", "snap", "rm", "--no-progress", f"{pool}/{name}@{snap}"),),
            )
        )
    return steps


def holds_of(pool: str) -> str:
    return dict(POOLS).get(pool, pool)


def dump_argv(database: str) -> tuple[str, ...]:
    """The dump of one database: consistent in one transaction, no date (same data, same bytes)."""
    return (
        "mariadb-dump",
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--skip-dump-date",
        "--databases",
        database,
    )


def _database(store: DataStore) -> list[Step]:
    name = store.key.split("/", 1)[1]
    argv = dump_argv(name)
    return [Step(store.key, store.hosts[0], f"{name} database", f"mariadb/{name}.sql", argv, "sql")]


def _etcd(store: DataStore, snap: str) -> list[Step]:
    # etcdctl writes its snapshot to a file on the host: stream that back with cat.
    save = (
        'crictl exec "$(crictl ps --name etcd -q)" etcdctl --endpoints=https://127.0.0.1:2379 '
        "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt "
        f"--key=/etc/kubernetes/pki/etcd/server.key snapshot save /var/lib/etcd/{snap}.db"
    )
    return [
        Step(
            store.key,
            store.hosts[0],
            "etcd snapshot",
            "etcd/snapshot.db",
            ("cat", f"/var/lib/etcd/{snap}.db"),
            "etcd snapshot",
            before=(("sh", "-c", save),),
            after=(("rm", "-f", f"/var/lib/etcd/{snap}.db"),),
        )
    ]


#: Where a log host has the ledger's code (the logging role's bundle directory).
LEDGER_CODE = "/opt/sovdeploy-ledger/current"
#: Where the logging role keeps the ledger's tiles and checkpoint on a log host.
LOG_HOST_LEDGER = "/var/lib/sovdeploy-ledger/log"


def snapshot_argv(log_dir: str) -> tuple[str, ...]:
    """The command that writes a consistent snapshot of a live ledger as a tar."""
    return ("python3", "-m", "sovdeploy.hostside.snapshot", log_dir)


def _ledger(store: DataStore, host_facts: dict[str, Any]) -> list[Step]:
    path = str(host_facts.get("path") or LOG_HOST_LEDGER)
    # The log is live: a tar of its directory races the writer. The snapshot copies one
    # checkpoint and exactly the tiles it covers, and checks them against its root.
    # As the service runs it: the bundle's code, which no .pyc is written into.
    code = ("env", "PYTHONDONTWRITEBYTECODE=1", f"PYTHONPATH={LEDGER_CODE}")
    argv = (*code, *snapshot_argv(path))
    item = "ledger tiles and checkpoint"
    return [Step(store.key, store.hosts[0], item, "ledger/log-host.tar", argv, "tar of tlog tiles")]


def _archive(store: DataStore, state: str) -> list[Step]:
    assert store.endpoint and store.bucket
    argv = (
        "python3",
        "-m",
        "sovdeploy.runbook.archive_export",
        "--endpoint",
        store.endpoint,
        "--bucket",
        store.bucket,
        "--ca-file",
        f"{state}/pki/ca.crt",
    )
    fmt = "tar of the bucket's objects"
    return [Step(store.key, None, store.title, "ledger-archive.tar", argv, fmt)]


def _local(store: DataStore, inventory: str, state: str) -> list[Step]:
    where = {
        "vault": (inventory, "group_vars/all/secrets.vault.yml", "ansible-vault file (encrypted)"),
        "ca": (state, "pki", "tar of PEM certificates"),
        "terraform": (state, "terraform", "tar of Terraform state (JSON)"),
        "run-ledger": (state, "ledger", "tar of tlog tiles"),
    }
    if store.key not in where:
        return []
    root, rel, fmt = where[store.key]
    file = f"deployer/{store.key}.tar"
    if store.kind == "ledger":
        argv = snapshot_argv(f"{root}/{rel}")
    elif rel.endswith(".yml"):
        file, argv = f"deployer/{rel.rsplit('/', 1)[-1]}", ("cat", f"{root}/{rel}")
    else:
        argv = ("tar", "--sort=name", "-C", root, "-cf", "-", rel)
    return [Step(store.key, None, store.title, file, argv, fmt)]


def steps(
    store: DataStore, host_facts: dict[str, Any], *, inventory: str, state: str, snap: str
) -> list[Step]:
    """The export steps of one store. ``host_facts``: what its holder's probe read.

    Args:
        store: the store.
        host_facts: the probe's reading of the store on its first host (``stores`` entry).
        inventory: the inventory directory, for the vault.
        state: the state directory, for the deployer's stores.
        snap: the name of the snapshots the export takes (unique per run).

    """
    if host_facts.get("empty"):
        return []
    on_hosts: dict[str, Callable[[], list[Step]]] = {
        "database": lambda: _database(store),
        "ceph-pool": lambda: _pool_steps(store, host_facts, snap),
        "etcd": lambda: _etcd(store, snap),
        "ledger": lambda: _ledger(store, host_facts),
    }
    if store.hosts and store.kind in on_hosts:
        return on_hosts[store.kind]()
    if store.endpoint and store.bucket:
        return _archive(store, state)
    return _local(store, inventory, state)
