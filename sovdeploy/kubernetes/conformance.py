"""The certified-conformance run, and the bundle a cncf/k8s-conformance submission needs.

hydrophone comes from the inventory's files mirror and the conformance image from its
registry, both at the digests the artifact manifest pins; hydrophone runs every
``[Conformance]`` test (not a quick mode) against the cluster through the operator's
kubeconfig, with the e2e tests' images taken from the same registry (``--test-repo-list``).
The bundle (``PRODUCT.yaml`` with type ``installer``, ``e2e.log``, ``junit_01.xml`` and a
README with the steps) goes to ``<state>/conformance/<kubernetes version>/``, and its
digest into the ledger.

The manifest does not pin the conformance image, hydrophone or busybox yet (no digest for
them could be checked where sovdeploy is built), so ``run`` refuses before touching
anything, naming what is missing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sovdeploy import __version__
from sovdeploy.context import Context
from sovdeploy.errors import SovdeployError, UsageError
from sovdeploy.kubernetes import artifacts as mirror

#: What the run needs beyond the cluster: the conformance image of the manifest's
#: release, hydrophone to drive it, and the busybox image hydrophone collects results with.
PINS = ("conformance", "hydrophone", "busybox")
#: The registries the e2e tests name their images by, as `--test-repo-list` keys them; each
#: is taken from the inventory's registry under its upstream path, as every other image.
TEST_REGISTRIES = {
    "promoterE2eRegistry": "registry.k8s.io/e2e-test-images",
    "buildImageRegistry": "registry.k8s.io/build-image",
    "gcEtcdRegistry": "registry.k8s.io",
    "gcRegistry": "registry.k8s.io",
    "sigStorageRegistry": "registry.k8s.io/sig-storage",
    "dockerLibraryRegistry": "docker.io/library",
}
BUNDLE_FILES = ("PRODUCT.yaml", "README.md", "e2e.log", "junit_01.xml")


class ConformanceError(SovdeployError):
    """The conformance suite cannot run, or the cluster failed it."""


def unpinned(manifest: mirror.Manifest) -> list[str]:
    """The suite's artifacts the manifest does not pin (none: it can run)."""
    pinned = {a.name for a in manifest.artifacts}
    return [name for name in PINS if name not in pinned]


def require_pins(manifest: mirror.Manifest) -> None:
    """Refuse, before anything is opened or run, while the manifest does not pin the suite."""
    missing = unpinned(manifest)
    if missing:
        raise ConformanceError(
            f"the artifact manifest does not pin the conformance suite ({', '.join(missing)}): "
            "sovdeploy runs it only from the mirror by digest, and upstream publishes no "
            "digest for these that could be checked; nothing was run"
        )


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


def _readme(version: str, deployment: str) -> str:
    return f"""# Conformance results for Kubernetes {version}, installed by sovdeploy {__version__}

Deployment `{deployment}`: a kubeadm cluster on the `k8s_control` and `k8s_worker`
hosts of an Ansible inventory, every artifact from the inventory's mirrors at the
digests pinned in `sovdeploy/data/kubernetes.yml`.

## To reproduce

1. Write an inventory with `k8s_control` (1 or 3 hosts) and `k8s_worker` hosts and the
   apt, files and container registry sources (`inventories/example-eu` is one).
2. Fill the mirrors from `sovdeploy mirror list -i INVENTORY` and check them:
   `sovdeploy mirror check -i INVENTORY`.
3. `sovdeploy secrets generate -i INVENTORY`, then `sovdeploy up -i INVENTORY`.
4. `sovdeploy verify kubernetes -i INVENTORY`: hydrophone runs the `[Conformance]` tests
   and this directory is written.

## The test images

The images the tests run (agnhost, busybox, nginx, ...) were built by `sovdeploy mirror
build` from Kubernetes {version}'s `test/images` sources on Debian 13 bases, under the
names and tags the suite asks for. Upstream's agnhost is Alpine: the DNS tests use it as
the musl resolver beside glibc-dns-testing; here both probes resolve through glibc, so
musl's resolver is not exercised.
"""


