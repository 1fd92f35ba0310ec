"""The certified-conformance run, and the bundle a cncf/k8s-conformance submission needs.

``e2e.test`` and ``ginkgo`` come from the deployer's mirror tree, built from Kubernetes'
own sources at the manifest's release and checked against their provenance before they
run. ginkgo runs every ``[Conformance]`` test (serial ones included, one at a time as
upstream's conformance image does by default) against the cluster through the operator's
kubeconfig. The tests name their images by upstream name and tag
(``registry.k8s.io/e2e-test-images/agnhost:2.66.1``); the nodes' containerd pulls them
from the deployment's registry, which holds the ones built from the same release.
The bundle (``PRODUCT.yaml`` with type ``installer``, ``e2e.log``, ``junit_01.xml``, a
README with the steps and ``SHA256SUMS``) goes to ``<state>/conformance/<version>/``,
and its digest into the ledger.

A named subset (``SUBSETS``) runs the same way and keeps its results under the run's
own directory: it is evidence for CI, not a bundle to submit.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sovdeploy import __version__
from sovdeploy.context import Context
from sovdeploy.errors import SovdeployError, UsageError
from sovdeploy.fsutil import atomic_write
from sovdeploy.kubernetes import artifacts as mirror
from sovdeploy.supply import build as supply_build
from sovdeploy.supply import recipes

#: Every conformance test of the release.
CONFORMANCE = r"\[Conformance\]"
#: Named subsets of the conformance tests, by a focus on their names. ``ci`` is what
#: `make test` runs in CI's time: pods, services, DNS, pod networking, Secrets, service
#: accounts and authorization reviews (RBAC's checks), and admission webhooks.
SUBSETS = {
    "ci": (
        r"\[sig-node\] Pods should (be submitted and removed|get a host IP|be updated "
        r"|support remote command execution over websockets)"
        r"|\[sig-network\] Services should (serve a basic endpoint from pods|serve multiport "
        r"endpoints from pods|be able to create a functioning NodePort service)"
        r"|\[sig-network\] DNS should provide DNS for (services|the cluster) "
        r"|\[sig-network\] Networking Granular Checks: Pods should function for "
        r"(intra-pod|node-pod) communication: http "
        r"|\[sig-node\] Secrets should be consumable (from pods in env vars|via the environment)"
        r"|\[sig-storage\] Secrets should be consumable from pods in volume \[Conformance\]"
        r"|\[sig-auth\] SubjectReview should support SubjectReview API operations"
        r"|\[sig-auth\] ServiceAccounts should mount an API token into pods"
        r"|\[sig-api-machinery\] AdmissionWebhook \[Privileged:ClusterAdmin\] should "
        r"(be able to deny pod and configmap creation|mutate configmap) "
    ),
}
BUNDLE_FILES = ("PRODUCT.yaml", "README.md", "e2e.log", "junit_01.xml")
#: The agnhost tags this release's e2e.test names (test/utils/image/manifest.go): the
#: previous one is not built (see the bundle's README).
AGNHOST_PREV, AGNHOST = "2.55", "2.66.1"


class ConformanceError(SovdeployError):
    """The conformance suite cannot run, or the cluster failed it."""


def product(deployment: Any) -> dict[str, Any]:
    """PRODUCT.yaml: sovdeploy as the installer, the operator as the one who submits."""
    details = deployment.settings.kubernetes.conformance
    if details is None:
        raise UsageError(
            "PRODUCT.yaml needs sovdeploy_kubernetes.conformance (website_url, "
            "documentation_url, contact_email_address) in the inventory"
        )
    found = {
        "vendor": deployment.settings.operator.name,
        "name": "sovdeploy",
        "version": __version__,
        "website_url": details.website_url,
        "documentation_url": details.documentation_url,
        "type": "installer",
        "description": (
            "sovdeploy deploys upstream OpenStack and a conformant Kubernetes on hardware "
            "the operator owns, from in-jurisdiction artifact mirrors, with sealed logs "
            "and an exit runbook."
        ),
        "contact_email_address": details.contact_email_address,
    }
    if details.product_logo_url:
        found["product_logo_url"] = details.product_logo_url
    return found


def failed_specs(junit: Path) -> list[tuple[str, str]]:
    """Each failed test case of a JUnit report: its name and its failure's first line."""
    root = ET.parse(junit).getroot()  # noqa: S314 - the report e2e.test wrote here
    found = []
    for case in root.iter("testcase"):
        broken = case.find("failure")
        if broken is None:
            broken = case.find("error")
        if broken is None:
            continue
        text = (broken.get("message") or broken.text or "").strip()
        found.append((case.get("name", ""), text.splitlines()[0][:300] if text else ""))
    return found


