"""Typed errors. Library code raises these; only ``cli.py`` turns them into exit codes."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sovdeploy.findings import Finding

#: Exit code for bad input: a malformed or contradictory inventory, a policy violation.
EXIT_INVALID = 2
#: Exit code for a failed step against the world (Terraform, Ansible, podman).
EXIT_FAILED = 1
#: Exit code after Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130


def tail(text: str, lines: int = 20) -> str:
    """Return the last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class SovdeployError(Exception):
    """Base class of every error sovdeploy reports to its user."""

    exit_code = EXIT_FAILED


class InvalidInventoryError(SovdeployError):
    """The inventory (or the policy checks on it) produced blocking findings."""

    exit_code = EXIT_INVALID

    def __init__(
        self, findings: Sequence[Finding], message: str = "the inventory is invalid"
    ) -> None:
        super().__init__(message)
        self.findings = list(findings)


class UsageError(SovdeployError):
    """A request that cannot be honoured as given (unknown phase, missing tool)."""

    exit_code = EXIT_INVALID


class StateFileError(UsageError):
    """A file sovdeploy wrote and reads back (state, facts, records) is damaged."""

    def __init__(self, path: object, problem: str, remedy: str) -> None:
        self.path = path
        super().__init__(f"{path} is damaged ({problem}); {remedy}")


class CommandError(SovdeployError):
    """An external command failed; carries the command, its exit code and its output tail."""

    def __init__(
        self, cmd: Sequence[str], returncode: int, output: str, what: str = "command"
    ) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.output_tail = tail(output)
        super().__init__(
            f"{what} failed with exit code {returncode}: {shlex.join(self.cmd)}\n{self.output_tail}"
        )


class TerraformError(CommandError):
    """A terraform command failed."""


class AnsibleRunError(SovdeployError):
    """A playbook run failed on a host."""

    def __init__(
        self, playbook: str, failures: Sequence[tuple[str, str, str]], status: str, output: str = ""
    ) -> None:
        self.playbook = playbook
        self.failures = list(failures)
        self.status = status
        if failures:
            lines = [f"  {host}: task '{task}': {msg}" for host, task, msg in failures]
            detail = "\n".join(lines)
        else:
            detail = f"  ansible-runner ended with status '{status}'"
            if output:
                detail += "\n" + output
        super().__init__(f"playbook {playbook} failed:\n{detail}")


class LedgerError(SovdeployError):
    """The ledger cannot be opened, written or read."""


class InterruptedRunError(SovdeployError):
    """The user interrupted a run; completed phases are kept and the next run resumes."""

    exit_code = EXIT_INTERRUPTED
