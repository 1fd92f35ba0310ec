"""The import graph of sovdeploy/ holds to the layers drawn in docs/architecture.md.

Every import counts: at module level, inside a function, under TYPE_CHECKING.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sovdeploy import imports

ROOT = Path(__file__).resolve().parents[2]

#: Bottom to top, as docs/architecture.md draws them. A module may import its own layer
#: and those below; the first matching prefix places it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("sovdeploy", "sovdeploy.errors", "sovdeploy.fsutil", "sovdeploy.findings")),
    ("ledger core", ("sovdeploy.ledger",)),
    ("host-side programs", ("sovdeploy.hostside",)),
    ("model", ("sovdeploy.model", "sovdeploy.catalogue", "sovdeploy.paths", "sovdeploy.progress")),
    (
        "domain",
        (
            "sovdeploy.imports",
            "sovdeploy.state",
            "sovdeploy.secrets",
            "sovdeploy.policy",
            "sovdeploy.hardware",
            "sovdeploy.inventory",
            "sovdeploy.engines",
            "sovdeploy.supply",
            "sovdeploy.kubernetes.artifacts",
            "sovdeploy.kubernetes.nodes",
            "sovdeploy.kubernetes.client",
            "sovdeploy.runbook.facts",
            "sovdeploy.runbook.stores",
            "sovdeploy.runbook.document",
            "sovdeploy.runbook.sbom",
            "sovdeploy.runbook.register",
            "sovdeploy.runbook.topology",
            "sovdeploy.runbook.archive_export",
            "sovdeploy.runbook",
            "sovdeploy.kubernetes",
            "sovdeploy.openstack",
            "sovdeploy.sandbox",
            "sovdeploy.guest",
            "sovdeploy.preview",
            "sovdeploy.bundle",
            "sovdeploy.docs",
        ),
    ),
    ("context", ("sovdeploy.context",)),
    ("steps", ("sovdeploy.steps",)),
    (
        "workflows",
        (
            "sovdeploy.phases.",
            "sovdeploy.runbook.write",
            "sovdeploy.runbook.drill",
            "sovdeploy.kubernetes.conformance",
        ),
    ),
    ("phase table", ("sovdeploy.phases",)),
    ("session", ("sovdeploy.session", "sovdeploy.views")),
    ("command line", ("sovdeploy.cli", "sovdeploy.options")),
)

#: What code shipped to hosts may import: nothing of the deployer's.
HOST_SIDE_MAY_IMPORT = ("base", "ledger core", "host-side programs")


def layer_of(module: str) -> int:
    """The index of the layer ``module`` belongs to: its longest matching prefix wins."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact = prefix == module
            under = prefix.endswith(".") and module.startswith(prefix)
            nested = module.startswith(prefix + ".")
            if exact or under or nested:
                weight = len(prefix) + (1 if exact else 0)
                if best is None or weight > best[0]:
                    best = (weight, index)
    assert best is not None, f"{module} is in no layer: place it in LAYERS and the docs"
    return best[1]


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Each import that goes up a layer, as 'a (layer) -> b (layer)'."""
    found = []
    for module, deps in sorted(edges.items()):
        for dep in sorted(deps):
            if layer_of(dep) > layer_of(module):
                found.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) -> "
                    f"{dep} ({LAYERS[layer_of(dep)][0]})"
                )
    return found


def test_the_package_has_no_import_cycle():
    assert imports.cycles(imports.graph()) == []


def test_no_import_goes_up_a_layer():
    assert upward(imports.graph()) == []


def test_host_side_code_imports_nothing_of_the_deployer():
    edges = imports.graph()
    allowed = {i for i, (name, _) in enumerate(LAYERS) if name in HOST_SIDE_MAY_IMPORT}
    hostside = [m for m in edges if layer_of(m) in allowed]
    wrong = {m: sorted(d for d in edges[m] if layer_of(d) not in allowed) for m in hostside}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_the_checks_fail_on_a_cycle_and_on_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: a copy of the package with one import added."""
    import shutil

    copy = tmp_path / "sovdeploy"
    shutil.copytree(imports.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    fsutil = copy / "fsutil.py"
    # Inside a function, as a cycle is most often hidden.
    fsutil.write_text(fsutil.read_text() + "\n\ndef _late():\n    from sovdeploy import errors\n")
    errors = copy / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom sovdeploy import fsutil  # noqa\n")
    edges = imports.graph(copy)
    assert ["sovdeploy.errors", "sovdeploy.fsutil"] in imports.cycles(edges)
    ledger = copy / "ledger" / "merkle.py"
    ledger.write_text(ledger.read_text() + "\nfrom sovdeploy import inventory  # noqa\n")
    assert "sovdeploy.ledger.merkle (ledger core) -> sovdeploy.inventory (domain)" in upward(
        imports.graph(copy)
    )


def test_every_layer_is_in_the_architecture_document():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for name, prefixes in LAYERS:
        assert f"**{name}**" in text, name
        for prefix in prefixes:
            shown = prefix.rstrip(".").removeprefix("sovdeploy.").replace(".", "/")
            if prefix != "sovdeploy":
                assert re.search(rf"`{re.escape(shown)}[/.`]", text), (name, shown)


@pytest.mark.parametrize("module", sorted(imports.modules()))
def test_no_module_is_over_the_size_aim(module: str) -> None:
    """About 600 lines a module at most (docs/architecture.md)."""
    lines = len(imports.modules()[module].read_text().splitlines())
    assert lines <= 620, f"{module}: {lines} lines"
