"""The lock's guard: what a command started does not outlive it, whatever kills it.

Real processes: a command (a Python program taking the state dir's lock as every
sovdeploy command does) starts children the ways sovdeploy does (a pty session like
ansible-runner's, a new session like Terraform's, a plain child), and is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sovdeploy.engines import guard
from sovdeploy.errors import UsageError
from sovdeploy.state import StateDir

COMMAND = textwrap.dedent(
    """
    import os, pty, subprocess, sys, time
    from pathlib import Path
    from sovdeploy.state import StateDir

    state = StateDir(Path(sys.argv[1]))
    with state.lock({"command": "up", "run": "run-1"}):
        pid, _ = pty.fork()  # as pexpect starts ansible-playbook: a session of its own
        if pid == 0:
            os.execvp("sleep", ["sleep", "300"])
        subprocess.Popen(["sleep", "301"], start_new_session=True)  # as Terraform runs
        child = subprocess.Popen(["sh", "-c", "sleep 302 & sleep 303; wait"])
        # One that ignores SIGTERM, as a stuck task may: the guard must escalate.
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        stubborn += "print(flush=True); time.sleep(300)"
        subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE).stdout.readline()
        print(os.getpid(), flush=True)
        if sys.argv[2] == "exit-with-children":
            sys.exit(0)
        time.sleep(600)
    """
)


def sleepers() -> list[guard.Proc]:
    """The test command's children that are still there, known by their arguments."""
    marks = (b"300", b"301", b"302", b"303", b"time.sleep(300)")
    found = []
    for p in guard.processes():
        try:
            argv = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if len(argv) < 2:  # a zombie, or a process that has not exec'd yet: no arguments
            continue
        if (p.comm in {"sleep", "python", "python3"} and any(m == argv[-2] for m in marks[:4])) or (
            p.comm in {"python", "python3"} and marks[4] in argv[-2]
        ):
            found.append(p)
    return found


def start(inventory: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", COMMAND, str(inventory), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert int(proc.stdout.readline()) == proc.pid
    return proc


def wait_until(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    assert not sleepers(), "sleepers of an earlier test are still there"
    return tmp_path


def test_a_killed_command_leaves_no_process_and_the_next_one_waits_for_that(inventory):
    proc = start(inventory, "hang")
    wait_until(lambda: len(sleepers()) == 5)
    time.sleep(10 * guard.POLL_S)  # the guard has read them, however busy the machine
    proc.kill()
    proc.wait()
    said: list[str] = []
    state = StateDir(inventory)
    # The next command waits while the guard stops them, saying for what; then it runs.
    with state.lock({"command": "up", "run": "run-2"}, on_wait=said.append):
        assert sleepers() == []
    assert said, "the guard was not seen stopping the killed run's processes"
    assert all("run run-1 (`sovdeploy up`) ended without finishing" in s for s in said)
    # The one that ignores SIGTERM is named while the guard waits to SIGKILL it.
    assert any("(python" in s for s in said), said


def test_a_command_that_ends_with_children_left_stops_them_before_the_lock_is_free(inventory):
    proc = start(inventory, "exit-with-children")
    assert proc.wait() == 0
    assert sleepers() == []
    with StateDir(inventory).lock({"command": "plan", "run": "run-2"}):
        pass


def test_a_running_command_makes_the_next_fail_at_once_naming_it(inventory):
    proc = start(inventory, "hang")
    try:
        started = time.monotonic()
        with (
            pytest.raises(UsageError, match=r"run run-1 \(`sovdeploy up`\) with pid \d+"),
            StateDir(inventory).lock({"command": "up", "run": "run-2"}),
        ):
            pass
        assert time.monotonic() - started < 5
    finally:
        time.sleep(10 * guard.POLL_S)  # the guard has read the children, however busy the machine
        proc.send_signal(signal.SIGTERM)  # ends like a kill: the guard cleans up
        proc.wait()
    wait_until(lambda: not sleepers())


def test_a_command_that_ends_well_leaves_the_lock_free_and_its_note_behind(tmp_path):
    state = StateDir(tmp_path)
    with state.lock({"command": "status", "run": "run-3"}):
        pass
    note = json.loads((state.root / "lock").read_text())
    assert note["run"] == "run-3" and note["pid"] == os.getpid()
    assert "stopping" not in note
    with state.lock({"command": "status", "run": "run-4"}):
        pass


def test_processes_that_detached_themselves_are_left_alone(tmp_path):
    """A daemon (as podman's conmon or QEMU -daemonize) is not the command's to stop."""
    state = StateDir(tmp_path)
    with state.lock({"command": "up", "run": "run-5"}):
        daemon = subprocess.run(
            ["sh", "-c", "setsid sleep 304 >/dev/null 2>&1 < /dev/null & echo $!"],
            capture_output=True,
            text=True,
            check=True,
        )
        pid = int(daemon.stdout)
        wait_until(
            lambda: guard.read_proc(pid) is not None and guard.read_proc(pid).ppid != os.getpid()
        )
    try:
        assert guard.read_proc(pid) is not None
    finally:
        os.kill(pid, signal.SIGKILL)