def interrupted(junit: Path) -> list[str]:
    """The tests a JUnit report says were interrupted before they finished."""
    return [name for name, message in failed_specs(junit) if message.startswith("[INTERRUPTED]")]


def _failures_section(failed: list[tuple[str, str]]) -> str:
    if not failed:
        return "\n## Failures\n\nNone: every test that ran passed.\n"
    rows = "".join(f"- `{name}`: {message}\n" for name, message in failed)
    return (
        f"\n## Failures\n\n{len(failed)} test(s) failed; each with the first line of its "
        f"failure (the whole output is in `e2e.log`):\n\n{rows}"
    )


def _readme(version: str, deployment: str, failed: list[tuple[str, str]] | None = None) -> str:
    prev, agnhost = AGNHOST_PREV, AGNHOST
    failures = _failures_section(failed or [])
    return f"""# Conformance results for Kubernetes {version}, installed by sovdeploy {__version__}

Deployment `{deployment}`: a kubeadm cluster on the `k8s_control` and `k8s_worker`
hosts of an Ansible inventory, every artifact from the inventory's mirrors at the
digests pinned in `sovdeploy/data/kubernetes.yml`.

## To reproduce

1. Write an inventory with `k8s_control` (1 or 3 hosts) and `k8s_worker` hosts and the
   apt, files and container registry sources (`inventories/example-eu` is one).
2. Fill the mirrors from `sovdeploy mirror list -i INVENTORY` and check them:
   `sovdeploy mirror check -i INVENTORY`.
3. `sovdeploy up -i INVENTORY` (the mirror tree also holds `e2e.test` and `ginkgo`,
   built from Kubernetes {version}'s sources by `sovdeploy mirror build`).
4. `sovdeploy verify kubernetes -i INVENTORY`: ginkgo runs every `[Conformance]` test
   (`--focus='\\[Conformance\\]'`, serial ones included; with `--parallel N` in N
   processes, the serial tests last and alone) with `e2e.test --provider=skeleton`, and
   this directory is written.

## The test images

The images the tests run (agnhost, busybox, nginx, ...) were built by `sovdeploy mirror
build` from Kubernetes {version}'s `test/images` sources on Debian 13 bases, under the
names and tags the suite asks for. Upstream's agnhost is Alpine: the DNS tests use it as
the musl resolver beside glibc-dns-testing; here both probes resolve through glibc, so
musl's resolver is not exercised. The busybox image's `/bin/sh` is bash: Debian's
busybox shell drops environment variables whose names are no shell names (`data-1`, a
Secret's key), which the Secret and ConfigMap environment tests read back with `env`.

Two tests check the upstream images' own text, which these images do not have:

- `[sig-node] ImageVolume ... pull policy of Always` mounts the kitten image as a
  volume, reads its `data.json` (which passes) and expects "Alpine Linux" in its
  `/etc/os-release`. Upstream's kitten is FROM Alpine; this one is Debian 13, the
  distribution whose archive is reachable where sovdeploy builds (Alpine's is not),
  and its os-release is not rewritten to name another distribution.
- `[sig-node] Kubelet when scheduling a read only busybox container should not write
  to root filesystem` expects busybox ash's exact message (`/bin/sh: can't create
  /file: Read-only file system`); bash, this image's `/bin/sh`, refuses the write too
  and says `/bin/sh: line 1: /file: Read-only file system`.

agnhost {prev} (the suite's "previous agnhost", which the StatefulSet, Deployment and
DaemonSet rolling update, kubectl and Pod lifecycle tests start before moving to
{agnhost}) is not in the mirror: upstream built it
from a commit between two tags, and the Go module source reachable where sovdeploy
builds serves Kubernetes only at its tags (v1.34.0-alpha.0 carries agnhost 2.53,
v1.34.0-alpha.1 carries 2.56). A test that runs it fails at its image pull
(`ErrImagePull ... agnhost:{prev}: not found`); another agnhost under its tag would be
a false image, so none is served.
{failures}"""


