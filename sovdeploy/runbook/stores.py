"""Every data store a deployment has, from its model: where it is and what holds it.

The catalogue follows the roles: the OpenStack databases on MariaDB on the first
control host, Glance images, Cinder volumes and backups and the guests' disks in Ceph
pools on the storage hosts, etcd on the Kubernetes control hosts, the ledger on the log
hosts and its WORM archive, and on the deployer the vault, the CA, the Terraform state
and the orchestrator's own ledger. A store is listed only where the deployment has the
hosts that hold it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sovdeploy.model import Deployment

#: The OpenStack databases, by the service that owns them (as the roles create them).
DATABASES = (
    ("keystone", "keystone"),
    ("glance", "glance"),
    ("cinder", "cinder"),
    ("placement", "placement"),
    ("neutron", "neutron"),
    ("nova", "nova_api"),
    ("nova", "nova"),
    ("nova", "nova_cell0"),
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
            )
        )
    found += [
        DataStore("vault", "secrets vault", "file", (), "the deployment's generated secrets"),
        DataStore("ca", "deployment CA", "file", (), "the CAs' certificates"),
        DataStore("terraform", "Terraform state", "file", (), "what provision created"),
        DataStore("run-ledger", "orchestrator ledger", "ledger", (), "every sovdeploy command"),
    ]
    return found
