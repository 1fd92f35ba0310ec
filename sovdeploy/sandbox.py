"""The sandbox base image: a Debian 13 rootfs made with debootstrap, imported into podman.

The image is built once per recipe and cached under a tag derived from the recipe,
so a second ``sovdeploy sandbox image`` (and every ``make up``) returns at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from sovdeploy.errors import CommandError, UsageError
from sovdeploy.paths import containers_conf

SUITE = "trixie"
IMAGE_REPO = "localhost/sovdeploy/debian13-sandbox"
# What a host needs before Ansible can reach and manage it: systemd as PID 1,
# sshd for Ansible, python3 (+ apt bindings) for its modules.
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "ca-certificates",
    "gnupg",
)
# Units that make no sense in a container and would only slow boot or fail.
MASKED_UNITS: tuple[str, ...] = (
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-remount-fs.service",
    "systemd-modules-load.service",
    "getty@tty1.service",
    "console-getty.service",
)


def podman_env() -> dict[str, str]:
    """Environment for podman calls: the project's containers.conf unless one is set."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(containers_conf()))
    return env


def recipe_tag(mirror: str) -> str:
    """Tag that changes whenever what goes into the image changes."""
    recipe = "\n".join([SUITE, mirror, *PACKAGES, *MASKED_UNITS, "v2"])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _run(cmd: Sequence[str], *, what: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise CommandError(cmd, proc.returncode, proc.stdout + proc.stderr, what=what)
    return proc.stdout


def image_exists(ref: str) -> bool:
    proc = subprocess.run(
        ["podman", "image", "exists", ref], env=podman_env(), capture_output=True, check=False
    )
    return proc.returncode == 0


def build_image(mirror: str, *, rebuild: bool = False, log: Callable[[str], None] = print) -> str:
    """Build (or reuse) the sandbox image and return its reference.

    Args:
        mirror: the apt mirror to bootstrap from (the inventory's declared apt source).
        rebuild: build even when an image for this recipe exists.
        log: where progress lines go.

    """
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            raise UsageError(f"`{tool}` is not installed: run `make deps` (apt-get install {tool})")
    tag = recipe_tag(mirror)
    ref = f"{IMAGE_REPO}:{tag}"
    if image_exists(ref) and not rebuild:
        log(f"sandbox image {ref} is up to date")
        _run(["podman", "tag", ref, f"{IMAGE_REPO}:latest"], what="podman tag", env=podman_env())
        return ref
    with tempfile.TemporaryDirectory(prefix="sovdeploy-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap {SUITE} from {mirror} (a few minutes)")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            what="debootstrap",
        )
        _customise(rootfs, mirror)
        log(f"importing the rootfs into podman as {ref}")
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        )
        cmd = [
            "podman",
            "import",
            "--change",
            'CMD ["/sbin/init"]',
            "--change",
            "STOPSIGNAL SIGRTMIN+3",
            "--change",
            "ENV container=podman",
            "-",
            ref,
        ]
        proc = subprocess.run(
            cmd, stdin=tar.stdout, capture_output=True, text=True, env=podman_env(), check=False
        )
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait()
        if proc.returncode != 0 or tar.returncode != 0:
            raise CommandError(
                cmd,
                proc.returncode or tar.returncode,
                proc.stdout + proc.stderr,
                what="podman import",
            )
    _run(["podman", "tag", ref, f"{IMAGE_REPO}:latest"], what="podman tag", env=podman_env())
    return ref


def _customise(rootfs: Path, mirror: str) -> None:
    """Make the rootfs boot cleanly as a systemd container and accept root over SSH by key."""
    for unit in MASKED_UNITS:
        link = rootfs / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    sshd = rootfs / "etc/ssh/sshd_config.d/sovdeploy.conf"
    sshd.write_text("PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    # Host keys are made at first boot, so each container gets its own.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    keygen = rootfs / "etc/systemd/system/ssh-keygen.service"
    keygen.write_text(
        "[Unit]\nDescription=Generate SSH host keys\nBefore=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "ssh-keygen.service").unlink(missing_ok=True)
    (wants / "ssh-keygen.service").symlink_to("/etc/systemd/system/ssh-keygen.service")
    (rootfs / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
    (rootfs / "etc/machine-id").write_text("")
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
