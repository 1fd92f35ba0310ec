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
