"""`sovdeploy up` for real: podman hosts from Terraform, converged by Ansible over SSH.

One sandbox is deployed per test session and shared by the tests that only read it;
the tests that interrupt or break a run come last and leave it converged again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sovdeploy import secrets
from sovdeploy.engines import guard
from sovdeploy.hostside import sysfs
from sovdeploy.phases import PHASE_NAMES

ROOT = Path(__file__).resolve().parents[2]
SOVDEPLOY = str(Path(sys.executable).parent / "sovdeploy")
HOSTS = ("itest-ctl1", "itest-cmp1")
IMAGE = "localhost/sovdeploy/debian13-sandbox:latest"
ENV = dict(os.environ, CONTAINERS_CONF=str(ROOT / ".config/containers/containers.conf"))


def _missing() -> str | None:
    for tool in ("podman", "tofu", "ssh"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make deps installs it; make mirror builds tofu)"
    if subprocess.run(["podman", "image", "exists", IMAGE], env=ENV, check=False).returncode != 0:
        return f"no sandbox image {IMAGE}: run `sovdeploy sandbox image` (make test builds it)"
    return None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


def sovdeploy(*args: str, inv: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [SOVDEPLOY, *args, "-i", str(inv)],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def podman(*args: str) -> str:
    return subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, check=True
    ).stdout


def in_host(host: str, *cmd: str) -> str:
    return podman("exec", host, *cmd)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    inv = tmp_path_factory.mktemp("itest") / "inv"
    shutil.copytree(ROOT / "tests/inventories/itest", inv)
    first = sovdeploy("up", inv=inv)
    yield inv, first
    sovdeploy("down", "--yes", inv=inv, check=False)


def test_up_creates_and_converges_every_host(sandbox):
    _inv, first = sandbox
    assert "provision done" in first.stdout and "baseline done" in first.stdout
    running = podman(
        "ps", "--filter", "label=sovdeploy.deployment=itest", "--format", "{{.Names}}"
    ).split()
    assert sorted(running) == sorted(HOSTS)
    for host in HOSTS:
        identity = json.loads(in_host(host, "cat", "/etc/sovdeploy/deployment.json"))
        assert identity["deployment"] == "itest" and identity["host"] == host
        assert in_host(host, "systemctl", "is-active", "chrony").strip() == "active"
        assert in_host(host, "date", "+%Z").strip() == "UTC"


def test_ansible_reaches_hosts_over_ssh(sandbox):
    inv, _ = sandbox
    generated = inv / ".sovdeploy" / "inventory.yml"
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "all",
            "-i",
            str(inv),
            "-i",
            str(generated),
            "-m",
            "ansible.builtin.command",
            "-a",
            "hostname",
        ],
        # A plain ansible run on the same inventory: its vault needs the password file.
        env=dict(
            ENV,
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_VAULT_PASSWORD_FILE=str(secrets.password_file("itest")),
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(f"{h} | CHANGED" in out.stdout for h in HOSTS)


def test_status_shows_every_phase_done(sandbox):
    inv, _ = sandbox
    status = json.loads(sovdeploy("status", "--json", inv=inv).stdout)
    assert {p["phase"]: p["status"] for p in status["phases"]} == dict.fromkeys(PHASE_NAMES, "done")
    assert {h["host"]: h["address"] for h in status["hosts"]} == {
        "itest-ctl1": "10.89.41.10",
        "itest-cmp1": "10.89.41.11",
    }


def test_up_ends_with_the_runbook_read_from_the_hosts(sandbox):
    """The last phase reads the log hosts' ledgers and packages and writes the runbook."""
    inv, first = sandbox
    assert "runbook done" in first.stdout
    runbook = inv / ".sovdeploy" / "runbook"
    facts = json.loads((runbook / "facts.json").read_text())
    for host in HOSTS:
        assert facts["hosts"][host]["stores"]["ledger"]["ok"], facts["hosts"][host]
        assert any(p[0] == "systemd" for p in facts["hosts"][host]["packages"])
    md = (runbook / "runbook.md").read_text()
    assert "Every data store answered" in md
    assert "### the ledger" in md and "### orchestrator ledger" in md
    assert "| itest-ctl1 |" in md
    bom = json.loads((runbook / "sbom.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    # The files' digests are in the ledger, as the run recorded them.
    records = [
        json.loads(line)
        for path in sorted((inv / ".sovdeploy" / "runs").glob("*/record.jsonl"))
        for line in path.read_text().splitlines()
    ]
    written = [r for r in records if r["kind"] == "runbook_written"]
    assert written
    digest = hashlib.sha256((runbook / "runbook.md").read_bytes()).hexdigest()
    assert written[-1]["sha256"]["runbook.md"] == digest


def test_second_up_changes_nothing_and_is_quick(sandbox):
    inv, _ = sandbox
    started = time.monotonic()
    again = sovdeploy("up", inv=inv)
    took = time.monotonic() - started
    assert "nothing to do" in again.stdout
    assert took < 20, f"a no-op up took {took:.1f}s"


def test_plan_on_a_converged_sandbox_changes_nothing(sandbox):
    inv, _ = sandbox
    before = in_host(HOSTS[0], "stat", "-c", "%Y", "/etc/sovdeploy/deployment.json")
    out = sovdeploy("plan", inv=inv).stdout
    assert "0 to add, 0 to change, 0 to destroy" in out
    assert "0 task(s) would change" in out
    assert in_host(HOSTS[0], "stat", "-c", "%Y", "/etc/sovdeploy/deployment.json") == before


def test_discover_reads_every_hosts_sysfs_through_ansible(sandbox):
    inv, _ = sandbox
    report = json.loads(sovdeploy("discover", "--json", inv=inv).stdout)
    assert sorted(report["hosts"]) == sorted(HOSTS)
    for host in HOSTS:
        facts = report["hosts"][host]["facts"]
        seen = in_host(host, "ls", "/sys/bus/pci/devices").split()
        assert [d["address"] for d in facts["pci"]] == sorted(seen)
        online = in_host(host, "cat", "/sys/devices/system/cpu/online").strip()
        assert sysfs.format_cpulist([c["cpu"] for c in facts["cpus"]]) == online
        assert json.loads((inv / ".sovdeploy/discovery" / f"{host}.json").read_text()) == facts
    # The hosts declare no accelerators, and have none: nothing to refuse or report.
    assert report["findings"] == []


def test_every_step_is_recorded(sandbox):
    inv, _ = sandbox
    records = [
        json.loads(line)
        for f in (inv / ".sovdeploy/runs").glob("*/record.jsonl")
        for line in f.read_text().splitlines()
    ]
    kinds = {r["kind"] for r in records}
    assert {
        "command",
        "phase_start",
        "phase_end",
        "task",
        "terraform_plan",
        "terraform_apply",
    } <= kinds
    tasks = [r for r in records if r["kind"] == "task"]
    assert {r["host"] for r in tasks} == set(HOSTS)


def test_the_ledger_holds_every_step_and_verifies(sandbox, tmp_path):
    inv, _ = sandbox
    state = inv / ".sovdeploy"
    from sovdeploy.ledger import local, records

    entries = [records.decode(e) for e in local.entries(state)]
    tasks = [e for e in entries if e["kind"] == "task"]
    assert {e["host"] for e in tasks} == set(HOSTS)
    assert any(e.get("sha1") for e in tasks), "no file checksum from a template task"
    assert {"command", "phase_start", "phase_end", "terraform_plan", "artifact"} <= {
        e["kind"] for e in entries
    }
    trusted = tmp_path / "checkpoint"
    trusted.write_bytes((state / "ledger" / "checkpoint").read_bytes())
    sovdeploy("status", inv=inv)
    sovdeploy("up", inv=inv)  # appends more; the log must extend what the auditor saved
    verified = sovdeploy(
        "audit", "verify", "--key", str(state / "keys" / "ledger.pub"), "--trusted",
        str(trusted), inv=inv,
    )  # fmt: skip
    assert "verified" in verified.stdout


def test_the_log_host_ledger_holds_every_hosts_journal_and_verifies(sandbox):
    """The logging phase: each host's journal reaches the first log host's ledger service,
    which an auditor verifies over HTTPS with the verifier keys the phase handed back: the
    log's, and the witness's on the other host."""
    inv, _ = sandbox
    state = inv / ".sovdeploy"
    log_host, witness_host = sorted(HOSTS)
    address = podman(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", log_host
    ).strip()
    args = [
        "audit", "verify", f"https://{address}:8443",
        "--key", str(state / "logging" / "keys" / f"{log_host}.vkey"),
        "--cacert", str(state / "pki" / "ca.crt"),
        *[a for h in HOSTS for a in ("--expect-source", f"journal/{h}")],
        "--expect-source", "orchestrator",
        # The other log host runs the witness; the log publishes only cosigned checkpoints
        # while it answers.
        "--witness", str(state / "logging" / "keys" / f"{witness_host}.witness.vkey"),
        "--quorum", "1",
    ]  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        verified = sovdeploy(*args, inv=inv, check=False)
        if verified.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Every command forwarded the orchestrator's ledger: the log host holds the same
    # entries, byte for byte, up to where the last forward got.
    import ssl

    from sovdeploy.ledger import audit, local, records, tiles

    files = audit.HttpFiles(
        f"https://{address}:8443", ssl.create_default_context(cafile=str(state / "pki" / "ca.crt"))
    )
    size = int(files.read("checkpoint").decode().splitlines()[1])
    reader = tiles.TileReader(files.read, size)
    entries = [reader.entry(i) for i in range(size)]
    theirs = [e for e in entries if records.decode(e)["source"] == "orchestrator"]
    ours = list(local.entries(state))
    assert len(theirs) > 100
    assert theirs == ours[: len(theirs)]
    assert {records.decode(e)["kind"] for e in theirs} >= {"command", "task", "phase_end"}


def test_every_hosts_journal_is_sealed_and_verifies_with_the_deployers_key(sandbox):
    inv, _ = sandbox
    for host in HOSTS:
        key = inv / ".sovdeploy" / "logging" / "keys" / f"{host}.fss"
        assert key.stat().st_mode & 0o077 == 0
        assert "SEALED" in in_host(host, "journalctl", "--header")
        in_host(host, "journalctl", "--verify", f"--verify-key={key.read_text().strip()}")


def test_failed_playbook_names_host_and_task_and_resumes(sandbox):
    inv, _ = sandbox
    extra = inv / "host_vars"
    extra.mkdir(exist_ok=True)
    (extra / "itest-cmp1.yml").write_text("host_baseline_sysctl:\n  'bad key!': 1\n")
    failed = sovdeploy("up", inv=inv, check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "itest-cmp1: task 'Assert sysctl keys are plain names'" in failed.stderr
    assert "invalid key 'bad key!'" in failed.stderr
    status = json.loads(sovdeploy("status", "--json", inv=inv).stdout)
    assert {p["phase"]: p["status"] for p in status["phases"]}["baseline"] != "done"
    (extra / "itest-cmp1.yml").unlink()
    fixed = sovdeploy("up", inv=inv)
    assert "baseline done" in fixed.stdout


def up_in_a_playbook(
    inv: Path, *args: str, start_new_session: bool = False
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `sovdeploy up ARGS`; return once its playbook runs a task, with what it printed."""
    proc = subprocess.Popen(
        [SOVDEPLOY, "up", *args, "-i", str(inv)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=start_new_session,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "TASK" in line:
            return proc, seen
    raise AssertionError("up ended before a playbook ran a task:\n" + "".join(seen))


def test_ctrl_c_stops_cleanly_and_the_next_up_resumes(sandbox):
    inv, _ = sandbox
    proc, seen = up_in_a_playbook(inv, "--only", "baseline", start_new_session=True)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it to the group
    rest = proc.communicate(timeout=300)[0]
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    assert "Run the same command again to resume" in output
    status = json.loads(sovdeploy("status", "--json", inv=inv).stdout)
    assert {p["phase"]: p["status"] for p in status["phases"]}["provision"] == "done"
    resumed = sovdeploy("up", "--only", "baseline", inv=inv)
    assert "baseline done" in resumed.stdout


def test_a_killed_up_leaves_no_process_and_the_next_up_resumes(sandbox):
    """SIGKILL, which sovdeploy cannot catch, in the middle of a playbook: the run's guard
    stops ansible-playbook and everything under it, and the next up converges."""
    inv, _ = sandbox
    proc, _ = up_in_a_playbook(inv, "--from", "baseline")
    time.sleep(2)  # the guard reads the run's processes five times a second
    running = guard.descendants(proc.pid)
    commands = {pid: _cmdline(pid) for pid in running}
    assert any("ansible-playbook" in c for c in commands.values()), commands
    assert any("sovdeploy.engines.guard" in c for c in commands.values()), commands
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while guard.alive(running) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = {pid: commands[pid] for pid in guard.alive(running)}
    assert left == {}, f"processes of the killed run still there: {left}"
    status = json.loads(sovdeploy("status", "--json", inv=inv).stdout)
    assert {p["phase"]: p["status"] for p in status["phases"]}["baseline"] == "running"
    resumed = sovdeploy("up", inv=inv)
    assert "baseline done" in resumed.stdout
    status = json.loads(sovdeploy("status", "--json", inv=inv).stdout)
    assert {p["status"] for p in status["phases"]} == {"done"}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return "(gone)"


def test_down_removes_every_container(tmp_path_factory, sandbox):
    inv, _ = sandbox
    sovdeploy("down", "--yes", inv=inv)
    left = podman(
        "ps", "-a", "--filter", "label=sovdeploy.deployment=itest", "--format", "{{.Names}}"
    )
    assert left.strip() == ""
    assert "sovdeploy-itest" not in podman("network", "ls", "--format", "{{.Name}}")
    status = json.loads(sovdeploy("status", "--json", inv=inv).stdout)
    assert all(p["status"] == "pending" for p in status["phases"])
