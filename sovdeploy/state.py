"""The deployment's state dir: ``<inventory>/.sovdeploy/`` (git-ignored).

Layout::

    state.json        phases done, for which inputs digest, in which run
    lock              held (flock) while a command changes anything
    runs/<run-id>/    record.jsonl and per-phase ansible-runner artifacts
    terraform/<mod>/  generated root module, plan, local state
    inventory.yml     hosts as provisioned (addresses), layered over the operator's inventory
    ssh/              the deployment's SSH key pair (sandbox)
    ledger/           the orchestrator's tamper-evident ledger (tlog-tiles, see sovdeploy.ledger)
    keys/             the ledger's signing key (0600) and verifier key
    runbook/          written by a later phase

Every write is atomic (temporary file, fsync, rename), so an interrupted command
never leaves a half-written file that a later one would trust.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sovdeploy.engines.guard import Guard, read_proc, write_lock_note
from sovdeploy.errors import StateFileError, UsageError
from sovdeploy.fsutil import atomic_write, read_json

if TYPE_CHECKING:
    from sovdeploy.ledger.records import Ledger

STATE_DIRNAME = ".sovdeploy"
_STATE_REMEDY = "move it away to start over: every phase then runs again, and each is idempotent"
#: How long a command waits for a killed command's processes to be stopped.
LOCK_WAIT_S = 120.0


def new_run_id() -> str:
    """A run's id: when it started, and a few random hex digits."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class PhaseState(StrEnum):
    """Where a phase stands in the state file."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass
class PhaseRecord:
    status: PhaseState
    finished: str | None = None
    run_id: str | None = None
    digest: str | None = None


class StateDir:
    """Typed access to one deployment's state dir."""

    def __init__(self, inventory: Path) -> None:
        self.root = (inventory if inventory.is_dir() else inventory.parent) / STATE_DIRNAME

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def generated_inventory(self) -> Path:
        return self.root / "inventory.yml"

    def provisioned_addresses(self) -> dict[str, str]:
        """Each host's address as provision reported it (Terraform's outputs)."""
        import yaml

        path = self.generated_inventory
        if not path.exists():
            return {}
        remedy = "run `sovdeploy up --only provision` to write it again"
        try:
            doc = yaml.safe_load(path.read_text()) or {}
            hosts = doc["all"].get("hosts") or {}
            return {name: str(v["ansible_host"]) for name, v in hosts.items() if v}
        except (yaml.YAMLError, ValueError, AttributeError, KeyError, TypeError) as exc:
            problem = (
                f"no {exc} key"
                if isinstance(exc, KeyError)
                else str(exc).splitlines()[0] or type(exc).__name__
            )
            raise StateFileError(path, problem, remedy) from None

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    @property
    def kubeconfig(self) -> Path:
        """The operator's kubeconfig, written by the kubernetes phase (mode 0600)."""
        return self.root / "kubernetes" / "admin.conf"

    @property
    def logging_keys(self) -> Path:
        """The log hosts' keys as the logging phase fetched them (``<host>.vkey``, seals)."""
        return self.root / "logging" / "keys"

    def terraform_dir(self, module: str) -> Path:
        return self.root / "terraform" / module

    def discovery(self, host: str) -> Path:
        """The sysfs facts ``sovdeploy discover`` read from ``host``."""
        return self.root / "discovery" / f"{host}.json"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        gitignore = self.root / ".gitignore"
        if not gitignore.exists():
            # The state dir holds keys and state: never let it be committed by accident.
            atomic_write(gitignore, "*\n")

    def load(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {"phases": {}}
        data: dict[str, Any] = read_json(self.state_file, _STATE_REMEDY)
        if not isinstance(data.setdefault("phases", {}), dict):
            raise StateFileError(self.state_file, "'phases' is not a mapping", _STATE_REMEDY)
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        atomic_write(self.state_file, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def phases(self) -> dict[str, PhaseRecord]:
        try:
            return {
                name: PhaseRecord(**{**rec, "status": PhaseState(rec["status"])})
                for name, rec in self.load()["phases"].items()
            }
        except (TypeError, KeyError, ValueError) as exc:
            raise StateFileError(self.state_file, str(exc), _STATE_REMEDY) from None

    def mark(self, phase: str, record: PhaseRecord) -> None:
        data = self.load()
        data["phases"][phase] = record.__dict__
        self.save(data)

    def reset(self, phases: list[str] | None = None) -> None:
        data = self.load()
        for name in phases if phases is not None else list(data["phases"]):
            data["phases"].pop(name, None)
        self.save(data)

    def new_run(self, run_id: str | None = None) -> Run:
        """A new run, under ``run_id`` when one was chosen already (see :func:`new_run_id`)."""
        run_id = run_id or new_run_id()
        return Run(run_id, self.root / "runs" / run_id)

    @contextlib.contextmanager
    def lock(
        self,
        holder: Mapping[str, Any],
        on_wait: Callable[[str], None] | None = None,
        wait_s: float = LOCK_WAIT_S,
    ) -> Iterator[None]:
        """Hold the deployment lock: two commands never change one deployment at once.

        ``holder`` (the command, its run) is written into the lock file for whoever
        finds it held. A guard (:mod:`sovdeploy.engines.guard`) holds the lock with
        the command and keeps it until every process the command started has ended, so
        that a command that was killed leaves nothing running behind the lock. A later
        command waits up to ``wait_s`` for such a guard, telling ``on_wait`` what it
        waits for; a command that is still running makes it fail at once.

        Raises:
            UsageError: naming the command or the processes that hold the lock.

        """
        self.ensure()
        path = self.root / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+") as fh:
            self._acquire(fh, path, on_wait, wait_s)
            guard = None
            try:
                write_lock_note(fh, {**holder, "pid": os.getpid(), "started": now()})
                guard = Guard(fh)
                yield
            finally:
                try:
                    if guard is not None:
                        guard.close()
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _lock_holder(fh: IO[str], path: Path) -> str:
        """What the lock's holder is waiting for, or "" while its note is being rewritten.

        Raises:
            UsageError: when the holder is a command that is still running.

        """
        fh.seek(0)
        try:
            note = json.loads(fh.read() or "{}")
        except json.JSONDecodeError:
            note = {}
        holder = note.get("pid")
        if not isinstance(holder, int):
            return ""  # the guard is rewriting it
        who = f"run {note.get('run', '?')} (`sovdeploy {note.get('command', '?')}`)"
        if note.get("stopping"):
            waiting = ", ".join(f"{pid} ({comm})" for pid, comm in note["waiting_for"])
            return (
                f"{who} ended without finishing; waiting for its guard (pid "
                f"{note.get('guard')}) to stop its processes: {waiting or 'none left'}"
            )
        if read_proc(holder) is None:  # killed: its guard is taking over the lock
            return f"{who} ended without finishing; waiting for its guard to stop its processes"
        raise UsageError(
            f"another sovdeploy command, {who} with pid {holder}, holds {path}; "
            "wait for it to finish"
        )

    @classmethod
    def _acquire(
        cls, fh: IO[str], path: Path, on_wait: Callable[[str], None] | None, wait_s: float
    ) -> None:
        deadline = time.monotonic() + wait_s
        said = ""
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            text = cls._lock_holder(fh, path)
            if time.monotonic() >= deadline:
                raise UsageError(f"{text or path}; still there after {wait_s:g} s") from None
            if on_wait is not None and text and text != said:
                on_wait(text)
                said = text
            time.sleep(0.5)


class Run:
    """One invocation's record: an append-only JSON Lines file, fsynced per entry.

    With a ledger attached, every record is also appended to it, and ``record``
    returns only once the ledger holds it durably.
    """

    def __init__(self, run_id: str, path: Path) -> None:
        self.id = run_id
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._record = (path / "record.jsonl").open("a", encoding="utf-8")
        self.ledger: Ledger | None = None

    def record(self, kind: str, **fields: Any) -> None:
        entry = {"time": now(), "run": self.id, "kind": kind, **fields}
        line = json.dumps(entry, sort_keys=True, default=str)
        self._record.write(line + "\n")
        self._record.flush()
        os.fsync(self._record.fileno())
        if self.ledger is not None:
            plain = json.loads(line)
            del plain["time"], plain["kind"]
            self.ledger.record(kind, **plain).result()

    def close(self) -> None:
        self._record.close()
