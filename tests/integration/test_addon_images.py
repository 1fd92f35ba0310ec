"""The accelerator add-ons' images, built from pinned source, run as the role runs them.

`mirror build` builds Multus (thick: multus-daemon and multus-shim on the busybox base)
and the NVIDIA device plugin (on the glibc base) into a tree of the test's own. podman
runs Multus's init container command (`cp` of the shim onto a host directory) and its
daemon, and the device plugin's loader and version: what can run without an SR-IOV NIC
or a GPU. With no NVML on this machine the plugin must say so, not crash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sovdeploy.supply import recipes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("go", "podman", "gcc")),
        reason="needs go, gcc and podman",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
WANTED = ("multus-image", "nvidia-device-plugin-image")


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CONTAINERS_CONF=str(ROOT / ".config/containers/containers.conf"))
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, check=False, timeout=300
    )


@pytest.fixture(scope="module")
def built(built_tree) -> Path:
    return built_tree("addons", *WANTED)


def _image(tree: Path, name: str) -> str:
    return f"oci:{tree}/images/{recipes.load().get(name).path}"


def test_multus_init_container_copies_the_shim(built: Path, tmp_path: Path) -> None:
    host_bin = tmp_path / "opt-cni-bin"
    host_bin.mkdir()
    done = _podman(
        "run",
        "--rm",
        "-v",
        f"{host_bin}:/host/opt/cni/bin",
        "--entrypoint",
        "cp",
        _image(built, "multus-image"),
        "/usr/src/multus-cni/bin/multus-shim",
        "/host/opt/cni/bin/multus-shim",
    )
    assert done.returncode == 0, done.stderr
    shim = host_bin / "multus-shim"
    shipped = built / "files" / recipes.load().get("multus-shim").path
    assert shim.read_bytes() == shipped.read_bytes()
    assert os.access(shim, os.X_OK)


def test_multus_daemon_starts_and_reads_its_config(built: Path) -> None:
    done = _podman("run", "--rm", _image(built, "multus-image"), "-config", "/nonexistent.json")
    assert done.returncode != 0
    assert "/nonexistent.json" in done.stdout + done.stderr


def test_device_plugin_runs_on_the_glibc_base(built: Path, tmp_path: Path) -> None:
    image = _image(built, "nvidia-device-plugin-image")
    version = _podman("run", "--rm", image, "--version")
    assert version.returncode == 0, version.stderr
    assert "v0.17.2" in version.stdout
    # No GPU and no driver here: the plugin's cgo loader looks for the driver's NVML
    # (dlopen through glibc) and says it is not there.
    sockets = f"{tmp_path}:/var/lib/kubelet/device-plugins"
    run = _podman(
        "run",
        "--rm",
        "-v",
        sockets,
        image,
        "--fail-on-init-error=true",
        "--device-discovery-strategy=nvml",
    )
    assert run.returncode != 0
    assert "nvml init failed: ERROR_LIBRARY_NOT_FOUND" in run.stderr, run.stderr
