"""Where sovdeploy's own roles, playbooks and Terraform modules live."""

from __future__ import annotations

import os
from pathlib import Path

from sovdeploy.errors import UsageError


def project_root() -> Path:
    """Return the directory holding ``roles/``, ``playbooks/`` and ``terraform/``.

    ``SOVDEPLOY_HOME`` overrides it; by default it is the checkout the package was
    installed from (``pip install -e``), which is how ``make up`` installs it.
    """
    env = os.environ.get("SOVDEPLOY_HOME")
    root = Path(env) if env else Path(__file__).resolve().parent.parent
    if not (root / "playbooks").is_dir():
        raise UsageError(
            f"cannot find sovdeploy's playbooks under {root}: install from a checkout "
            "with `pip install -e .` or set SOVDEPLOY_HOME to one"
        )
    return root


def containers_conf() -> Path:
    """The podman configuration the sandbox and Molecule use."""
    return project_root() / ".config" / "containers" / "containers.conf"