def failures(junit: Path) -> int:
    """Failed and errored test cases in a JUnit report."""
    root = ET.parse(junit).getroot()  # noqa: S314 - the report hydrophone wrote here
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    return sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)


def bundle(results: Path, out: Path, version: str, deployment: Any) -> str:
    """Write the submission bundle from hydrophone's results; return its digest.

    The digest is the sha256 of the lines ``<sha256>  <file>`` of the bundle's files in
    name order. The directory appears whole or not at all.
    """
    missing = [n for n in ("e2e.log", "junit_01.xml") if not (results / n).is_file()]
    if missing:
        raise ConformanceError(f"hydrophone left no {', '.join(missing)} in {results}")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name in ("e2e.log", "junit_01.xml"):
            shutil.copyfile(results / name, staging / name)
        (staging / "PRODUCT.yaml").write_text(
            yaml.safe_dump(product(deployment), sort_keys=False), encoding="utf-8"
        )
        (staging / "README.md").write_text(_readme(version, deployment.name), encoding="utf-8")
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


def _hydrophone(manifest: mirror.Manifest, mirrors: dict[Any, str], work: Path) -> Path:
    archive = mirror.fetch(manifest.get("hydrophone"), mirrors, work / "hydrophone.tar.gz")
    with tarfile.open(archive) as tar:
        member = tar.getmember("hydrophone")
        if not member.isfile():
            raise ConformanceError("the hydrophone archive holds no hydrophone binary")
        tar.extract(member, work, filter="data")
    binary = work / "hydrophone"
    binary.chmod(0o755)
    return binary


def execute(
    manifest: mirror.Manifest,
    mirrors: dict[Any, str],
    kubeconfig: Path,
    work: Path,
    echo: Callable[[str], None],
) -> tuple[Path, int]:
    """Fetch hydrophone and run the suite; return the results directory and its exit code."""
    require_pins(manifest)
    registry = mirror.registry_host(mirrors)
    work.mkdir(parents=True, exist_ok=True)
    repo_list = work / "repo-list.yaml"
    repo_list.write_text(
        yaml.safe_dump({k: f"{registry}/{v}" for k, v in TEST_REGISTRIES.items()}),
        encoding="utf-8",
    )
    command = [
        str(_hydrophone(manifest, mirrors, work)),
        "--conformance",
        "--conformance-image",
        mirror.image_ref(manifest.get("conformance"), registry),
        "--busybox-image",
        mirror.image_ref(manifest.get("busybox"), registry),
        "--test-repo-list",
        str(repo_list),
        "--kubeconfig",
        str(kubeconfig),
        "--output-dir",
        str(work / "results"),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            echo(line.rstrip())
    return work / "results", proc.returncode


def run(ctx: Context, kubeconfig: Path) -> Path:
    """Run the suite against the cluster and write the bundle; fail if any test failed."""
    manifest = mirror.load()
    require_pins(manifest)
    deployment = ctx.deployment
    product(deployment)  # refuse before the hours-long run, not after it
    if not kubeconfig.exists():
        raise UsageError(f"no kubeconfig at {kubeconfig}: run `sovdeploy up` first")
    version = manifest.kubernetes_version
    ctx.run.record("conformance_start", kubernetes=version)
    results, code = execute(
        manifest,
        mirror.sources(deployment),
        kubeconfig,
        ctx.state.root / "conformance" / "runs" / ctx.run.id,
        lambda line: ctx.progress.console.print(f"    {line}", markup=False, highlight=False),
    )
    out = ctx.state.root / "conformance" / version
    digest = bundle(results, out, version, deployment)
    failed = failures(out / "junit_01.xml")
    ctx.run.record(
        "conformance_bundle",
        path=str(out.relative_to(ctx.state.root)),
        sha256=digest,
        failed=failed,
        hydrophone_exit=code,
    )
    if failed or code != 0:
        raise ConformanceError(
            f"{failed} conformance test(s) failed (hydrophone exited {code}); "
            f"the results are in {out}"
        )
    return out
