"""What an operator reads when a playbook fails: real ansible-runner runs of tiny playbooks.

Each playbook runs against this machine (a local connection) or an address where nothing
listens, through sovdeploy's engine exactly as the phases call it.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from sovdeploy.engines import ansible
from sovdeploy.errors import AnsibleRunError, InterruptedRunError

INVENTORY = """\
all:
  hosts:
    here:
      ansible_connection: local
      ansible_python_interpreter: "{python}"
    nowhere:
      ansible_host: 127.0.0.1
      ansible_port: 9
      ansible_user: root
      ansible_ssh_common_args: -o StrictHostKeyChecking=no -o ConnectTimeout=5
"""


def run(tmp_path: Path, tasks: str, hosts: str = "here", **kwargs: object) -> ansible.PlaybookRun:
    import sys

    (tmp_path / "inventory.yml").write_text(INVENTORY.format(python=sys.executable))
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        f"- name: A test play\n  hosts: {hosts}\n  gather_facts: false\n  tasks:\n{tasks}"
    )
    started: list[str] = []
    results: list[ansible.TaskResult] = []
    run = ansible.run_playbook(
        playbook,
        [tmp_path / "inventory.yml"],
        tmp_path / "runner",
        ansible.Callbacks(task_start=started.append, result=results.append),
        **kwargs,  # type: ignore[arg-type]
    )
    assert started and results == run.results
    return run


def test_a_run_that_succeeds_counts_what_changed(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    done = run(
        tmp_path,
        "    - name: Write a file\n"
        f"      ansible.builtin.copy: {{content: hello, dest: {target}, mode: '0644'}}\n"
        "    - name: Look\n      ansible.builtin.debug: {msg: hi}\n",
    )
    assert done.status == "successful" and done.rc == 0
    assert done.changed == 1
    written = next(r for r in done.results if r.task == "Write a file")
    assert written.dest == str(tmp_path / "out.txt") and len(written.checksum) == 40
    assert (tmp_path / "out.txt").read_text() == "hello"


def test_a_failed_task_names_host_task_and_the_programs_own_words(tmp_path: Path) -> None:
    with pytest.raises(AnsibleRunError) as caught:
        run(
            tmp_path,
            "    - name: Run a program that fails\n"
            "      ansible.builtin.command: sh -c 'echo it broke because of X >&2; exit 3'\n",
        )
    err = caught.value
    assert err.failures == [
        ("here", "Run a program that fails", "non-zero return code: it broke because of X")
    ]
    assert "here: task 'Run a program that fails': non-zero return code" in str(err)
    assert err.status == "failed"


def test_a_looped_task_names_each_failed_item(tmp_path: Path) -> None:
    with pytest.raises(AnsibleRunError) as caught:
        run(
            tmp_path,
            "    - name: Check each item\n"
            "      ansible.builtin.fail: {msg: 'item {{ item }} is wrong'}\n"
            "      when: item != 'good'\n"
            "      loop: [good, bad1, bad2]\n",
        )
    ((host, task, message),) = caught.value.failures
    assert (host, task) == ("here", "Check each item")
    assert message == "item bad1 is wrong; item bad2 is wrong"


def test_an_unreachable_host_is_named_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(AnsibleRunError) as caught:
        run(tmp_path, "    - name: Ping\n      ansible.builtin.ping:\n", hosts="nowhere")
    ((host, task, message),) = caught.value.failures
    assert (host, task) == ("nowhere", "Ping")
    assert "port 9" in message and "Connection refused" in message, message
    assert caught.value.status == "failed"


def test_ctrl_c_cancels_the_run_and_says_so(tmp_path: Path) -> None:
    """SIGINT during a task: the engine cancels ansible-playbook and raises, as up resumes."""
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(InterruptedRunError, match=r"interrupted during play\.yml"):
            run(tmp_path, "    - name: Wait\n      ansible.builtin.command: sleep 60\n")
    finally:
        timer.cancel()


def test_check_mode_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    done = run(
        tmp_path,
        "    - name: Write a file\n"
        f"      ansible.builtin.copy: {{content: hello, dest: {target}, mode: '0644'}}\n",
        check=True,
        diff=True,
    )
    assert done.changed == 1
    assert not target.exists()
