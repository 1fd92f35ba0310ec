"""Each CLI option defined once, shared by the commands that take it."""

from __future__ import annotations

from pathlib import Path

import click

from sovdeploy.phases import PHASE_NAMES


def _default_inventory() -> str:
    from sovdeploy.paths import project_root

    return str(project_root() / "inventories" / "sandbox")


inventory = click.option(
    "-i",
    "--inventory",
    "inventory",
    type=click.Path(path_type=Path, file_okay=True, dir_okay=True),
    default=_default_inventory,
    show_default="inventories/sandbox",
    envvar="SOVDEPLOY_INVENTORY",
    help="Ansible inventory directory of the deployment.",
)
as_json = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
verbose = click.option("-v", "--verbose", count=True, help="More output; repeat for more.")
yes = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
from_phase = click.option(
    "--from",
    "from_phase",
    type=click.Choice(PHASE_NAMES),
    help="Run from this phase on, even if done earlier.",
)
only_phase = click.option(
    "--only",
    "only_phase",
    type=click.Choice(PHASE_NAMES),
    help="Run only this phase (and preflight).",
)
