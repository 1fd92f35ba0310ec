"""The conformance run's command line and refusals, and the bundle it writes from results.

No cluster runs here: the bundle tests give `bundle` a results directory of the shape
e2e.test writes (an e2e.log and a JUnit report, written by the test) and check what is
packed, how, and that results are counted. The run itself is `sovdeploy verify
kubernetes` against the sandbox (tests/integration and `make conformance`).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from sovdeploy import cli
from sovdeploy import inventory as inv
from sovdeploy.errors import UsageError
from sovdeploy.kubernetes import conformance
from sovdeploy.model import Kubernetes

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-eu"
PRODUCT = {
    "website_url": "https://cloud.example.eu/ai",
    "documentation_url": "https://docs.cloud.example.eu/kubernetes",
    "contact_email_address": "platform@cloud.example.eu",
}
JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="Kubernetes e2e suite" tests="4" failures="{failures}" errors="0" time="9">
  <testcase name="[SynchronizedBeforeSuite]" time="1"/>
  <testcase name="[It] [sig-node] Pods should run [Conformance]" time="3"/>
  <testcase name="[It] [sig-node] Pods should not run here [Conformance]" time="0">
    <skipped message="skipped"/>
  </testcase>
{cases}</testsuite>
"""
FAILED_CASE = '  <testcase name="[It] [sig-x] fails {n} [Conformance]"><failure/></testcase>\n'


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
    cases = "".join(FAILED_CASE.format(n=n) for n in range(failures))
    (results / "junit_01.xml").write_text(JUNIT.format(failures=failures, cases=cases))
    return results


def test_ginkgo_runs_every_conformance_test_as_upstreams_image_does(tmp_path: Path) -> None:
    argv = conformance.command(
        Path("/tree/e2e.test"),
        Path("/tree/ginkgo"),
        Path("/state/admin.conf"),
        results=tmp_path,
        focus=conformance.CONFORMANCE,
        procs=1,
    )
    assert argv[0] == "/tree/ginkgo"
    assert r"--focus=\[Conformance\]" in argv
    # Serial tests are not skipped: the certified run has them all.
    assert not [a for a in argv if a.startswith("--skip")]
    assert "--procs=1" in argv and "--timeout=24h" in argv
    tests = argv[argv.index("/tree/e2e.test") + 1 :]
    assert tests[0] == "--"
    assert {"--provider=skeleton", f"--report-dir={tmp_path}"} <= set(tests)
    assert "--kubeconfig=/state/admin.conf" in tests


def _conformance_names() -> list[str]:
    cache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=False
    ).stdout.strip()
    listing = Path(cache or os.devnull) / (
        "k8s.io/kubernetes@v1.37.2/test/conformance/testdata/conformance.yaml"
    )
    if not listing.is_file():
        pytest.skip(f"no {listing}: `make mirror` fetches the Kubernetes module")
    return [t["codename"] for t in yaml.safe_load(listing.read_text())]


def test_the_ci_subset_names_conformance_tests_of_each_area_it_claims() -> None:
    names = _conformance_names()
    assert len(names) == 462  # the release's conformance tests
    focus = re.compile(conformance.SUBSETS["ci"])
    chosen = [n for n in names if focus.search(n)]
    for area in (
        r"\[sig-node\] Pods",
        r"\[sig-network\] Services",
        r"\[sig-network\] DNS",
        r"\[sig-network\] Networking",
        r"Secrets",
        r"\[sig-auth\] SubjectReview",
        r"\[sig-auth\] ServiceAccounts",
        r"AdmissionWebhook",
    ):
        assert [n for n in chosen if re.search(area, n)], area
    assert 15 <= len(chosen) <= 30, chosen
    assert not [n for n in chosen if "[Serial]" in n]


def test_a_junit_report_counts_specs_not_the_suites_own_nodes(tmp_path: Path) -> None:
    found = conformance.counts(_results(tmp_path, 2) / "junit_01.xml")
    assert (found.tests, found.failed, found.skipped, found.passed) == (4, 2, 1, 1)
    assert found.describe() == "1 passed, 2 failed, 1 skipped"
    # A suite node that fails (the cluster never answered) is a failure too.
    report = tmp_path / "setup.xml"
    report.write_text(
        '<testsuites><testsuite><testcase name="[SynchronizedBeforeSuite]"><failure/>'
        '</testcase><testcase name="[It] a"><skipped/></testcase></testsuite></testsuites>'
    )
    found = conformance.counts(report)
    assert (found.tests, found.failed, found.skipped, found.passed) == (1, 1, 1, 0)


def test_verify_kubernetes_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli.main, ["verify", "kubernetes", "--subset", "x", "-i", str(EXAMPLE)])
    assert unknown.exit_code == 2 and "'x' is not 'ci'" in unknown.output
    misplaced = runner.invoke(cli.main, ["verify", "--parallel", "2", "-i", str(EXAMPLE)])
    assert misplaced.exit_code == 2
    assert "apply to `verify kubernetes` only" in misplaced.output


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
    assert "agnhost 2.55" in readme and "is not in the mirror" in readme
    assert "None: every test that ran passed." in readme
    sums = (out / "SHA256SUMS").read_text()
    assert digest == hashlib.sha256(sums.encode()).hexdigest()
    for line in sums.splitlines():
        file_digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == file_digest
    # Written again from the same results: the same bytes, the same digest.
    again = conformance.bundle(tmp_path / "results", out, "v1.34.1", _deployment(PRODUCT))
    assert again == digest
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_the_bundle_names_each_failed_test_with_its_failure(tmp_path: Path) -> None:
    out = tmp_path / "v1.37.2"
    results = _results(tmp_path, 2)
    conformance.bundle(results, out, "v1.37.2", _deployment(PRODUCT))
    readme = (out / "README.md").read_text()
    assert "2 test(s) failed" in readme
    assert "- `[It] [sig-x] fails 0 [Conformance]`" in readme
    assert "- `[It] [sig-x] fails 1 [Conformance]`" in readme


def test_an_interrupted_test_is_told_from_a_failed_one(tmp_path: Path) -> None:
    report = _results(tmp_path, 1) / "junit_01.xml"
    assert conformance.interrupted(report) == []
    report.write_text(
        report.read_text().replace(
            "</testsuite>",
            '<testcase name="[It] [sig-y] stopped"><failure message="[INTERRUPTED] '
            'Interrupted by User"/></testcase></testsuite>',
        )
    )
    assert conformance.interrupted(report) == ["[It] [sig-y] stopped"]
    assert conformance.counts(report).failed == 2


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
