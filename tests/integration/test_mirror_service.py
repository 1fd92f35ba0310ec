"""`sovdeploy mirror serve`: the built tree served over HTTPS with the deployment's CA.

Real services: Debian's docker-registry and the tree's HTTPS file server, started by
sovdeploy on 127.0.0.1 with a certificate the deployment's CA issued; podman pulls an
image from the registry, trusting that CA only. Two small artifacts are built for it
(the pause image from C, the CNI loopback plugin from Go).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovdeploy.cli import main
from sovdeploy.errors import EXIT_FAILED
from sovdeploy.supply import build as supply_build
from sovdeploy.supply import recipes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("go", "gcc", "docker-registry", "podman")),
        reason="needs go, gcc, docker-registry and podman (make deps installs them)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    inv = tmp / "inv"
    shutil.copytree(
        ROOT / "inventories" / "sandbox", inv, ignore=shutil.ignore_patterns(".sovdeploy")
    )
    files_port, registry_port = _free_port(), _free_port()
    settings = inv / "group_vars" / "all" / "sovdeploy.yml"
    text = settings.read_text()
    served = "  serve:\n    address: 10.89.40.1\n"
    assert served in text  # the sandbox's own: this test serves on 127.0.0.1 instead
    settings.write_text(
        text.replace(
            served,
            f"  dir: {tmp}/tree\n  serve:\n    address: 127.0.0.1\n"
            f"    files_port: {files_port}\n    registry_port: {registry_port}\n",
            1,
        )
    )
    env = {"SOVDEPLOY_VAULT_PASSWORD_FILE": str(tmp / "vault.pass")}
    runner = CliRunner(env=env)
    made = runner.invoke(main, ["secrets", "generate", "-i", str(inv)])
    assert made.exit_code == 0, made.output
    built = runner.invoke(
        main,
        ["mirror", "build", "-i", str(inv), "--artifact", "pause", "--artifact", "cni-loopback"],
    )
    assert built.exit_code == 0, built.output
    yield runner, inv, tmp, files_port, registry_port
    runner.invoke(main, ["mirror", "serve", "-i", str(inv), "--stop"])


def _serve(site, *more: str):
    runner, inv, *_ = site
    return runner.invoke(main, ["mirror", "serve", "-i", str(inv), *more], terminal_width=250)


def test_the_tree_is_served_over_https_with_the_deployments_ca(site):
    _, inv, tmp, files_port, _ = site
    result = _serve(site)
    assert result.exit_code == 0, result.output
    assert "ok   pause: served" in result.output
    assert "ok   cni-loopback: served" in result.output
    ca = inv / ".sovdeploy" / "mirror-service" / "ca.crt"
    # The service's CA is the deployment's, the one the pki role trusts on the hosts.
    assert ca.read_bytes() == (inv / ".sovdeploy" / "pki" / "ca.crt").read_bytes()
    context = ssl.create_default_context(cafile=str(ca))
    tree = supply_build.Tree(tmp / "tree")
    loopback = recipes.load().get("cni-loopback")
    url = f"https://127.0.0.1:{files_port}/{tree.relative(loopback)}"
    with urllib.request.urlopen(url, context=context) as response:
        served = response.read()
    assert hashlib.sha256(served).hexdigest() == tree.verify(loopback)[1].removeprefix("sha256:")
    # Its provenance statement is served beside it.
    with urllib.request.urlopen(url + ".intoto.json", context=context) as response:
        assert b"https://in-toto.io/Statement/v1" in response.read()
    # A client that does not trust the deployment's CA is refused.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url, context=ssl.create_default_context())
    # Nothing but files/ and providers/: no build records, no listing, no way out.
    for path in ("/.supply/cni-loopback.json", "/files/", "/files/../.supply/cni-loopback.json"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"https://127.0.0.1:{files_port}{path}", context=context)
        assert caught.value.code == 404, path


def test_podman_pulls_the_image_from_the_registry_trusting_the_ca_only(site, tmp_path):
    _, inv, _, _, registry_port = site
    assert _serve(site).exit_code == 0
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(inv / ".sovdeploy" / "mirror-service" / "ca.crt", certs / "ca.crt")
    ref = f"127.0.0.1:{registry_port}/registry.k8s.io/pause:3.10.2"
    env = dict(os.environ, CONTAINERS_CONF=str(ROOT / ".config/containers/containers.conf"))

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=env, capture_output=True, text=True, check=False
        )

    refused = podman("pull", "-q", ref)
    assert refused.returncode != 0
    assert "certificate signed by unknown authority" in refused.stderr
    pulled = podman("pull", "-q", "--cert-dir", str(certs), ref)
    assert pulled.returncode == 0, pulled.stderr
    try:
        ran = podman("run", "--rm", ref, "-v")
        assert ran.returncode == 0, ran.stderr
        assert "pause.c v3.10.2-v1.37.2" in ran.stdout + ran.stderr
        digest = podman("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()
        tree = supply_build.Tree(Path(site[2]) / "tree")
        assert digest == tree.verify(recipes.load().get("pause"))[1]
    finally:
        podman("rmi", "-f", ref)


def _processes(site) -> dict[str, int | None]:
    runner, inv, *_ = site
    shown = runner.invoke(main, ["status", "-i", str(inv), "--json"])
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)["mirror_service"]["processes"]


def test_a_second_serve_starts_nothing_and_stop_stops_it(site):
    _, _, _, files_port, _ = site
    assert _serve(site).exit_code == 0
    running = _processes(site)
    assert all(running.values()), running
    again = _serve(site)
    assert again.exit_code == 0, again.output
    assert _processes(site) == running  # the same processes: nothing started again
    stopped = _serve(site, "--stop")
    assert "stopped registry, files" in stopped.output
    assert _processes(site) == {"registry": None, "files": None}
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", files_port), timeout=2).close()
    assert "nothing (not running)" in _serve(site, "--stop").output


def test_an_altered_artifact_in_the_tree_is_not_served_as_good(site):
    _, _, tmp, _, _ = site
    tree = supply_build.Tree(tmp / "tree")
    target = tree.target(recipes.load().get("cni-loopback"))
    good = target.read_bytes()
    try:
        target.write_bytes(good + b"\0")
        result = _serve(site)
        assert result.exit_code == EXIT_FAILED, result.output
        assert "FAIL cni-loopback: not served: the tree's copy" in result.output
        assert "its statement vouches for" in result.output
    finally:
        target.write_bytes(good)


def test_an_address_that_is_not_this_machines_is_refused(site):
    _, inv, *_ = site
    settings = inv / "group_vars" / "all" / "sovdeploy.yml"
    text = settings.read_text()
    try:
        # 192.0.2.1 is TEST-NET-1: documentation only, never this machine's.
        settings.write_text(text.replace("address: 127.0.0.1", "address: 192.0.2.1"))
        result = _serve(site)
        assert result.exit_code != 0
        assert "cannot listen on 192.0.2.1" in result.output
        assert "not this machine's" in result.output
    finally:
        settings.write_text(text)


def test_mirror_check_trusts_the_served_mirror_through_the_deployments_ca(site):
    """The manifest's pin of the pause image is what the service serves, over HTTPS."""
    from sovdeploy.kubernetes import artifacts as mir

    _, inv, _, files_port, registry_port = site
    assert _serve(site).exit_code == 0
    pause = mir.load().get("pause")
    mirrors = {
        mir.ArtifactKind.IMAGE: f"https://127.0.0.1:{registry_port}",
        mir.ArtifactKind.FILE: f"https://127.0.0.1:{files_port}/files",
    }
    ca = inv / ".sovdeploy" / "pki" / "ca.crt"
    [result] = mir.check([pause], mirrors, ca_file=ca)
    assert result.ok, result.detail
    [untrusted] = mir.check([pause], mirrors)
    assert not untrusted.ok
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.detail
