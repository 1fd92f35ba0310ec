"""A command's session on a deployment, shared by up, plan, down, verify, runbook and more.

Load and check the inventory, make sure the vault holds what the roles need, take the
state dir's lock, open the orchestrator's ledger and a run, record the command (its
arguments with secrets redacted), hand the phases a :class:`~sovdeploy.context.Context`,
record how the command ended, and forward the ledger to the log host afterwards.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from sovdeploy import __version__, views
from sovdeploy import inventory as inv
from sovdeploy.context import Context
from sovdeploy.errors import LedgerError
from sovdeploy.findings import Severity
from sovdeploy.ledger import forward as ledger_forward
from sovdeploy.ledger import local as ledger_local
from sovdeploy.progress import Progress
from sovdeploy.secrets import SECRET_WORDS
from sovdeploy.state import StateDir, new_run_id
from sovdeploy.steps.credentials import prepare_secrets


def redact_argv(argv: list[str]) -> list[str]:
    """The arguments with the value of any option named like a secret replaced."""
    result: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            result.append("<redacted>")
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        secret = arg.startswith("-") and any(w in name.lower() for w in SECRET_WORDS)
        if secret and eq:
            result.append(f"{name}=<redacted>")
        else:
            result.append(arg)
            hide_next = secret
    return result


@contextlib.contextmanager
def open_session(
    inventory: Path,
    verbose: int,
    command: str,
    secrets: str = "check",
    *,
    hardware: bool = True,
    console: Console,
    err: Console,
) -> Iterator[Context]:
    """Open the state dir, the ledger and a run; ``console`` gets progress, ``err`` warnings."""
    loaded = inv.load(inventory, hardware=hardware)
    if secrets != "skip":
        create = secrets == "create" and loaded.deployment.settings.provisioner.value == "sandbox"
        loaded = prepare_secrets(loaded, create=create)
    state = StateDir(loaded.path)
    run_id = new_run_id()
    with state.lock({"command": command, "run": run_id}, on_wait=err.print):
        try:
            with ledger_local.open_ledger(state.root, loaded.deployment.name) as ledger:
                run = state.new_run(run_id)
                run.ledger = ledger
                progress = Progress(console, verbosity=verbose)
                run.record(
                    "command",
                    command=command,
                    argv=redact_argv(sys.argv[1:]),
                    user=getpass.getuser(),
                    host=socket.gethostname(),
                    inventory=str(loaded.path),
                    inventory_digest=loaded.digest,
                    version=__version__,
                )
                views.render_findings(
                    [f for f in loaded.findings if f.severity is not Severity.ERROR], console
                )
                try:
                    yield Context(loaded, state, run, progress)
                except BaseException as exc:
                    run.record("command_end", status="failed", error=type(exc).__name__)
                    raise
                else:
                    run.record("command_end", status="done")
                finally:
                    progress.close()
                    run.close()
        finally:
            # After the ledger's final checkpoint, failed commands included: the log
            # host should hold the record of a failure most of all.
            forward_ledger(state, console, err)


def forward_ledger(state: StateDir, console: Console, err: Console) -> None:
    """Post the orchestrator's new ledger records to the log host, if there is one yet.

    A log host that cannot be reached does not fail the command: the records are
    durable here, and the next command sends them; ``err`` gets that warning.
    """
    try:
        ep = ledger_forward.endpoint(state.root)
        if ep is None:
            return
        done = ledger_forward.forward(state.root, ep)
    except (LedgerError, OSError, ValueError) as exc:
        err.print(
            f"[yellow]warning[/yellow]: the ledger was not forwarded to the log host: {exc}; "
            "the next command sends what is missing"
        )
        return
    if done.sent:
        console.print(f"[dim]ledger: {done.sent} record(s) forwarded to {ep.host} ({ep.url})[/dim]")
