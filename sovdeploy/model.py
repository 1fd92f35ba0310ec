"""Typed model of a deployment, built from an Ansible inventory by ``sovdeploy.inventory``.

Every ``sovdeploy_*`` variable an inventory may set is a field here; the field
names (minus the prefix) are the variable names, so the inventory reference
(docs/reference/inventory.md) is generated from this module and cannot drift from it.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

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
    #: A Go module proxy (Athens, goproxy): the source `sovdeploy mirror build` builds from.
    GO = "go"


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


class ConformanceProduct(Strict):
    """What PRODUCT.yaml of a cncf/k8s-conformance submission says about who submits it."""

    website_url: str = Field(description="the operator's page for this platform")
    documentation_url: str = Field(description="where its users find the documentation")
    contact_email_address: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+$", description="whom the CNCF asks about the submission"
    )
    product_logo_url: str | None = Field(default=None, description="a logo, SVG preferred")


class Kubernetes(Strict):
    """The Kubernetes cluster on the ``k8s_control`` and ``k8s_worker`` hosts."""

    endpoint: Endpoint | None = Field(
        default=None,
        description="the API server's address: keepalived moves it between the control "
        "hosts, HAProxy forwards it to each one's API server; needed with more than one",
    )
    pod_subnet: IPv4Network = Field(
        default=IPv4Network("10.244.0.0/16"), description="pods' addresses (each node's podCIDR)"
    )
    pod_network: Literal["flannel", "cilium"] = Field(
        default="flannel",
        description="flannel (built from source, host-gw routes) or cilium (upstream's images, "
        "for mirrors that hold them)",
    )
    service_subnet: IPv4Network = Field(
        default=IPv4Network("10.96.0.0/12"), description="services' cluster IPs"
    )
    dns_domain: str = Field(default="cluster.local", description="the cluster's DNS domain")
    conformance: ConformanceProduct | None = Field(
        default=None,
        description="the submitter's details for the conformance bundle's PRODUCT.yaml",
    )

    @model_validator(mode="after")
    def _apart(self) -> Kubernetes:
        if self.pod_subnet.overlaps(self.service_subnet):
            raise ValueError(
                f"pod_subnet {self.pod_subnet} overlaps service_subnet {self.service_subnet}"
            )
        return self


class ThirdPartyKind(StrEnum):
    HARDWARE = "hardware"
    COLOCATION = "colocation"
    SUPPORT = "support"
    CONNECTIVITY = "connectivity"
    OTHER = "other"


class ThirdParty(Strict):
    """An ICT third party the deployment depends on, for DORA's register of information."""

    name: str = Field(description="registered name of the provider")
    kind: ThirdPartyKind = Field(
        description="what it is: " + ", ".join(k.value for k in ThirdPartyKind)
    )
    country: CountryCode = Field(description="country whose law governs the provider")
    provides: str = Field(description="what it supplies to this deployment")
    contract: str | None = Field(default=None, description="contract reference, if any")
    ends: dt.date | None = Field(default=None, description="when the contract ends, if it does")
    substitute: str | None = Field(
        default=None, description="who or what replaces it on exit (the exit plan's answer)"
    )


