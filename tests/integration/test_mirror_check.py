"""`sovdeploy mirror check` against a real apt mirror and a real registry on this machine.

The mirror is built here from the pinned Debian packages themselves (fetched once from
Debian's archive, their upstream origin, and cached), indexed by dpkg-scanpackages and
served over HTTP. The check must pass on it, and refuse it once an artifact is
missing or is not the pinned one. The registry is Debian's distribution registry, holding
an image podman built and pushed here.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sovdeploy import cli, secrets
from sovdeploy import inventory as inv
from sovdeploy.kubernetes import artifacts as mir

ROOT = Path(__file__).resolve().parents[2]
DEBS = ("iptables", "conntrack")
CACHE = Path("/var/cache/sovdeploy/mirror-test")


def _fetch(artifact: mir.Artifact, cache: Path) -> Path:
    dest = cache / Path(artifact.path).name
    if not dest.exists():
        cache.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(".part")
        try:
            with urllib.request.urlopen(artifact.origin, timeout=120) as r, part.open("wb") as f:
                shutil.copyfileobj(r, f)
        except urllib.error.HTTPError as exc:
            pytest.fail(
                f"Debian's archive no longer serves the pinned {artifact.name} "
                f"{artifact.version} ({exc}): update sovdeploy/data/kubernetes.yml"
            )
        except urllib.error.URLError as exc:
            pytest.skip(f"Debian's archive cannot be reached to build the test mirror: {exc}")
        part.rename(dest)
    return dest


def _index(root: Path, suite: str) -> None:
    """Packages and Packages.gz for what lies in pool/, as a real mirror has them."""
    if shutil.which("dpkg-scanpackages") is None:
        pytest.skip("dpkg-scanpackages (dpkg-dev) is not installed")
    out = root / "dists" / suite / "main" / "binary-amd64"
    out.mkdir(parents=True, exist_ok=True)
    text = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "pool"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (out / "Packages").write_text(text)
    subprocess.run(["gzip", "-kf", str(out / "Packages")], check=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("mirror")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def mirror(served: tuple[Path, str]) -> tuple[Path, str]:
    """A fresh apt mirror holding the pinned iptables and conntrack, and nothing else."""
    root, url = served
    for child in root.iterdir():
        shutil.rmtree(child)
    manifest = mir.load()
    cache = CACHE if CACHE.parent.is_dir() else root.parent / "debs"
    for name in DEBS:
        artifact = manifest.get(name)
        dest = root / "debian" / artifact.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_fetch(artifact, cache), dest)
    _index(root / "debian", manifest.get("iptables").suite or "")
    (root / "files").mkdir()
    return root, url


@pytest.fixture
def inventory(tmp_path: Path, mirror: tuple[Path, str]) -> Path:
    """example-eu, its artifact sources pointed at the local mirror."""
    _, url = mirror
    dest = tmp_path / "example-eu"
    shutil.copytree(ROOT / "inventories" / "example-eu", dest)
    settings = dest / "group_vars" / "all" / "sovdeploy.yml"
    doc = yaml.safe_load(settings.read_text())
    for source in doc["sovdeploy_artifact_sources"].values():
        if source["kind"] == "apt":
            source["url"] = f"{url}/debian"
        elif source["kind"] == "files":
            source["url"] = f"{url}/files"
        elif source["kind"] == "container_registry":
            source["url"] = f"{url}/registry"
    settings.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def _check(inventory: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["mirror", "check", "-i", str(inventory), *args])
    return result.exit_code, result.output


def _only(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--artifact", name)]


def test_a_mirror_holding_the_pinned_debs_passes(inventory: Path) -> None:
    code, output = _check(inventory, *_only(*DEBS))
    assert code == 0, output
    assert output.count("sha256 verified") == 2
    assert "mirrors hold all 2 artifact(s)" in output


def test_a_deb_with_other_content_is_refused(inventory: Path, mirror: tuple[Path, str]) -> None:
    # The index still lists the pinned digest, as a mirror whose file was swapped would.
    root, _ = mirror
    manifest = mir.load()
    pinned = root / "debian" / manifest.get("iptables").path
    shutil.copyfile(root / "debian" / manifest.get("conntrack").path, pinned)
    code, output = _check(inventory, *_only(*DEBS))
    assert code == 1
    assert "FAIL deb   iptables" in output
    assert "wrong digest: the mirror serves sha256:" in output
    assert "ok   deb   conntrack" in output


def test_an_index_with_another_digest_is_refused(inventory: Path, mirror: tuple[Path, str]) -> None:
    # Another build under the pinned name and version: apt would install it unchecked.
    root, _ = mirror
    iptables = mir.load().get("iptables")
    packages = root / "debian" / "dists" / (iptables.suite or "") / "main" / "binary-amd64"
    stanzas = (packages / "Packages").read_text().split("\n\n")
    doctored = [s.replace(f"SHA256: {iptables.sha256}", "SHA256: " + "0" * 64) for s in stanzas]
    assert doctored != stanzas
    (packages / "Packages").write_text("\n\n".join(doctored))
    (packages / "Packages.gz").unlink()
    code, output = _check(inventory, "--artifact", "iptables")
    assert code == 1
    assert "wrong digest: the trixie/main Packages index has sha256:" + "0" * 64 in output


def test_a_missing_deb_is_refused(inventory: Path, mirror: tuple[Path, str]) -> None:
    root, _ = mirror
    conntrack = mir.load().get("conntrack")
    (root / "debian" / conntrack.path).unlink()
    _index(root / "debian", conntrack.suite or "")
    code, output = _check(inventory, *_only(*DEBS))
    assert code == 1
    missing = f"missing: conntrack {conntrack.version} is not in the trixie/main Packages index"
    assert missing in output
    assert "ok   deb   iptables" in output
    assert "the mirrors fail 1 of 2 artifact(s): conntrack" in output


def test_the_whole_manifest_names_every_artifact_the_mirror_lacks(inventory: Path) -> None:
    code, output = _check(inventory)
    assert code == 1
    needed = mir.needed(mir.load(), inv.load(inventory).deployment)
    failed = [a.name for a in needed if a.name not in DEBS]
    assert f"the mirrors fail {len(failed)} of {len(needed)} artifact(s)" in output
    assert "FAIL file  kubeadm v1.37.2: missing: HTTP 404" in output
    assert "FAIL image kube-apiserver v1.37.2: missing: HTTP 404" in output


@pytest.fixture
def with_vault(inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOVDEPLOY_VAULT_PASSWORD_FILE", str(tmp_path / "vault.pass"))
    result = CliRunner().invoke(cli.main, ["secrets", "generate", "-i", str(inventory)])
    assert result.exit_code == 0, result.output
    # The BMC credentials an operator of bare metal adds to the vault by hand.
    password = secrets.read_password(tmp_path / "vault.pass")
    vault = secrets.vault_file(inventory)
    values = secrets.decrypt(vault, password)
    values["bmc_credentials"] = {
        p.stem: {"username": "admin", "password": "bmc-test-only"}
        for p in (inventory / "host_vars").glob("*.yml")
    }
    secrets.encrypt_to(vault, values, password)
    return inventory


def test_up_stops_in_preflight_before_any_host_is_touched(with_vault: Path) -> None:
    result = CliRunner().invoke(cli.main, ["up", "-i", str(with_vault)], terminal_width=300)
    assert result.exit_code == 1, result.output
    assert "Kubernetes artifact(s): " in result.output
    assert "nothing was touched" in result.output
    status = CliRunner().invoke(cli.main, ["status", "-i", str(with_vault), "--json"])
    phases = {p["phase"]: p["status"] for p in json.loads(status.output)["phases"]}
    assert phases["preflight"] == "failed"
    assert {s for name, s in phases.items() if name != "preflight"} == {"pending"}


def test_plan_shows_the_kubernetes_phase_with_its_artifacts(with_vault: Path) -> None:
    result = CliRunner().invoke(cli.main, ["plan", "-i", str(with_vault)], terminal_width=300)
    assert result.exit_code == 0, result.output
    section = result.output.split("▶ kubernetes:")[1].split("▶ logging:")[0]
    deployment = inv.load(with_vault).deployment
    needed = mir.needed(mir.load(), deployment)
    for artifact in needed:
        assert f"{artifact.name} {artifact.version} ({artifact.needed_on}) {artifact.digest}" in (
            section
        )
    assert f"3 control and 2 worker host(s): {len(needed)} pinned artifact(s)" in section


# -- the registry side: Debian's distribution registry, holding an image podman pushed ----


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A running registry (docker-registry, filesystem storage) on a local port."""
    for tool in ("docker-registry", "podman"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed (`make deps` installs it)")
    root = tmp_path_factory.mktemp("registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {
        "version": 0.1,
        "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    (root / "config.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(root / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v2/", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the registry did not answer"
                time.sleep(0.2)
        yield root, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pushed(registry: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> mir.Artifact:
    """A small real image (one layer, one file) that podman pushed to the registry."""
    _, url = registry
    work = tmp_path_factory.mktemp("image")
    (work / "hello.txt").write_text("sovdeploy mirror test\n")
    subprocess.run(
        ["tar", "-C", str(work), "-cf", str(work / "layer.tar"), "hello.txt"], check=True
    )
    local = "localhost/sovdeploy-mirror-test:1"
    subprocess.run(["podman", "import", "-q", str(work / "layer.tar"), local], check=True)
    try:
        subprocess.run(
            [
                "podman", "push", "-q", "--tls-verify=false",
                "--digestfile", str(work / "digest"),
                local, f"docker://{url.removeprefix('http://')}/example.org/mirror-test:1",
            ],
            check=True,
        )  # fmt: skip
    finally:
        subprocess.run(["podman", "rmi", "-f", local], check=False, capture_output=True)
    digest = (work / "digest").read_text().strip().removeprefix("sha256:")
    return mir.Artifact.model_validate(
        {
            "name": "mirror-test",
            "kind": "image",
            "for": "k8s",
            "version": "1",
            "path": "example.org/mirror-test",
            "sha256": digest,
            "origin": "example.org/mirror-test:1",
        }
    )


def test_an_image_the_registry_holds_passes(
    registry: tuple[Path, str], pushed: mir.Artifact
) -> None:
    [result] = mir.check([pushed], {mir.ArtifactKind.IMAGE: registry[1]})
    assert result.ok, result.detail
    assert result.detail.startswith("sha256 verified")


def test_an_image_the_registry_lacks_is_refused(
    registry: tuple[Path, str], pushed: mir.Artifact
) -> None:
    absent = pushed.model_copy(update={"sha256": "0" * 64})
    [result] = mir.check([absent], {mir.ArtifactKind.IMAGE: registry[1]})
    assert not result.ok
    assert result.detail.startswith("missing: HTTP 404")


def test_a_registry_serving_altered_bytes_is_refused(
    registry: tuple[Path, str], pushed: mir.Artifact
) -> None:
    # Someone with the registry's storage changed the manifest under its digest.
    root, url = registry
    blobs = root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    stored = blobs / pushed.sha256[:2] / pushed.sha256 / "data"
    original = stored.read_bytes()
    stored.write_bytes(original + b" ")
    try:
        [result] = mir.check([pushed], {mir.ArtifactKind.IMAGE: url})
    finally:
        stored.write_bytes(original)
    assert not result.ok
    assert result.detail.startswith("wrong digest: the mirror serves sha256:")


def test_an_image_sovdeploy_writes_is_served_checked_and_pulled_by_podman(
    registry: tuple[Path, str], tmp_path: Path
) -> None:
    """oci.push into the registry; mirror check hashes the index; podman pulls it."""
    from sovdeploy.supply import oci

    script = b"#!/bin/sh\necho sovdeploy-oci-ok\n"
    img = oci.image(
        [oci.Entry("hello", script, 0o755)],
        epoch=1787133844,
        entrypoint=["/hello"],
    )
    _, url = registry
    digest = oci.push(url, "example.org/oci-test", "1", img)
    assert digest == img.index.digest
    artifact = mir.Artifact.model_validate(
        {
            "name": "oci-test",
            "kind": "image",
            "for": "k8s",
            "version": "1",
            "path": "example.org/oci-test",
            "sha256": digest.removeprefix("sha256:"),
            "origin": "example.org/oci-test:1",
        }
    )
    [result] = mir.check([artifact], {mir.ArtifactKind.IMAGE: url})
    assert result.ok, result.detail
    # A second push sends no blob again and gives the same digest.
    assert oci.push(url, "example.org/oci-test", "1", img) == digest
    # podman (containers/image, as CRI-O and kubelet's runtimes read images) accepts it:
    # it pulls by digest and reads the entrypoint from the config.
    ref = f"{url.removeprefix('http://')}/example.org/oci-test@{digest}"
    env = dict(os.environ, CONTAINERS_CONF=str(ROOT / ".config/containers/containers.conf"))
    pulled = subprocess.run(
        ["podman", "pull", "-q", "--tls-verify=false", ref],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    try:
        inspected = subprocess.run(
            ["podman", "image", "inspect", "--format", "{{json .Config.Entrypoint}}", ref],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(inspected.stdout) == ["/hello"]
    finally:
        subprocess.run(["podman", "rmi", "-f", ref], env=env, check=False, capture_output=True)
