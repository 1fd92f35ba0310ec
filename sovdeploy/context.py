"""What every phase and every command that acts on a deployment is handed: one typed object."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sovdeploy.inventory import LoadedInventory
from sovdeploy.model import Deployment
from sovdeploy.progress import Progress
from sovdeploy.state import Run, StateDir


@dataclass
class Context:
    """The checked inventory, the state dir, the run (and its ledger) and the display."""

    inventory: LoadedInventory
    state: StateDir
    run: Run
    progress: Progress

    @property
    def deployment(self) -> Deployment:
        return self.inventory.deployment

    def record_artifact(self, *paths: Path) -> None:
        """Put the digest of each file the orchestrator generated into the run and ledger."""
        for path in paths:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self.run.record("artifact", path=str(path.relative_to(self.state.root)), sha256=digest)
