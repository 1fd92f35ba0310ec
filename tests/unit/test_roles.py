"""Every role declares its interface, and its defaults match it key for key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


ROLE_NAMES = {p.name for p in ROLES}


def _is_secret(spec):
    return bool(spec.get("no_log") and spec.get("required"))


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_match_defaults(role):
    entries = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    public = {
        name
        for specs in entries.values()
        for name, spec in (specs.get("options") or {}).items()
        if not _is_secret(spec) and not spec.get("required")
    }
    # Secrets and required inputs have no default; every other option has one.
    assert public == set(defaults), public ^ set(defaults)
    for entry, specs in entries.items():
        options = specs.get("options") or {}
        for name, spec in options.items():
            owner = name.split("_")[0] if _is_secret(spec) else role.name
            # A secret may be another role's (the CA key, Keystone's admin password).
            assert name.startswith(f"{role.name}_") or (
                _is_secret(spec) and any(name.startswith(f"{r}_") for r in ROLE_NAMES)
            ), f"{entry}: {name} is not prefixed with {role.name}_ ({owner})"
            assert spec.get("description"), f"{entry}: {name} has no description"
            assert spec.get("type"), f"{entry}: {name} has no type"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_a_molecule_scenario_with_verify(role):
    scenario = role / "molecule/default"
    assert (scenario / "molecule.yml").exists() and (scenario / "converge.yml").exists()
    assert list((scenario / "tests").glob("test_*.py")), "no testinfra verify"


def test_accel_host_takes_the_plan_hostplan_writes():
    from sovdeploy import catalogue
    from sovdeploy.hardware import plan as hostplan
    from sovdeploy.inventory import load

    specs = yaml.safe_load((ROOT / "roles/accel_host/meta/argument_specs.yml").read_text())
    keys = set(specs["argument_specs"]["main"]["options"]["accel_host_plan"]["options"])
    host = next(
        h for h in load(ROOT / "inventories/example-eu").deployment.hosts if h.name == "gpu01"
    )
    assert set(hostplan.plan(host, catalogue.load()).as_vars()) == keys
    converge = yaml.safe_load((ROOT / "roles/accel_host/molecule/default/converge.yml").read_text())
    assert set(converge[0]["roles"][0]["vars"]["accel_host_plan"]) == keys
