"""Phase selection: resume after the last done phase, --from, --only, and input changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovdeploy.cli import main
from sovdeploy.errors import UsageError
from sovdeploy.phases import PHASE_NAMES, select
from sovdeploy.state import PhaseRecord

ROOT = Path(__file__).resolve().parents[2]


def needed(done, digest="d1", start=None, only=None):
    return [p.name for p, run in select(done, digest, start, only) if run]


def done_up_to(last, digest="d1"):
    names = PHASE_NAMES[: PHASE_NAMES.index(last) + 1]
    return {n: PhaseRecord("done", "t", "r", digest) for n in names}


def test_fresh_deployment_runs_every_phase():
    assert needed({}) == list(PHASE_NAMES)


def test_resumes_after_the_last_completed_phase():
    assert needed(done_up_to("provision")) == ["preflight", *PHASE_NAMES[2:]]


def test_a_phase_that_runs_reruns_every_later_phase():
    done = done_up_to(PHASE_NAMES[-1])
    done["provision"] = PhaseRecord("done", "t", "r", "other-digest")
    assert needed(done) == list(PHASE_NAMES)


def test_a_failed_or_interrupted_phase_runs_again():
    for status in ("failed", "interrupted", "running"):
        done = done_up_to(PHASE_NAMES[-1])
        done["baseline"] = PhaseRecord(status, "t", "r", "d1")
        assert needed(done) == ["preflight", *PHASE_NAMES[PHASE_NAMES.index("baseline") :]]


def test_all_done_runs_only_preflight():
    assert needed(done_up_to(PHASE_NAMES[-1])) == ["preflight"]


def test_changed_inputs_rerun_everything():
    assert needed(done_up_to(PHASE_NAMES[-1], digest="old")) == list(PHASE_NAMES)


def test_from_and_only():
    done = done_up_to(PHASE_NAMES[-1])
    assert needed(done, start="provision") == list(PHASE_NAMES)
    assert needed(done, only="baseline") == ["preflight", "baseline"]


def test_unknown_phase_is_a_usage_error():
    with pytest.raises(UsageError):
        list(select({}, "d", "nope", None))


@pytest.mark.parametrize("command", ["plan", "up"])
def test_host_outside_jurisdiction_is_refused_before_anything_is_touched(command, inventory_copy):
    inv = inventory_copy("broken/host-outside")
    result = CliRunner().invoke(main, [command, "-i", str(inv)], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "jurisdiction.host" in result.output
    assert "hosts.cmp1" in result.output
    assert "nothing was touched" in result.output
    assert not (inv / ".sovdeploy").exists()


def test_down_asks_first(inventory_copy):
    inv = inventory_copy("minimal")
    result = CliRunner().invoke(main, ["down", "-i", str(inv)], input="n\n")
    assert result.exit_code == 1
    assert "nothing was destroyed" in result.output


def test_status_before_any_run_shows_pending_phases(inventory_copy):
    inv = inventory_copy("minimal")
    result = CliRunner().invoke(main, ["status", "--json", "-i", str(inv)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["phases"]
    assert [r["phase"] for r in rows] == list(PHASE_NAMES)
    assert {r["status"] for r in rows} == {"pending"}


def test_from_and_only_together_are_refused_before_anything_is_touched(tmp_path):
    inventory = tmp_path / "inv"
    shutil.copytree(ROOT / "tests/inventories/minimal", inventory)
    result = CliRunner().invoke(
        main, ["up", "-i", str(inventory), "--from", "baseline", "--only", "openstack"]
    )
    assert result.exit_code == 2, result.output
    assert "--from and --only cannot be used together" in result.output
    assert not (inventory / ".sovdeploy").exists()


def test_status_says_what_the_next_up_runs():
    from sovdeploy.phases import status

    done = done_up_to(PHASE_NAMES[-1])
    assert {r.status for r in status(done, "d1")} == {"done"}
    done["provision"] = PhaseRecord("done", "t", "r", "other-digest")
    done["verify"] = PhaseRecord("failed", "t", "r", "d1")
    rows = {r.phase: r.status for r in status(done, "d1")}
    assert rows["preflight"] == "done"
    assert rows["provision"] == "stale (inputs changed)"
    assert rows["verify"] == "failed"
    # Every later phase is done, and `up` runs it again all the same: status says so.
    again = [name for name, label in rows.items() if label.startswith("done; runs again")]
    assert again == [n for n in PHASE_NAMES[2:] if n != "verify"]
    assert again == [n for n in needed(done) if n not in {"preflight", "provision", "verify"}]
