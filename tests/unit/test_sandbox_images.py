"""The sandbox images' rootfs customisation, on a skeleton rootfs (debootstrap itself
runs in `make image`, which `make test` runs before Molecule)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sovdeploy import sandbox

MIRROR = "http://deb.debian.org/debian"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for d in (
        "etc/systemd/system",
        "etc/ssh/sshd_config.d",
        "etc/apt",
        "var/lib/apt/lists",
        "var/cache/apt/archives",
        "usr/local/sbin",
    ):
        (root / d).mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("debootstrap's key")
    (root / "var/cache/apt/pkgcache.bin").write_bytes(b"stale")
    return root


def test_a_host_rootfs_takes_keys_only_and_updates_apt_on_first_use(rootfs: Path) -> None:
    sandbox._customise(rootfs, MIRROR)
    sshd = rootfs / "etc/ssh/sshd_config.d/sovdeploy.conf"
    assert "PasswordAuthentication no" in sshd.read_text()
    assert not (rootfs / "etc/ssh/ssh_host_ed25519_key").exists()
    wants = rootfs / "etc/systemd/system/multi-user.target.wants/ssh-keygen.service"
    assert wants.readlink() == Path("/etc/systemd/system/ssh-keygen.service")
    assert (rootfs / "etc/apt/sources.list").read_text() == f"deb {MIRROR} trixie main\n"
    assert not (rootfs / "var/cache/apt/pkgcache.bin").exists()
    assert (rootfs / "var/lib/apt/lists").stat().st_mtime == 0
    sandbox._customise(rootfs, MIRROR)  # a second pass is harmless


def test_a_vm_rootfs_boots_from_its_label_and_takes_its_identity_from_fw_cfg(
    rootfs: Path,
) -> None:
    sandbox._customise(rootfs, MIRROR)
    sandbox._customise_vm(rootfs)
    assert (rootfs / "etc/fstab").read_text().startswith("LABEL=root / ext4 ")
    seed = rootfs / "usr/local/sbin/sovdeploy-seed"
    assert seed.stat().st_mode & 0o111
    subprocess.run(["sh", "-n", str(seed)], check=True)  # well-formed shell
    text = seed.read_text()
    assert "/sys/firmware/qemu_fw_cfg/by_name/opt/sovdeploy" in text
    unit = rootfs / "etc/systemd/system/sysinit.target.wants/sovdeploy-seed.service"
    assert unit.readlink() == Path("/etc/systemd/system/sovdeploy-seed.service")
    assert (
        "Before=network-pre.target ssh.service"
        in (rootfs / "etc/systemd/system/sovdeploy-seed.service").read_text()
    )
    getty = rootfs / "etc/systemd/system/serial-getty@ttyS0.service"
    assert getty.readlink() == Path("/dev/null")
    sandbox._customise_vm(rootfs)  # a second pass is harmless


def test_the_vm_image_name_follows_its_recipe() -> None:
    assert sandbox.vm_recipe_tag(MIRROR) == sandbox.vm_recipe_tag(MIRROR)
    assert sandbox.vm_recipe_tag(MIRROR) != sandbox.vm_recipe_tag("http://mirror.example/debian")
    assert sandbox.vm_recipe_tag(MIRROR) != sandbox.recipe_tag(MIRROR)
