"""A thread of the ledger service (journal, audit events, archive), and its saved state."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sovdeploy.fsutil import atomic_write


class Worker:
    """Runs :meth:`work` on its own thread until closed.

    An exception that escapes :meth:`work` is a failure of the ledger itself: it is kept
    in ``error`` and the thread ends, and the service, which checks :meth:`alive`,
    exits so that systemd restarts it.
    """

    thread_name = "ledger-worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def work(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # the service reports it and exits
            self.error = exc
            raise

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def read_state(path: Path) -> dict[str, Any] | None:
    """A worker's saved state, or None before its first save."""
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return raw


def write_state(path: Path, data: Mapping[str, Any]) -> None:
    """Save a worker's state atomically, readable by the service's user only."""
    atomic_write(path, json.dumps(data, sort_keys=True).encode(), 0o600)
