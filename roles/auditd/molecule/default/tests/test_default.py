"""Behaviour of a converged auditd host (a virtual machine), checked from inside it."""

import time
import uuid


def _wait_for(host, command, needle, timeout=30):
    """The output of ``command`` once it holds ``needle`` (audit records arrive async)."""
    deadline = time.monotonic() + timeout
    while True:
        out = host.run(command).stdout
        if needle in out or time.monotonic() > deadline:
            return out
        time.sleep(1)


def test_auditd_runs_and_the_rules_are_loaded_and_immutable(host):
    assert host.service("auditd").is_running and host.service("auditd").is_enabled
    status = host.check_output("auditctl -s")
    assert "enabled 2" in status.splitlines(), status
    rules = host.check_output("auditctl -l")
    assert "-w /etc/sudoers.d -p wa -k sovdeploy-privilege" in rules
    assert "-a always,exit -F arch=b64 -S execve -F auid!=-1 -F key=sovdeploy-exec" in rules


def test_no_one_can_remove_or_add_a_rule(host):
    before = host.check_output("auditctl -l")
    for change in ("auditctl -D", "auditctl -w /tmp -p wa -k molecule", "auditctl -e 0"):
        # auditctl may exit 255, which the SSH backend takes for a lost connection.
        out = host.check_output(f'{change} 2>&1; echo "exit=$?"')
        refused = "immutable mode" in out or "Operation not permitted" in out
        assert int(out.rsplit("exit=", 1)[1]) != 0 and refused, (change, out)
    assert host.check_output("auditctl -l") == before
    assert "enabled 2" in host.check_output("auditctl -s").splitlines()


def test_a_watched_change_is_recorded_and_reaches_the_journal(host):
    probe = f"/etc/sudoers.d/molecule-{uuid.uuid4().hex}"
    host.run(f"touch {probe} && rm -f {probe}")
    name = probe.rsplit("/", 1)[1]
    log = _wait_for(host, "ausearch --input-logs -k sovdeploy-privilege -i", name)
    assert name in log, "no audit record of the watched change"
    journal = _wait_for(host, "journalctl -q -o cat _TRANSPORT=audit", name)
    assert name in journal, "the record did not reach the journal (which ships it)"


def test_a_command_run_in_a_session_is_recorded_with_its_arguments(host):
    marker = uuid.uuid4().hex
    host.run(f"/bin/true {marker}")
    log = _wait_for(host, "ausearch --input-logs -k sovdeploy-exec -i", marker)
    assert f"a1={marker}" in log, "the command and its argument were not recorded"
