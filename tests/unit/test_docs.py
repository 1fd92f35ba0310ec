"""The documentation: generated references current, the README short and first with the
two commands, the auditor's exit codes as the code defines them, the site builds."""

from __future__ import annotations

from pathlib import Path

from sovdeploy.docs import pages

ROOT = Path(__file__).resolve().parents[2]


def test_reference_pages_are_current():
    for page, text in pages(ROOT).items():
        assert (ROOT / page).read_text() == text, f"regenerate {page}: python -m sovdeploy.docs"


def test_readme_fits_on_a_few_screens():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 80


def test_readme_leads_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "up"],
        ["make", "test"],
    ]


def test_the_docs_list_every_audit_exit_code_as_the_code_defines_it():
    from sovdeploy.ledger.audit import DESCRIPTIONS

    readme = (ROOT / "docs" / "concepts.md").read_text()
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit() and cells[1].isupper():
            rows[int(cells[0])] = (cells[1], cells[2].replace("`", ""))
    assert rows == {int(t): (t.name, d) for t, d in DESCRIPTIONS.items()}


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    """mkdocs --strict: a broken link or a page missing from the navigation fails it."""
    import shutil
    import subprocess
    import sys

    mkdocs = Path(sys.executable).parent / "mkdocs"
    # Not --quiet: it hides the warnings that --strict counts.
    build = [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")]
    done = subprocess.run(build, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "roles" / "index.html").is_file()
    # And it does fail on a broken link, in a copy of the docs.
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy)
    with (copy / "docs" / "commands.md").open("a") as fh:
        fh.write("\nSee [nothing](no-such-page.md).\n")
    broken = subprocess.run(
        [*build[:-1], str(tmp_path / "site2")],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode != 0
    assert "no-such-page.md" in broken.stdout + broken.stderr