class ExitPlan(Strict):
    """Recovery objectives the operator declares; the exit drill measures against them."""

    rto_hours: float | None = Field(
        default=None, gt=0, description="recovery time objective: data usable elsewhere within"
    )
    rpo_hours: float | None = Field(
        default=None, gt=0, description="recovery point objective: at most this much data lost"
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


CpuList = Annotated[str, StringConstraints(pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$")]


_MIG = re.compile(r"^(?P<slices>\d)g\.(?P<gb>\d+)gb$")


class GpuModel(Strict):
    """A catalogue entry for an accelerator (``sovdeploy/data/accelerators.yml`` has the fields)."""

    name: str = Field(description="product name, as discover and validate print it")
    vendor: Literal["nvidia", "amd", "intel", "other"] = Field(description="maker")
    memory_gb: int = Field(ge=0, description="board memory, GB")
    modes: tuple[GpuMode, ...] = Field(min_length=1, description="passthrough, vgpu, mig")
    host_drivers: tuple[str, ...] = Field(
        default=(), description="kernel modules kept off the device when it is passed through"
    )
    vgpu_prefix: str | None = Field(default=None, description="vGPU type name prefix")
    vgpu_memory_gb: tuple[int, ...] = Field(
        default=(), description="frame buffer sizes of the time-sliced vGPU types"
    )
    mig_profiles: tuple[str, ...] = Field(default=(), description="MIG profiles (1g.10gb)")

    def vgpu_types(self) -> tuple[str, ...]:
        """Time-sliced vGPU type names, e.g. ``H100XM-10C``."""
        return tuple(f"{self.vgpu_prefix}-{gb}C" for gb in self.vgpu_memory_gb)

    def mig_vgpu_type(self, profile: str) -> str:
        """The MIG-backed vGPU type of a MIG profile: ``1g.10gb`` → ``H100XM-1-10C``."""
        match = _MIG.match(profile)
        if match is None:
            raise ValueError(f"not a MIG profile: {profile}")
        return f"{self.vgpu_prefix}-{match['slices']}-{match['gb']}C"

    def profiles(self, mode: GpuMode) -> tuple[str, ...]:
        """The profiles a mode accepts (none for passthrough)."""
        if mode is GpuMode.VGPU:
            return self.vgpu_types()
        if mode is GpuMode.MIG:
            return self.mig_profiles
        return ()


class NicModel(Strict):
    """A catalogue entry for an SR-IOV or DPDK capable NIC."""

    name: str = Field(description="product name")
    max_vfs: int = Field(ge=0, description="most SR-IOV VFs the NIC offers")
    vf_id: str | None = Field(default=None, description="PCI vendor:device of its VFs")
    dpdk_driver: str = Field(description="driver DPDK needs the port bound to")


class SriovNetwork(Strict):
    """A provider network on the VFs of a physical network, for guests' SR-IOV ports."""

    physnet: str = Field(description="physical network of the VFs (a NIC's physnet)")
    type: Literal["vlan", "flat"] = Field(default="vlan", description="vlan or flat")
    vlan: int | None = Field(default=None, ge=1, le=4094, description="VLAN ID (vlan only)")
    cidr: IPv4Network = Field(description="the subnet's IPv4 CIDR")
    gateway: IPv4Address | None = Field(
        default=None, description="gateway address; none: the subnet has no gateway"
    )
    dhcp: bool = Field(default=True, description="OVN answers DHCP on the VFs' external ports")
    shared: bool = Field(default=True, description="every project may attach ports to it")

    @model_validator(mode="after")
    def _segment(self) -> SriovNetwork:
        if self.type == "vlan" and self.vlan is None:
            raise ValueError("a vlan network needs its vlan ID")
        if self.type == "flat" and self.vlan is not None:
            raise ValueError("a flat network has no vlan ID")
        if self.gateway is not None and self.gateway not in self.cidr:
            raise ValueError(f"gateway {self.gateway} is not in {self.cidr}")
        return self


class FlavorSize(Strict):
    """One accelerator's share of a flavor; a flavor with k GPUs gets k times it."""

    vcpus: int = Field(default=8, ge=1, description="vCPUs")
    ram_mb: int = Field(default=32768, ge=64, description="memory, MB")
    disk_gb: int = Field(default=80, ge=0, description="root disk, GB")


class LocalCatalogue(Strict):
    """Catalogue entries of this deployment, added to (or replacing) the shipped ones by ID."""

    gpus: dict[PciId, GpuModel] = Field(default={}, description="accelerators by vendor:device")
    nics: dict[PciId, NicModel] = Field(default={}, description="NICs by vendor:device")


class Gpu(Strict):
    """GPUs of one model in a host, all used the same way."""

    pci_id: PciId = Field(description="PCI vendor:device, lower-case hex, e.g. 10de:2330")
    count: int = Field(ge=1, le=16, description="how many the host has")
    mode: GpuMode = Field(
        default=GpuMode.PASSTHROUGH,
        description="passthrough (whole GPU), vgpu (time-sliced) or mig (MIG-backed vGPU)",
    )
    profile: str | None = Field(
        default=None,
        description="vgpu: the vGPU type, e.g. H100XM-10C; mig: the MIG profile, e.g. 1g.10gb",
    )


class Nic(Strict):
    """A network port, and what it is used for."""

    name: str = Field(description="interface name")
    pci_id: PciId | None = Field(
        default=None, description="PCI vendor:device, for the catalogue's VF limits"
    )
    numa_node: int | None = Field(default=None, ge=0, description="NUMA node the port sits on")
    sriov_vfs: int = Field(default=0, ge=0, le=256, description="SR-IOV virtual functions")
    physnet: str | None = Field(default=None, description="Neutron physical network of the VFs")
    trust: bool = Field(default=False, description="VF trust (guests may set MAC, promisc)")
    spoofchk: bool = Field(default=True, description="VF MAC/VLAN spoof checking")


class Dpdk(Strict):
    """OVS-DPDK datapath of a host."""

    hugepage_size: Literal["2M", "1G"] = Field(default="1G", description="hugepage size")
    hugepages: int = Field(ge=1, description="number of hugepages to reserve")
    pmd_cores: int = Field(
        ge=1, le=64, description="physical cores per NUMA node with a DPDK NIC, for PMD threads"
    )
    nics: tuple[str, ...] = Field(default=(), description="NICs bound to DPDK")
    socket_mem_mb: int = Field(
        default=1024, ge=512, description="hugepage memory per NUMA node for OVS (dpdk-socket-mem)"
    )
    pmd_cpus: CpuList | None = Field(
        default=None, description="explicit PMD CPUs, instead of pmd_cores (e.g. 2-3,34-35)"
    )


class Cpu(Strict):
    """CPU layout of a host (`sovdeploy discover` suggests it), and how cores are shared out."""

    vendor: Literal["intel", "amd"] = Field(description="CPU vendor: picks the IOMMU option")
    numa_nodes: int = Field(default=1, ge=1, le=16, description="NUMA nodes")
    cores_per_node: int = Field(ge=1, le=512, description="physical cores per NUMA node")
    threads_per_core: int = Field(default=2, ge=1, le=8, description="hardware threads per core")
    reserved_cores: int = Field(
        default=1, ge=1, description="physical cores per NUMA node kept for the host"
    )
    reserved_cpus: CpuList | None = Field(
        default=None, description="explicit host CPUs, instead of reserved_cores"
    )
    guest_cpus: CpuList | None = Field(
        default=None, description="explicit CPUs for pinned guests, instead of all the rest"
    )


class Hardware(Strict):
    """Hardware declared for a host (``sovdeploy_hardware`` in host_vars)."""

    cpu: Cpu | None = Field(default=None, description="CPU layout; needed for accelerated hosts")
    memory_gib: int | None = Field(default=None, ge=1, description="installed memory, GiB")
    gpus: tuple[Gpu, ...] = Field(default=(), description="GPUs by model")
    nics: tuple[Nic, ...] = Field(default=(), description="network ports with a purpose")
    dpdk: Dpdk | None = Field(default=None, description="OVS-DPDK datapath")

    @property
    def accelerated(self) -> bool:
        return bool(self.gpus or self.dpdk or any(n.sriov_vfs for n in self.nics))


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


class StandardFlavors(Strict):
    """The standard flavor set the tenancy phase creates beside the accelerator flavors."""

    set: Literal["scs-0103", "none"] = Field(
        default="scs-0103",
        description="scs-0103: the Sovereign Cloud Stack's mandatory flavors; none: no set",
    )
    ssd_root_disks: bool = Field(
        default=False,
        description="the compute hosts' local root disks give 1000 sequential IOPS a VM "
        "with power-loss protection (SCS-0110): only then are the two SSD flavors made",
    )


class IacEngine(StrEnum):
    """What applies the Terraform-language modules."""

    TOFU = "tofu"
    TERRAFORM = "terraform"


class MirrorService(Strict):
    """Where the deployer serves the mirror tree to the hosts (``sovdeploy mirror serve``)."""

    address: str = Field(description="the deployer's address the hosts reach (sandbox: gateway)")
    files_port: int = Field(default=8443, ge=1, le=65535, description="HTTPS files and providers")
    registry_port: int = Field(default=5000, ge=1, le=65535, description="the image registry")


class SupplyChain(Strict):
    """What ``sovdeploy mirror build`` builds from pinned source, and where it puts it."""

    dir: str = Field(
        default="/var/cache/sovdeploy/mirror",
        pattern=r"^/",
        description="the deployer-side tree built artifacts are published in",
    )
    build: tuple[Literal["opentofu", "providers", "kubernetes", "conformance"], ...] = Field(
        default=(),
        description="what to build from source: opentofu (the tofu binary), providers "
        "(the OpenTofu providers the modules use), kubernetes (binaries and images), "
        "conformance (e2e.test, ginkgo and the images the conformance tests run)",
    )
    serve: MirrorService | None = Field(
        default=None,
        description="serve the tree to the hosts over HTTPS with the deployment's CA "
        "(a registry for the images, files and providers)",
    )


class Provisioner(StrEnum):
    SANDBOX = "sandbox"
    BAREMETAL = "baremetal"


class HostImage(Strict):
    """The disk image Ironic writes onto each bare-metal host."""

    url: str = Field(pattern=r"^https?://", description="where Ironic fetches it (the mirror)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="its SHA-256")


class BareMetal(Strict):
    """Settings for the baremetal provisioner: the Ironic that enrolls and deploys hosts."""

    cloud: str | dict[str, Any] = Field(
        description="how the openstack.cloud modules reach Ironic: a cloud name of the "
        "deployer's clouds.yaml, or connection settings (a standalone Ironic: "
        "{auth_type: none, auth: {endpoint: URL}})"
    )
    image: HostImage = Field(description="the host disk image (Debian 13)")


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
    kubernetes: Kubernetes = Field(
        default=Kubernetes(), description="the Kubernetes cluster's API address and subnets"
    )
    terraform_backend: TerraformBackend = Field(
        default=TerraformBackend(), description="where Terraform state lives"
    )
    iac_engine: IacEngine = Field(
        default=IacEngine.TOFU,
        description="tofu (OpenTofu, open source) or terraform (BUSL since 1.6; accepted "
        "where an operator insists)",
    )
    supply: SupplyChain = Field(
        default=SupplyChain(), description="building artifacts from pinned source"
    )
    provisioner: Provisioner = Field(
        default=Provisioner.SANDBOX, description="sandbox (podman) or baremetal (Ironic)"
    )
    sandbox: Sandbox = Field(default=Sandbox(), description="sandbox provisioner settings")
    baremetal: BareMetal | None = Field(
        default=None, description="baremetal provisioner settings (Ironic and the host image)"
    )
    waivers: tuple[Waiver, ...] = Field(default=(), description="time-limited policy exceptions")
    flavor_size: FlavorSize = Field(
        default=FlavorSize(),
        description="size of the GPU, vGPU and DPDK flavors the tenancy phase creates",
    )
    standard_flavors: StandardFlavors = Field(
        default=StandardFlavors(), description="standard flavors the tenancy phase creates"
    )
    sriov_networks: dict[Name, SriovNetwork] = Field(
        default={}, description="provider networks on SR-IOV VFs, by name (tenancy phase)"
    )
    third_parties: tuple[ThirdParty, ...] = Field(
        default=(),
        description="hardware vendors, colocation, support and connectivity contracts "
        "(artifact sources, sites and servers are listed from their own settings)",
    )
    exit: ExitPlan = Field(
        default=ExitPlan(), description="declared RTO and RPO, for the runbook and the drill"
    )
    catalogue: LocalCatalogue = Field(
        default=LocalCatalogue(),
        description="accelerators and NICs the shipped catalogue lacks, by PCI ID",
    )

    @model_validator(mode="after")
    def _baremetal_settings(self) -> Settings:
        if self.provisioner is Provisioner.BAREMETAL and self.baremetal is None:
            raise ValueError("the baremetal provisioner needs sovdeploy_baremetal (cloud, image)")
        return self


#: Per-host ``sovdeploy_*`` variables (host_vars); everything else is deployment-wide.
HOST_KEYS: dict[str, str] = {
    "site": "name of the site (a key of sovdeploy_sites) the host stands in",
    "hardware": "declared hardware: cpu, memory_gib, gpus, nics, dpdk (keys below); "
    "`sovdeploy discover` suggests it",
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

    def has_openstack(self) -> bool:
        """An API endpoint and control hosts: the deployment runs OpenStack."""
        return self.settings.endpoint is not None and bool(self.hosts_in("control"))
