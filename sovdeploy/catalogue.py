"""The accelerator and NIC catalogue (``sovdeploy/data/accelerators.yml``), by PCI ID."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from sovdeploy.model import GpuMode

_MIG = re.compile(r"^(?P<slices>\d)g\.(?P<gb>\d+)gb$")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuModel(_Entry):
    name: str
    vendor: Literal["nvidia", "amd"]
    memory_gb: int
    modes: tuple[GpuMode, ...]
    host_drivers: tuple[str, ...]
    vgpu_prefix: str | None = None
    vgpu_memory_gb: tuple[int, ...] = ()
    mig_profiles: tuple[str, ...] = ()

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


class NicModel(_Entry):
    name: str
    max_vfs: int = Field(ge=0)
    vf_id: str | None = None
    dpdk_driver: str


class Catalogue(_Entry):
    gpus: dict[str, GpuModel]
    nics: dict[str, NicModel]

    def gpu(self, pci_id: str) -> GpuModel | None:
        return self.gpus.get(pci_id)

    def nic(self, pci_id: str | None) -> NicModel | None:
        return self.nics.get(pci_id) if pci_id else None


@cache
def load() -> Catalogue:
    """The catalogue shipped with sovdeploy."""
    text = resources.files("sovdeploy").joinpath("data/accelerators.yml").read_text("utf-8")
    return Catalogue.model_validate(yaml.safe_load(text))
