"""The orchestrator appends what it does to the deployment's ledger, as it happens.

`sovdeploy plan` of a small inventory runs without hosts; its records (the
command, each phase's start and end, the render) must be in the ledger, the ledger
must verify, and `audit prove` must give a receipt that checks against the key alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovdeploy import secrets
from sovdeploy.cli import main
from sovdeploy.ledger import local, proof, records
from sovdeploy.ledger.note import Verifier
from sovdeploy.session import redact_argv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliRunner]:
    tmp = tmp_path_factory.mktemp("ledger-plan")
    inventory = tmp / "minimal"
    shutil.copytree(ROOT / "tests" / "inventories" / "minimal", inventory)
    runner = CliRunner(
        env={
            "SOVDEPLOY_VAULT_PASSWORD_FILE": str(tmp / "vault.pass"),
            "SOVDEPLOY_TF_PLUGIN_MIRROR": None,
        }
    )
    assert runner.invoke(main, ["secrets", "generate", "-i", str(inventory)]).exit_code == 0
    for _ in range(2):
        result = runner.invoke(main, ["plan", "-i", str(inventory)], terminal_width=300)
        assert result.exit_code == 0, result.output
    return inventory, runner


def ledger_records(inventory: Path) -> list[dict[str, object]]:
    return [records.decode(e) for e in local.entries(inventory / ".sovdeploy")]


def test_the_ledger_holds_each_command_and_phase(planned: tuple[Path, CliRunner]) -> None:
    inventory, _ = planned
    recs = ledger_records(inventory)
    commands = [r for r in recs if r["kind"] == "command"]
    assert len(commands) == 2
    assert commands[0]["command"] == "plan"
    assert commands[0]["inventory_digest"]
    assert {"user", "host", "argv", "run"} <= commands[0].keys()
    kinds = [r["kind"] for r in recs]
    assert kinds.count("phase_start") == kinds.count("phase_end") > 0
    assert "render" in kinds
    assert kinds[-1] == "command_end"
    # One source, numbered without a gap across both runs.
    assert [r["seq"] for r in recs] == list(range(len(recs)))
    assert {r["source"] for r in recs} == {"orchestrator"}
    # The run record beside it holds the same records.
    run_dirs = sorted((inventory / ".sovdeploy" / "runs").iterdir())
    lines = (run_dirs[-1] / "record.jsonl").read_text().splitlines()
    assert [json.loads(x)["kind"] for x in lines] == kinds[len(kinds) - len(lines) :]


def test_no_secret_reaches_the_ledger(planned: tuple[Path, CliRunner]) -> None:
    inventory, _ = planned
    password = secrets.read_password(inventory.parent / "vault.pass")
    values = secrets.decrypt(secrets.vault_file(inventory), password)
    assert len(values) > 10
    assert secrets.scan(inventory / ".sovdeploy" / "ledger", values) == []


def test_audit_verify_and_prove(planned: tuple[Path, CliRunner], tmp_path: Path) -> None:
    inventory, runner = planned
    result = runner.invoke(main, ["audit", "verify", "-i", str(inventory)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    receipt_file = tmp_path / "entry.tlog-proof"
    proved = runner.invoke(main, ["audit", "prove", "3", "-i", str(inventory), "-o",
                                  str(receipt_file)])  # fmt: skip
    assert proved.exit_code == 0, proved.output
    receipt = proof.Receipt.parse(receipt_file.read_text())
    vkey = (inventory / ".sovdeploy" / "keys" / "ledger.pub").read_text()
    proof.check(receipt, [Verifier.parse(vkey)])
    assert records.decode(receipt.entry)["seq"] == 3
    beyond = runner.invoke(main, ["audit", "prove", "999999", "-i", str(inventory)])
    assert beyond.exit_code == 1
    assert "covers entries" in beyond.output
    key_mode = (inventory / ".sovdeploy" / "keys" / "ledger.key").stat().st_mode & 0o777
    assert key_mode == 0o600


def test_redact_argv() -> None:
    assert redact_argv(["up", "--vault-password", "s3cret", "--token=abc", "-i", "x"]) == [
        "up", "--vault-password", "<redacted>", "--token=<redacted>", "-i", "x",
    ]  # fmt: skip
