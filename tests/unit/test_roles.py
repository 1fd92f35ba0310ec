"""Every role declares its interface, and its defaults match it key for key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_match_defaults(role):
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    options = specs["options"]
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    assert set(options) == set(defaults), set(options) ^ set(defaults)
    for name, spec in options.items():
        assert name.startswith(f"{role.name}_"), f"{name} is not prefixed with {role.name}_"
        assert spec.get("description"), f"{name} has no description"
        assert spec.get("type"), f"{name} has no type"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_a_molecule_scenario_with_verify(role):
    scenario = role / "molecule/default"
    assert (scenario / "molecule.yml").exists() and (scenario / "converge.yml").exists()
    assert list((scenario / "tests").glob("test_*.py")), "no testinfra verify"
