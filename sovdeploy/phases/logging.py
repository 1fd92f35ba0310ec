"""logging: the ledger service on the log hosts; every host's journal shipped to it."""

from __future__ import annotations

from typing import Any

from sovdeploy import bundle
from sovdeploy.context import Context
from sovdeploy.ledger import forward as ledger_forward
from sovdeploy.steps.playbooks import playbook_phase


def logging_vars(ctx: Context) -> dict[str, Any]:
    """Pack the ledger service's code for the log hosts; say where their keys go."""
    out = ctx.state.root / "logging"
    path = out / "sovdeploy-ledger.tar.gz"
    bundle.write(path)
    ctx.record_artifact(path)
    return {
        "logging_bundle": str(path),
        "logging_keys_dir": str(ctx.state.logging_keys),
        "logging_client_dir": str(ctx.state.root / ledger_forward.CLIENT_DIR),
    }


def run(ctx: Context) -> str:
    summary = playbook_phase("logging", check=False, extravars=logging_vars)(ctx)
    keys_dir = ctx.state.logging_keys
    keys = sorted(keys_dir.glob("*.vkey"))
    witnesses = [k for k in keys if k.name.endswith(".witness.vkey")]
    seals = sorted(keys_dir.glob("*.fss"))
    ctx.record_artifact(*keys, *seals)
    summary += (
        f"; in {keys_dir}: {len(keys) - len(witnesses)} log key(s), {len(witnesses)} "
        f"witness key(s), {len(seals)} journal verification key(s)"
    )
    ep = ledger_forward.endpoint(ctx.state.root)
    if ep is not None:
        ctx.record_artifact(ep.cert)
        summary += f"; the orchestrator's ledger goes to {ep.host} after each command"
    return summary
