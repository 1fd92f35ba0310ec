"""Typed wrapper over ansible-runner: run a playbook, stream its events, fail precisely."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any

import ansible_runner

from sovdeploy.errors import AnsibleRunError, InterruptedRunError


class TaskStatus(StrEnum):
    """How a task ended on a host."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"

    @property
    def failed(self) -> bool:
        return self in (TaskStatus.FAILED, TaskStatus.UNREACHABLE)


#: ansible-runner event name → the status sovdeploy counts.
_RESULT_EVENTS = {
    "runner_on_ok": TaskStatus.OK,
    "runner_on_failed": TaskStatus.FAILED,
    "runner_on_unreachable": TaskStatus.UNREACHABLE,
    "runner_on_skipped": TaskStatus.SKIPPED,
}


@dataclass(frozen=True)
class TaskResult:
    host: str
    task: str
    status: TaskStatus
    changed: bool
    message: str = ""
    #: For a task that wrote a file (template, copy): where, and its SHA-1 as Ansible reports it.
    dest: str = ""
    checksum: str = ""


@dataclass
class PlaybookRun:
    """What a playbook run did: per-host counts and every task result."""

    status: str
    rc: int
    results: list[TaskResult] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(1 for r in self.results if r.changed)

    @property
    def failures(self) -> list[TaskResult]:
        return [r for r in self.results if r.status.failed]


@dataclass(frozen=True)
class Callbacks:
    """Where events go: the progress display and the run record."""

    task_start: Callable[[str], None]
    result: Callable[[TaskResult], None]


def _message(res: Mapping[str, Any]) -> str:
    # A looped task reports "One or more items failed"; the real messages are per item.
    items = [r for r in res.get("results", []) or [] if isinstance(r, Mapping) and r.get("failed")]
    if items:
        return "; ".join(_message(r) for r in items)
    msg = str(res.get("msg") or res.get("reason") or "").strip()[:1000]
    # What the failing program printed says why; the module's msg often only says that.
    for key in ("stderr", "module_stderr", "stdout"):
        value = str(res.get(key) or "").strip()
        if value and value not in msg:
            lines = value.splitlines()[-5:]
            detail = " | ".join(line.strip() for line in lines)[:800]
            return f"{msg}: {detail}" if msg else detail
    return msg or "no message"


def _to_result(event: Mapping[str, Any]) -> TaskResult | None:
    status = _RESULT_EVENTS.get(str(event.get("event")))
    if status is None:
        return None
    data = event.get("event_data", {})
    res = data.get("res", {}) or {}
    if status is TaskStatus.FAILED and data.get("ignore_errors"):
        status = TaskStatus.OK
    changed = bool(res.get("changed")) and status is TaskStatus.OK
    return TaskResult(
        host=str(data.get("host", "?")),
        task=str(data.get("task", "?")),
        status=TaskStatus.CHANGED if changed else status,
        changed=changed,
        message=_message(res) if status.failed else "",
        dest=str(res.get("dest") or "") if res.get("checksum") else "",
        checksum=str(res.get("checksum") or ""),
    )


def _stdout_tail(runner: Any) -> str:
    try:
        text = str(runner.stdout.read())
    except (OSError, AttributeError, ValueError):
        return ""
    return "\n".join(text.rstrip().splitlines()[-15:])


def run_playbook(
    playbook: Path,
    inventories: Sequence[Path],
    private_data_dir: Path,
    callbacks: Callbacks,
    *,
    extravars: Mapping[str, Any] | None = None,
    envvars: Mapping[str, str] | None = None,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
) -> PlaybookRun:
    """Run ``playbook`` with ansible-runner; raise on failure or Ctrl-C.

    Raises:
        AnsibleRunError: naming each failed host, task and the module's message.
        InterruptedRunError: when the user pressed Ctrl-C (the run is cancelled cleanly).

    """
    private_data_dir.mkdir(parents=True, exist_ok=True)
    run = PlaybookRun(status="running", rc=-1)
    cancelled = False

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        nonlocal cancelled
        cancelled = True

    def on_event(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_task_start":
            callbacks.task_start(str(event.get("event_data", {}).get("task", "?")))
        result = _to_result(event)
        if result is not None:
            run.results.append(result)
            callbacks.result(result)
        # Keep ansible-runner's own artifacts (job_events/) as they are.
        return True

    env = dict(envvars or {})
    # ansible-playbook lives beside this interpreter (the venv), whether or not it is on PATH.
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), env.get("PATH", os.environ["PATH"])]
    )
    cmdline = " ".join(flag for flag, on in (("--check", check), ("--diff", diff)) if on)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            playbook=str(playbook.resolve()),
            inventory=[str(i) for i in inventories],
            extravars=dict(extravars or {}),
            envvars=env,
            cmdline=cmdline or None,
            limit=limit,
            event_handler=on_event,
            cancel_callback=lambda: cancelled,
            quiet=True,
            suppress_env_files=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    run.status, run.rc = str(runner.status), int(runner.rc if runner.rc is not None else -1)
    if cancelled or run.status == "canceled":
        raise InterruptedRunError(f"interrupted during {playbook.name}; completed phases are kept")
    if run.status != "successful":
        failures = [(r.host, r.task, r.message) for r in run.failures]
        output = "" if failures else _stdout_tail(runner)
        raise AnsibleRunError(playbook.name, failures, run.status, output)
    return run
