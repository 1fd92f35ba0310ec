"""Typed model of a deployment, built from an Ansible inventory by ``sovdeploy.inventory``.

Every ``sovdeploy_*`` variable an inventory may set is a field here; the field
names (minus the prefix) are the variable names, so the inventory reference in
the README is generated from this module and cannot drift from it.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

#: The groups sovdeploy gives meaning to; an inventory may have others (e.g. per rack).
ROLE_GROUPS: tuple[str, ...] = (
    "control",
    "compute",
    "network",
    "storage",
    "logging",
    "k8s_control",
    "k8s_worker",
)

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
PciId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{4}:[0-9a-f]{4}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Strict(BaseModel):
    """Base for inventory models: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(Strict):
    """A physical location the operator controls."""

    country: CountryCode = Field(description="ISO 3166-1 alpha-2 country of the site")
    city: str = Field(description="city, for the attestation and the runbook")
    owner: str = Field(description="who owns or leases the facility")


class Parent(Strict):
    """A company that controls the operator, directly or further up."""

    name: str = Field(description="registered name")
    country: CountryCode = Field(description="country whose law governs this company")


class Operator(Strict):
    """The legal entity that runs the deployment, and who controls it."""

    name: str = Field(description="registered name")
    country: CountryCode = Field(description="country of establishment")
    parents: tuple[Parent, ...] = Field(default=(), description="controlling companies")


class SourceKind(StrEnum):
    APT = "apt"
    CONTAINER_REGISTRY = "container_registry"
    TERRAFORM_PROVIDERS = "terraform_providers"
    PYPI = "pypi"
    FILES = "files"


class ArtifactSource(Strict):
    """A place artifacts are fetched from at deploy time."""

    kind: SourceKind = Field(
        description="what it serves: " + ", ".join(k.value for k in SourceKind)
    )
    url: str = Field(description="URL, or an absolute path for a filesystem mirror")
    country: CountryCode = Field(description="country the source is hosted and operated in")
    operator: str | None = Field(default=None, description="who runs the source")


class Server(Strict):
    """An NTP or DNS server."""

    host: str = Field(description="host name or address")
    country: CountryCode = Field(description="country the server is in")


class LogArchive(Strict):
    """S3-compatible WORM archive for the ledger (Object Lock)."""

    endpoint: str = Field(description="S3 endpoint URL")
    bucket: str = Field(description="bucket with Object Lock enabled")
    country: CountryCode = Field(description="country the archive is in")
    retention_days: int = Field(default=183, ge=183, description="Object Lock retention; >= 183")


class Endpoint(Strict):
    """Where clients reach the cloud's APIs: HAProxy, with TLS from the deployment's CA."""

    address: IPv4Address = Field(
        description="API address: a free address that keepalived moves between controllers, "
        "or the controller's own address where there is only one"
    )
    name: str | None = Field(
        default=None, description="DNS name of the APIs (in the certificate and the catalog)"
    )
    interface: str | None = Field(
        default=None, description="interface keepalived puts the address on (multi-controller)"
    )


class TerraformBackend(Strict):
    """Where Terraform keeps its state. ``local`` keeps it in the state dir."""

    type: Literal["local", "s3", "http", "pg"] = Field(default="local", description="backend type")
    config: dict[str, str | int | bool] = Field(
        default_factory=dict, description="backend settings, as in a backend block"
    )
    country: CountryCode | None = Field(
        default=None, description="required for any backend but local"
    )


class Waiver(Strict):
    """An accepted, time-limited exception to one policy rule for one subject."""

    rule: str = Field(description="the finding code it waives, e.g. jurisdiction.artifact_source")
    subject: str = Field(description="what it applies to, as printed in the finding")
    reason: str = Field(min_length=10, description="why the exception is accepted")
    expires: dt.date = Field(description="last day it applies (YYYY-MM-DD)")


class Sandbox(Strict):
    """Settings for the sandbox provisioner (podman containers on this machine)."""

    network: Name = Field(default="sovdeploy-sandbox", description="podman network name")
    subnet: str = Field(default="10.89.40.0/24", description="IPv4 CIDR of the podman network")
    image: str = Field(
        default="localhost/sovdeploy/debian13-sandbox:latest", description="host image"
    )
    privileged: bool = Field(default=True, description="run hosts as privileged containers")
    apt_cache: str | None = Field(
        default="/var/cache/sovdeploy/apt", description="host dir bind-mounted as the apt cache"
    )
    vms: tuple[Name, ...] = Field(
        default=(),
        description=(
            "hosts that run as QEMU virtual machines rather than containers, on the same "
            "network: those whose kernel matters (auditd)"
        ),
    )
    vm_image: str = Field(
        default="/var/lib/sovdeploy/vm-images/latest",
        description="virtual machine image directory (built by `sovdeploy sandbox image`)",
    )
    vm_memory: int = Field(default=3072, ge=1024, description="memory of each VM, in MiB")

    @field_validator("subnet")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if not re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}/(1[6-9]|2[0-8])", value):
            raise ValueError("must be an IPv4 CIDR with a prefix from /16 to /28")
        return value


