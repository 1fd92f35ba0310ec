"""The ``sovdeploy`` command: parse, call the library, render. The only place that exits.

One module a group of commands; each registers its commands on :data:`base.main`.
"""

from __future__ import annotations

from sovdeploy.cli import audit, deploy, inventory, mirror
from sovdeploy.cli.base import main

__all__ = ["audit", "deploy", "inventory", "main", "mirror"]
