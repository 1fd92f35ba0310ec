"""runbook: the exit and portability runbook, from the hosts' own readings."""

from __future__ import annotations

from sovdeploy.context import Context
from sovdeploy.runbook.write import write_runbook


def run(ctx: Context) -> str:
    paths = write_runbook(ctx)
    return f"runbook in {paths[0].parent} ({', '.join(p.name for p in paths[:3])})"
