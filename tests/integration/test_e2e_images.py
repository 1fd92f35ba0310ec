"""The images the conformance tests run, built from pinned source, doing what the tests ask.

`mirror build` builds the conformance group's images (agnhost once, taken into agnhost,
kitten and nautilus; busybox, nginx and the DNS probe from Debian packages; nonewprivs
and the sample API server from Kubernetes' source) into a tree of the test's own;
podman then runs them the way the e2e tests do: agnhost's netexec answered over the
network by agnhost's curl and nc and by busybox's wget, the kitten web server's data,
nginx's page, the DNS probe's dig and getent, nnp's effective ids with and without
no_new_privs. Uses the machine's Go build cache (a cold one adds minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sovdeploy.supply import recipes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("go", "podman")), reason="needs go and podman"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
NETWORK = "sovdeploy-e2e-images"


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CONTAINERS_CONF=str(ROOT / ".config/containers/containers.conf"))
    done = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, check=False, timeout=300
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.stderr}")
    return done


def _run(image: str, *args: str, options: tuple[str, ...] = ()) -> str:
    """Run ``image`` once (on the test's network) and return what it printed."""
    done = _podman("run", "--rm", "--network", NETWORK, *options, image, *args, check=False)
    assert done.returncode == 0, f"{image} {args}: exit {done.returncode}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def images(built_tree) -> dict[str, str]:
    """Every conformance image of supply.yml, by recipe name, as podman's oci: reference."""
    supply = recipes.load()
    wanted = [
        r.name
        for r in supply.in_groups((recipes.Group.CONFORMANCE,))
        if r.kind is recipes.RecipeKind.IMAGE
    ]
    tree = built_tree("e2e-images", *wanted)
    _podman("network", "rm", "-f", NETWORK, check=False)
    _podman("network", "create", NETWORK)
    yield {name: f"oci:{tree}/images/{supply.get(name).path}" for name in wanted}
    _podman("network", "rm", "-f", NETWORK, check=False)


@pytest.fixture(scope="module")
def netexec(images: dict[str, str]):
    """agnhost netexec, as the network tests start it, named on the test's network."""
    name = "e2e-netexec"
    _podman("rm", "-f", name, check=False)
    _podman(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        NETWORK,
        "--hostname",
        "netexec-host",
        images["agnhost-image"],
        "netexec",
        "--http-port=8080",
        "--udp-port=8081",
    )
    deadline = time.monotonic() + 60
    while "netexec-host" not in _run(
        images["agnhost-image"],
        "-c",
        "curl -s http://e2e-netexec:8080/hostname || true",
        options=("--entrypoint", "/bin/sh"),
    ):
        assert time.monotonic() < deadline, _podman("logs", name, check=False).stderr
        time.sleep(1)
    yield name
    _podman("rm", "-f", name, check=False)


def test_agnhost_reports_the_release_it_is(images: dict[str, str]) -> None:
    out = _run(images["agnhost-image"], "--version")
    assert "2.66.1" in out


def test_agnhost_tools_reach_netexec(images: dict[str, str], netexec: str) -> None:
    """The commands the network tests run inside agnhost: curl, nc, dig, getent."""
    script = (
        f"curl -s http://{netexec}:8080/hostname; echo; "
        f"nc -z -w 5 {netexec} 8080 && echo nc-ok; "
        f"echo hostname | nc -u -w 2 {netexec} 8081; echo; "
        f"getent hosts {netexec} | grep -q . && echo getent-ok; "
        "id -Gn user-defined-in-image"
    )
    out = _run(images["agnhost-image"], "-c", script, options=("--entrypoint", "/bin/sh"))
    lines = out.split()
    assert lines.count("netexec-host") == 2, out  # over TCP (curl) and UDP (nc)
    assert "nc-ok" in lines and "getent-ok" in lines, out
    assert "group-defined-in-image" in lines, out


def test_busybox_wget_reaches_netexec(images: dict[str, str], netexec: str) -> None:
    out = _run(images["busybox-image"], "sh", "-c", f"wget -q -O - http://{netexec}:8080/hostname")
    assert out.strip() == "netexec-host"


def test_kitten_and_nautilus_serve_their_data(images: dict[str, str]) -> None:
    for recipe, picture in (("kitten-image", "kitten.jpg"), ("nautilus-image", "nautilus.jpg")):
        name = f"e2e-{picture.split('.')[0]}"
        _podman("rm", "-f", name, check=False)
        _podman("run", "-d", "--name", name, "--network", NETWORK, images[recipe])
        try:
            out = _run(
                images["agnhost-image"],
                "-c",
                f"for i in $(seq 30); do curl -sf http://{name}:80/data.json && break; "
                "sleep 1; done",
                options=("--entrypoint", "/bin/sh"),
            )
            assert f'"image": "{picture}"' in out, out
        finally:
            _podman("rm", "-f", name, check=False)


def test_nginx_serves_its_page(images: dict[str, str]) -> None:
    name = "e2e-nginx"
    _podman("rm", "-f", name, check=False)
    _podman("run", "-d", "--name", name, "--network", NETWORK, images["nginx-image"])
    try:
        out = _run(
            images["busybox-image"],
            "sh",
            "-c",
            f"for i in $(seq 30); do wget -q -O - http://{name}/ && break; sleep 1; done",
        )
        assert "Welcome to nginx!" in out
        logs = _podman("logs", name).stdout
        assert '"GET / HTTP/1.1" 200' in logs  # the access log goes to the container's output
    finally:
        _podman("rm", "-f", name, check=False)


def test_dns_probe_resolves_through_glibc(images: dict[str, str], netexec: str) -> None:
    out = _run(
        images["glibc-dns-testing-image"],
        "bash",
        "-c",
        f"getent hosts {netexec}; dig -v 2>&1; ldd $(command -v dig) | grep -c libc.so.6",
    )
    assert netexec in out and "DiG 9." in out, out
    assert out.strip().splitlines()[-1] == "1"


def test_nnp_gains_root_only_without_no_new_privs(images: dict[str, str]) -> None:
    """What the privilege-escalation conformance test reads from nnp's output."""
    image = images["nonewprivs-image"]
    assert "Effective uid: 0" in _run(image, options=("--user", "1000"))
    held = _run(image, options=("--user", "1000", "--security-opt", "no-new-privileges"))
    assert "Effective uid: 1000" in held


def test_sample_apiserver_runs(images: dict[str, str]) -> None:
    assert "Launch a wardle API server" in _run(images["sample-apiserver-image"], "--help")
