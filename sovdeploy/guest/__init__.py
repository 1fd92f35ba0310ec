"""A tiny bootable guest image, built locally for ``sovdeploy verify`` (nothing downloaded).

Debian's kernel and busybox, from the deployment's declared apt mirror, built in a
container of the sandbox base image (which apt points at that mirror): an
initramfs that writes ``sovdeploy-guest: booted`` to the serial console, behind
syslinux on a FAT file system. About 20 MB, raw, boots under QEMU TCG.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from sovdeploy.errors import CommandError
from sovdeploy.sandbox import podman_env

#: What the guest prints on its serial console once its init runs.
BOOT_MARKER = "sovdeploy-guest: booted"
_SCRIPT = Path(__file__).with_name("build.sh")


def build(cache_dir: Path, base_image: str, apt_cache: Path | None = None) -> Path:
    """Build (or reuse) the guest image; return the path of the raw disk."""
    digest = hashlib.sha256(_SCRIPT.read_bytes() + base_image.encode()).hexdigest()[:12]
    out = cache_dir / f"guest-{digest}"
    disk = out / "guest.raw"
    if disk.exists():
        return disk
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["podman", "run", "--rm", "-v", f"{_SCRIPT.parent}:/src:ro", "-v", f"{out}:/out"]
    if apt_cache is not None:
        apt_cache.mkdir(parents=True, exist_ok=True)
        (apt_cache / "partial").mkdir(exist_ok=True)
        cmd += ["-v", f"{apt_cache}:/var/cache/apt/archives"]
    cmd += [base_image, "sh", "/src/build.sh"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=podman_env(), check=False)
    if proc.returncode != 0 or not disk.exists():
        raise CommandError(cmd, proc.returncode, proc.stdout + proc.stderr)
    return disk