@dataclass(frozen=True)
class Counts:
    """What a JUnit report says of the specs that ran (and of the suite's own nodes)."""

    tests: int
    passed: int
    failed: int
    skipped: int

    def describe(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def counts(junit: Path) -> Counts:
    """The specs of a JUnit report e2e.test wrote: run, passed, failed, skipped.

    A spec is a ``[It] ...`` test case; the suite's own nodes (``[SynchronizedBeforeSuite]``,
    reports) are not counted as tests, but one that failed counts as a failure.
    """
    root = ET.parse(junit).getroot()  # noqa: S314 - the report e2e.test wrote here
    tests = passed = failed = skipped = 0
    for case in root.iter("testcase"):
        spec = case.get("name", "").startswith("[It]")
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif spec and case.find("skipped") is not None:
            skipped += 1
        elif spec:
            passed += 1
        tests += spec
    return Counts(tests=tests, passed=passed, failed=failed, skipped=skipped)


def failures(junit: Path) -> int:
    """Failed and errored test cases in a JUnit report."""
    return counts(junit).failed


def bundle(results: Path, out: Path, version: str, deployment: Any) -> str:
    """Write the submission bundle from the run's results; return its digest.

    The digest is the sha256 of the lines ``<sha256>  <file>`` of the bundle's files in
    name order. The directory appears whole or not at all.
    """
    missing = [n for n in ("e2e.log", "junit_01.xml") if not (results / n).is_file()]
    if missing:
        raise ConformanceError(f"the run left no {', '.join(missing)} in {results}")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name in ("e2e.log", "junit_01.xml"):
            shutil.copyfile(results / name, staging / name)
        (staging / "PRODUCT.yaml").write_text(
            yaml.safe_dump(product(deployment), sort_keys=False), encoding="utf-8"
        )
        readme = _readme(version, deployment.name, failed_specs(results / "junit_01.xml"))
        (staging / "README.md").write_text(readme, encoding="utf-8")
        lines = "".join(
            f"{hashlib.sha256((staging / n).read_bytes()).hexdigest()}  {n}\n"
            for n in sorted(BUNDLE_FILES)
        )
        (staging / "SHA256SUMS").write_text(lines, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return hashlib.sha256(lines.encode()).hexdigest()


def suite(deployment: Any) -> tuple[Path, Path]:
    """``e2e.test`` and ``ginkgo`` from the deployer's tree, their bytes checked first."""
    tree = supply_build.tree(deployment)
    supply = recipes.load()
    return tree.verified(supply.get("e2e.test")), tree.verified(supply.get("ginkgo"))


def command(
    e2e: Path, ginkgo: Path, kubeconfig: Path, *, results: Path, focus: str, procs: int
) -> list[str]:
    """The ginkgo command line, as upstream's conformance image forms it."""
    return [
        str(ginkgo),
        f"--focus={focus}",
        "--no-color",
        "--timeout=24h",
        f"--procs={procs}",
        "-v",
        str(e2e),
        "--",
        "--disable-log-dump",
        "--provider=skeleton",
        f"--report-dir={results}",
        f"--kubeconfig={kubeconfig}",
    ]


def execute(argv: list[str], results: Path, echo: Callable[[str], None]) -> int:
    """Run the suite, its output into ``results/e2e.log`` and to ``echo``; its exit code."""
    results.mkdir(parents=True, exist_ok=True)
    with (
        (results / "e2e.log").open("w", encoding="utf-8") as log,
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            echo(line.rstrip())
    return proc.returncode


def run(ctx: Context, kubeconfig: Path, subset: str | None = None, procs: int = 1) -> Path:
    """Run the conformance tests (or a named subset) against the cluster.

    The whole suite writes the bundle and returns its directory; a subset returns its
    results directory. Fails if any test failed, with the results kept.
    """
    manifest = mirror.load()
    deployment = ctx.deployment
    if subset is not None and subset not in SUBSETS:
        raise UsageError(f"no conformance subset {subset!r}: {', '.join(SUBSETS)}")
    if subset is None:
        product(deployment)  # refuse before the hours-long run, not after it
    if not kubeconfig.exists():
        raise UsageError(f"no kubeconfig at {kubeconfig}: run `sovdeploy up` first")
    e2e, ginkgo = suite(deployment)
    version = manifest.kubernetes_version
    focus = CONFORMANCE if subset is None else SUBSETS[subset]
    work = ctx.state.root / "conformance" / "runs" / ctx.run.id
    results = work / "results"
    argv = command(e2e, ginkgo, kubeconfig, results=results, focus=focus, procs=procs)
    ctx.run.record("conformance_start", kubernetes=version, subset=subset, procs=procs)
    started = time.monotonic()
    code = execute(
        argv,
        results,
        lambda line: ctx.progress.console.print(f"    {line}", markup=False, highlight=False),
    )
    took = time.monotonic() - started
    junit = results / "junit_01.xml"
    if not junit.is_file():
        raise ConformanceError(f"the suite left no junit_01.xml (ginkgo exited {code}): {results}")
    found = counts(junit)
    out = results
    record: dict[str, Any] = {}
    unfinished = interrupted(junit)
    if unfinished:
        # An interrupted run is no evidence of the release's suite: its results stay in
        # the run's directory, and no bundle is written or replaced.
        record["interrupted"] = len(unfinished)
    elif subset is None:
        out = ctx.state.root / "conformance" / version
        record["sha256"] = bundle(results, out, version, deployment)
    summary = {
        "kubernetes": version,
        "subset": subset,
        "path": str(out.relative_to(ctx.state.root)),
        "tests": found.tests,
        "passed": found.passed,
        "failed": found.failed,
        "skipped": found.skipped,
        "seconds": round(took),
        "ginkgo_exit": code,
        "run": ctx.run.id,
        **record,
    }
    ctx.run.record("conformance_result", **summary)
    # The runbook reports the latest finished run of each kind (the suite, each subset).
    if not unfinished:
        atomic_write(
            ctx.state.root / "conformance" / f"{subset or 'full'}.json",
            json.dumps(summary, indent=2, sort_keys=True) + "\n",
        )
    ctx.progress.note(
        f"conformance{f' ({subset})' if subset else ''}: {found.describe()} "
        f"in {took / 60:.1f} min; results in {out}",
        found.failed == 0 and code == 0,
    )
    if unfinished:
        raise ConformanceError(
            f"the run was interrupted: {len(unfinished)} test(s) did not finish, "
            f"{found.failed - len(unfinished)} failed before; no bundle was written, the "
            f"results are in {out}"
        )
    if found.failed or code != 0:
        raise ConformanceError(
            f"{found.failed} conformance test(s) failed (ginkgo exited {code}); "
            f"the results are in {out}"
        )
    return out
