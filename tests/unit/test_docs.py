"""The README's inventory reference is the one generated from the model."""

from __future__ import annotations

from pathlib import Path

from sovdeploy.docs import readme

ROOT = Path(__file__).resolve().parents[2]


def test_readme_references_are_current():
    current = (ROOT / "README.md").read_text()
    assert current == readme(ROOT), "regenerate them: python -m sovdeploy.docs"


def test_readme_leads_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "up"],
        ["make", "test"],
    ]


def test_readme_lists_every_audit_exit_code_as_the_code_defines_it():
    from sovdeploy.ledger.audit import DESCRIPTIONS

    readme = (ROOT / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit() and cells[1].isupper():
            rows[int(cells[0])] = (cells[1], cells[2].replace("`", ""))
    assert rows == {int(t): (t.name, d) for t, d in DESCRIPTIONS.items()}