class GpuMode(StrEnum):
    PASSTHROUGH = "passthrough"
    VGPU = "vgpu"
    MIG = "mig"


class Gpu(Strict):
    pci_id: PciId = Field(description="PCI vendor:device, lower-case hex, e.g. 10de:2330")
    count: int = Field(ge=1, le=16)
    mode: GpuMode = GpuMode.PASSTHROUGH
    profile: str | None = Field(default=None, description="vGPU type or MIG profile")


class Nic(Strict):
    name: str = Field(description="interface name or PCI address")
    sriov_vfs: int = Field(default=0, ge=0, le=256)
    physnet: str | None = None


class Dpdk(Strict):
    hugepage_size: Literal["2M", "1G"] = "1G"
    hugepages: int = Field(ge=1, description="number of hugepages to reserve")
    pmd_cores: int = Field(ge=1, le=64, description="cores per NUMA node for PMD threads")
    nics: tuple[str, ...] = Field(default=(), description="NICs bound to DPDK")


class Hardware(Strict):
    """Hardware declared for a host (``sovdeploy_hardware`` in host_vars)."""

    gpus: tuple[Gpu, ...] = ()
    nics: tuple[Nic, ...] = ()
    dpdk: Dpdk | None = None


class Bmc(Strict):
    """Out-of-band management of a bare-metal host (credentials live in the vault)."""

    driver: Literal["ipmi", "redfish"] = "redfish"
    address: str
    boot_mac: str = Field(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


class Host(Strict):
    name: Name
    site: str
    groups: tuple[str, ...]
    address: str | None = None
    hardware: Hardware = Hardware()
    bmc: Bmc | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(g for g in self.groups if g in ROLE_GROUPS)


class Provisioner(StrEnum):
    SANDBOX = "sandbox"
    BAREMETAL = "baremetal"


class Settings(Strict):
    """Deployment-wide settings: ``sovdeploy_<field>`` in ``group_vars/all/``."""

    deployment: Name = Field(description="name of the deployment, unique per operator")
    region: str = Field(default="RegionOne", description="OpenStack region name")
    allowed_jurisdictions: tuple[str, ...] = Field(
        min_length=1, description="ISO 3166-1 alpha-2 codes, or EU / EEA"
    )
    sites: dict[str, Site] = Field(min_length=1, description="sites by name")
    operator: Operator = Field(description="the legal entity running the deployment")
    artifact_sources: dict[str, ArtifactSource] = Field(
        min_length=1, description="every place packages, images and providers come from"
    )
    ntp_servers: tuple[Server, ...] = Field(min_length=1, description="time sources")
    dns_servers: tuple[Server, ...] = Field(min_length=1, description="resolvers")
    log_archive: LogArchive = Field(description="WORM archive of the ledger")
    endpoint: Endpoint | None = Field(
        default=None, description="the API endpoint; needed once OpenStack is deployed"
    )
    terraform_backend: TerraformBackend = Field(
        default=TerraformBackend(), description="where Terraform state lives"
    )
    provisioner: Provisioner = Field(
        default=Provisioner.SANDBOX, description="sandbox (podman) or baremetal (Ironic)"
    )
    sandbox: Sandbox = Field(default=Sandbox(), description="sandbox provisioner settings")
    waivers: tuple[Waiver, ...] = Field(default=(), description="time-limited policy exceptions")


#: Per-host ``sovdeploy_*`` variables (host_vars); everything else is deployment-wide.
HOST_KEYS: dict[str, str] = {
    "site": "name of the site (a key of sovdeploy_sites) the host stands in",
    "hardware": "declared hardware: gpus, nics, dpdk",
    "bmc": "out-of-band management for bare-metal provisioning",
}


class Deployment(Strict):
    settings: Settings
    hosts: tuple[Host, ...]

    @property
    def name(self) -> str:
        return self.settings.deployment

    def hosts_in(self, group: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if group in h.groups)
