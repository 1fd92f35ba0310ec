from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INVENTORIES = ROOT / "tests" / "inventories"


@pytest.fixture
def inventory_copy(tmp_path: Path):
    """Copy a test inventory into tmp_path, so a test may change it and keep its state dir."""

    def make(name: str) -> Path:
        dest = tmp_path / name.replace("/", "-")
        shutil.copytree(INVENTORIES / name, dest)
        return dest

    return make


@pytest.fixture(scope="session")
def built_tree(tmp_path_factory):
    """``make(label, *recipes)``: those recipes built by `mirror build` into a new tree.

    The sandbox inventory is copied with its supply tree pointed at a directory of the
    test's own; the tree's path is returned once every recipe is built.
    """
    from click.testing import CliRunner

    from sovdeploy.cli import main

    def make(label: str, *names: str) -> Path:
        tmp = tmp_path_factory.mktemp(label)
        inv = tmp / "inv"
        shutil.copytree(
            ROOT / "inventories" / "sandbox", inv, ignore=shutil.ignore_patterns(".sovdeploy")
        )
        settings = inv / "group_vars" / "all" / "sovdeploy.yml"
        text = settings.read_text()
        settings.write_text(
            text.replace("sovdeploy_supply:\n", f"sovdeploy_supply:\n  dir: {tmp}/tree\n", 1)
        )
        args = ["mirror", "build", "-i", str(inv)]
        for name in names:
            args += ["--artifact", name]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return tmp / "tree"

    return make
