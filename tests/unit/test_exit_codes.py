"""The exit codes docs/exit-codes.md documents are the ones the commands return."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sovdeploy.cli import main
from sovdeploy.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID

ROOT = Path(__file__).resolve().parents[2]


def commands(group: click.Group = main, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_the_table_holds_the_codes_errors_defines():
    text = (ROOT / "docs" / "exit-codes.md").read_text()
    codes = [int(m) for m in re.findall(r"^\| (\d+) \|", text, re.MULTILINE)]
    assert codes == [0, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED]


WITH_INVENTORY = [
    (path, cmd)
    for path, cmd in commands()
    if any(p.name == "inventory" for p in cmd.params) and path != ("audit", "verify")
]


@pytest.mark.parametrize(
    ("path", "cmd"), WITH_INVENTORY, ids=[" ".join(p) for p, _ in WITH_INVENTORY]
)
def test_every_command_refuses_an_inventory_that_is_not_there(path, cmd, tmp_path):
    args = [*path]
    # The arguments a command needs before it reads the inventory.
    if path == ("audit", "prove"):
        args.append("0")
    if path == ("mirror", "path"):
        args.append("tofu")
    if path == ("down",):
        args.append("--yes")
    result = CliRunner().invoke(main, [*args, "-i", str(tmp_path / "absent")])
    assert result.exit_code == EXIT_INVALID, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "no such inventory" in result.output
    assert str(tmp_path / "absent") in result.output


def test_audit_verify_of_a_log_that_is_not_there_says_unreadable(tmp_path):
    from sovdeploy.ledger.audit import Tamper
    from sovdeploy.ledger.note import Signer

    key = Signer.generate("sovdeploy.test/log").verifier.vkey()
    result = CliRunner().invoke(main, ["audit", "verify", str(tmp_path / "absent"), "--key", key])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == int(Tamper.UNREADABLE), result.output
    assert "the log has no checkpoint" in result.output


def test_audit_verify_refuses_a_malformed_key_as_bad_input(tmp_path):
    result = CliRunner().invoke(main, ["audit", "verify", str(tmp_path), "--key", "x+1+AAAA"])
    assert result.exit_code == EXIT_INVALID, result.output
    assert "x+1+AAAA: malformed verifier key" in result.output
