"""Gather the hosts' facts and write the runbook (the runbook phase, `runbook`, the drill)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sovdeploy.context import Context
from sovdeploy.errors import AnsibleRunError, UsageError
from sovdeploy.hostside import probe
from sovdeploy.runbook import document, facts, stores
from sovdeploy.steps.playbooks import run_tool_playbook


def gather_runbook_facts(ctx: Context) -> dict[str, Any]:
    """Read every host's stores, packages and images, and the deployer's stores.

    Read-only. A host that does not answer is recorded as such (its stores unreadable)
    rather than failing the command: the runbook must say what it could not read.
    """
    asked = facts.probe_stores(stores.data_stores(ctx.deployment))
    incoming = ctx.run.path / "runbook-facts"
    incoming.mkdir(parents=True, exist_ok=True)

    ctx.progress.step("reading every host's data stores, packages and images")
    try:
        run_tool_playbook(
            ctx,
            "runbook",
            {
                "runbook_reader": probe.__file__,
                "runbook_dir": str(incoming),
                "runbook_stores": asked,
            },
        )
    except AnsibleRunError as exc:
        # What answered is kept; the rest is named unreadable in the document.
        ctx.progress.note(f"not every host answered: {exc}", ok=False)
    probed = {path.stem: json.loads(path.read_text()) for path in sorted(incoming.glob("*.json"))}
    found = facts.assemble(
        ctx.deployment,
        asked,
        probed,
        facts.local(ctx.state, ctx.inventory.path),
        facts.stamp(),
        addresses={
            **{h.name: h.address for h in ctx.deployment.hosts if h.address},
            **ctx.state.provisioned_addresses(),
        },
    )
    facts.save(ctx.state, found)
    return found


def write_runbook(ctx: Context, *, gather: bool = True) -> list[Path]:
    """Write the runbook into the state dir and record its files' digests in the ledger.

    Raises:
        UsageError: without ``gather``, when no facts have been gathered yet.

    """
    found = gather_runbook_facts(ctx) if gather else facts.load(ctx.state)
    if found is None:
        raise UsageError(
            "no facts gathered for this deployment yet: run `sovdeploy runbook` without "
            "--no-gather first"
        )
    directory = ctx.state.root / "runbook"
    runbook = document.build(
        ctx.deployment,
        list(ctx.inventory.findings),
        found,
        document.load_drill(directory),
        inventory=str(ctx.inventory.path),
        state=str(ctx.state.root),
        conformance=document.load_conformance(ctx.state.root / "conformance"),
    )
    paths = document.write(directory, runbook)
    ctx.run.record("runbook_written", directory=str(directory), sha256=runbook.digests())
    return paths
