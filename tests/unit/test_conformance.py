"""The conformance run's refusals, and the submission bundle it writes from the results.

hydrophone and the conformance image are not pinned, so nothing here runs the suite:
the bundle tests give `bundle` a results directory of the shape hydrophone writes (an
e2e.log and a JUnit report, written by the test) and check what is packed, how, and
that failures are counted; the run itself belongs to the `cluster` Molecule scenario.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from sovdeploy import cli
from sovdeploy import inventory as inv
from sovdeploy.errors import UsageError
from sovdeploy.kubernetes import artifacts as mirror
from sovdeploy.kubernetes import conformance
from sovdeploy.model import Kubernetes

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-eu"
PRODUCT = {
    "website_url": "https://cloud.example.eu/ai",
    "documentation_url": "https://docs.cloud.example.eu/kubernetes",
    "contact_email_address": "platform@cloud.example.eu",
}
JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="Kubernetes e2e suite" tests="3" failures="{failures}" errors="0" time="9">
  <testcase name="[sig-node] Pods should run [Conformance]" time="3"/>
</testsuite>
"""


def _deployment(details: dict[str, Any] | None) -> Any:
    deployment = inv.load(EXAMPLE).deployment
    k8s = deployment.settings.kubernetes.model_copy(
        update={
            "conformance": None
            if details is None
            else Kubernetes.model_validate({"conformance": details}).conformance
        }
    )
    settings = deployment.settings.model_copy(update={"kubernetes": k8s})
    return deployment.model_copy(update={"settings": settings})


def _results(tmp_path: Path, failures: int = 0) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    (results / "e2e.log").write_text("Ran 3 of 7000 Specs\nSUCCESS!\n")
    (results / "junit_01.xml").write_text(JUNIT.format(failures=failures))
    return results


def test_verify_kubernetes_refuses_while_the_suite_is_unpinned() -> None:
    assert conformance.unpinned(mirror.load()) == ["conformance", "hydrophone", "busybox"]
    result = CliRunner().invoke(cli.main, ["verify", "kubernetes", "-i", str(EXAMPLE)])
    assert result.exit_code == 1
    assert "does not pin the conformance suite (conformance, hydrophone, busybox)" in (
        result.output
    )
    assert "nothing was run" in result.output


def test_product_yaml_names_sovdeploy_as_the_installer_and_the_operator() -> None:
    with pytest.raises(UsageError, match=r"sovdeploy_kubernetes\.conformance"):
        conformance.product(_deployment(None))
    found = conformance.product(_deployment(PRODUCT))
    assert found["type"] == "installer"
    assert found["name"] == "sovdeploy"
    assert found["vendor"] == inv.load(EXAMPLE).deployment.settings.operator.name
    assert found["contact_email_address"] == PRODUCT["contact_email_address"]


def test_a_contact_that_is_no_email_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="contact_email_address"):
        Kubernetes.model_validate({"conformance": {**PRODUCT, "contact_email_address": "x"}})


def test_the_bundle_holds_the_results_product_and_readme_and_its_digest(tmp_path: Path) -> None:
    out = tmp_path / "conformance" / "v1.34.1"
    out.parent.mkdir()
    digest = conformance.bundle(_results(tmp_path), out, "v1.34.1", _deployment(PRODUCT))
    assert sorted(p.name for p in out.iterdir()) == [
        "PRODUCT.yaml",
        "README.md",
        "SHA256SUMS",
        "e2e.log",
        "junit_01.xml",
    ]
    assert yaml.safe_load((out / "PRODUCT.yaml").read_text())["type"] == "installer"
    readme = (out / "README.md").read_text()
    assert "sovdeploy verify kubernetes" in readme
    assert "musl's resolver is not exercised" in readme  # what the Debian-based agnhost changes
    sums = (out / "SHA256SUMS").read_text()
    assert digest == hashlib.sha256(sums.encode()).hexdigest()
    for line in sums.splitlines():
        file_digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == file_digest
    # Written again from the same results: the same bytes, the same digest.
    again = conformance.bundle(tmp_path / "results", out, "v1.34.1", _deployment(PRODUCT))
    assert again == digest
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_without_results_no_bundle_is_written(tmp_path: Path) -> None:
    results = _results(tmp_path)
    (results / "junit_01.xml").unlink()
    out = tmp_path / "v1.34.1"
    with pytest.raises(conformance.ConformanceError, match=r"no junit_01\.xml"):
        conformance.bundle(results, out, "v1.34.1", _deployment(PRODUCT))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [results]


@pytest.mark.parametrize("failures", [0, 2])
def test_failures_are_counted_from_the_junit_report(tmp_path: Path, failures: int) -> None:
    report = _results(tmp_path, failures) / "junit_01.xml"
    assert conformance.failures(report) == failures
    wrapped = tmp_path / "suites.xml"
    inner = report.read_text().split("?>", 1)[1]
    wrapped.write_text(f"<testsuites>{inner}{inner}</testsuites>")
    assert conformance.failures(wrapped) == 2 * failures
