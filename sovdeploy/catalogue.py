"""The accelerator and NIC catalogue (``sovdeploy/data/accelerators.yml``), by PCI ID."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict

from sovdeploy.model import Deployment, GpuModel, LocalCatalogue, NicModel

__all__ = ["Catalogue", "GpuModel", "NicModel", "for_deployment", "load"]


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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


def extended(local: LocalCatalogue) -> Catalogue:
    """The shipped catalogue with a deployment's own entries (theirs win on the same ID)."""
    shipped = load()
    if not local.gpus and not local.nics:
        return shipped
    return Catalogue(gpus={**shipped.gpus, **local.gpus}, nics={**shipped.nics, **local.nics})


def for_deployment(deployment: Deployment) -> Catalogue:
    """What a deployment's hosts are checked and planned against (``sovdeploy_catalogue``)."""
    return extended(deployment.settings.catalogue)
