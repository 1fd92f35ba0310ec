"""The guard of one command: no process a command started outlives it.

A command that changes a deployment holds the state dir's lock and starts a guard, a
small process of its own (``python -m sovdeploy.engines.guard``) that watches it. While
the command lives, the guard keeps a list of the command's descendants, read from
``/proc`` a few times a second. When the command ends well it tells the guard so and
the guard just exits. When the command dies any other way (SIGKILL included, which
nothing in the command itself can catch), the guard stops every process of that list
that is still there, whole process group by whole process group where a descendant
leads one (ansible-playbook, Terraform), first with SIGTERM, then with SIGKILL.

The guard holds a copy of the lock's file descriptor, so the lock stays held until the
last process of the run is gone; while it stops them, it writes what it waits for into
the lock file, which a later command shows the operator.

The list is read every ``POLL_S`` seconds: a process started in the last such interval
before a kill is not on it, but what it belongs to is (the process group of
ansible-playbook or Terraform, which is stopped whole).

A process that detached itself from the command on purpose (a daemon such as a sandbox
host's container monitor, its QEMU, or an ssh connection master, which re-parent
themselves to init) is no longer the command's descendant, and is left alone.

Standard library and :mod:`sovdeploy.errors` only; Linux only (``/proc``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sovdeploy.errors import SovdeployError

#: How often the guard reads the command's descendants.
POLL_S = 0.2
#: How long stopped processes get to end on SIGTERM before SIGKILL.
TERM_GRACE_S = 5.0
#: What the command writes to the guard when it ends well.
DONE = b"done\n"


class GuardError(SovdeployError):
    """The guard could not be started: nothing would stop a killed command's processes."""


@dataclass(frozen=True)
class Proc:
    """One process as /proc/<pid>/stat shows it; ``start`` tells it from a reused pid."""

    pid: int
    ppid: int
    pgid: int
    start: int
    comm: str


def read_proc(pid: int) -> Proc | None:
    """The process ``pid``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or going, while read
        return None
    if ")" not in raw:
        return None
    # comm is in parentheses and may hold spaces and parentheses itself.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; only its parent's wait is missing
        return None
    return Proc(pid, int(fields[1]), int(fields[2]), int(fields[19]), comm)


def processes() -> Iterator[Proc]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            proc = read_proc(int(entry.name))
            if proc is not None:
                yield proc


def descendants(root: int) -> dict[int, Proc]:
    """Every living process below ``root`` (not ``root`` itself), by pid."""
    children: dict[int, list[Proc]] = {}
    for proc in processes():
        children.setdefault(proc.ppid, []).append(proc)
    found: dict[int, Proc] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
                todo.append(child.pid)
    return found


def alive(procs: dict[int, Proc]) -> dict[int, Proc]:
    """Those of ``procs`` still running (the same process, not a new one on its pid)."""
    now = {}
    for pid, proc in procs.items():
        current = read_proc(pid)
        if current is not None and current.start == proc.start:
            now[pid] = current
    return now


def stop(procs: dict[int, Proc], report: Callable[[dict[int, Proc]], None]) -> None:
    """SIGTERM, then after a grace period SIGKILL, until none of ``procs`` runs."""
    for sig, grace in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, 30.0)):
        left = alive(procs)
        report(left)
        # A group led by one of them is stopped whole, so that what it forked since the
        # last reading goes too; other processes one by one (their group is not ours).
        for pgid in {p.pgid for p in left.values() if p.pgid in left}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while alive(procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not alive(procs):
            break
    report(alive(procs))


def write_lock_note(lock: IO[str], note: dict[str, object]) -> None:
    """Replace what the lock file says about its holder."""
    lock.seek(0)
    lock.truncate()
    lock.write(json.dumps(note, sort_keys=True) + "\n")
    lock.flush()


def watch(command: int, pipe: IO[bytes], lock: IO[str], note: dict[str, object]) -> int:
    """Follow ``command``'s descendants until it says it is done or its end of ``pipe`` closes."""
    seen: dict[int, Proc] = {}
    received = b""
    ready = False
    while True:
        readable, _, _ = select.select([pipe], [], [], POLL_S)
        if readable:
            chunk = os.read(pipe.fileno(), 64)
            received += chunk
            if not chunk:
                break
            if received.endswith(DONE):
                return 0
        found = descendants(command)
        found.pop(os.getpid(), None)
        # A dying process closes its descriptors before its children are handed to init:
        # with nothing pending on the pipe after the reading, the reading is whole.
        if not select.select([pipe], [], [], 0)[0]:
            seen = found
        if not ready:
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            ready = True
    if read_proc(command) is not None:
        # The command closed the pipe itself, with processes left, or is dying (its
        # descriptors close before its children are handed to init): read them again,
        # and keep what was read before, since they may have been handed over already.
        seen = {**seen, **descendants(command)}
        seen.pop(os.getpid(), None)
    # Otherwise the command is gone without saying it is done: it was killed.

    def report(left: dict[int, Proc]) -> None:
        write_lock_note(
            lock,
            {
                **note,
                "stopping": True,
                "guard": os.getpid(),
                "waiting_for": [
                    [p.pid, p.comm] for p in sorted(left.values(), key=lambda p: p.pid)
                ],
            },
        )

    stop(seen, report)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m sovdeploy.engines.guard PID LOCK_FD``; standard input is the pipe."""
    # Ctrl-C and a closed terminal are the command's to handle; the guard outlives them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    command, lock_fd = (int(a) for a in (argv or sys.argv[1:]))
    with os.fdopen(lock_fd, "r+") as lock:
        lock.seek(0)  # the offset is shared with the command's descriptor
        note = json.loads(lock.read() or "{}")
        return watch(command, sys.stdin.buffer, lock, note)


class Guard:
    """The command's side: start the guard, and tell it when the command ends well."""

    def __init__(self, lock: IO[str]) -> None:
        read_end, self._write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sovdeploy.engines.guard",
                    str(os.getpid()),
                    str(lock.fileno()),
                ],
                stdin=read_end,
                stdout=subprocess.PIPE,
                # The guard's copy of the lock's descriptor keeps the lock held.
                pass_fds=(lock.fileno(),),
                start_new_session=True,
            )
        finally:
            os.close(read_end)
        # Once it has read the command's processes, anything started later is followed.
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != b"ready\n":
            raise GuardError(f"the guard of pid {os.getpid()} did not start")

    def close(self) -> None:
        """The command ends: the guard stops what the command leaves running, then exits.

        Where nothing of the command's is left (the usual case: every child was waited
        for), the guard is told so and exits at once.
        """
        left = descendants(os.getpid())
        left.pop(self.proc.pid, None)
        if not left:
            with contextlib.suppress(BrokenPipeError):
                os.write(self._write, DONE)
        os.close(self._write)
        self.proc.wait()


if __name__ == "__main__":
    sys.exit(main())
