"""A thread of the ledger service that feeds the single writer (journal, audit events)."""

from __future__ import annotations

import threading


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
