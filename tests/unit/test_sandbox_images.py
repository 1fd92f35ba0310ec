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
        "etc/default",
        "usr/lib/grub/i386-pc",
    ):
        (root / d).mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("debootstrap's key")
    (root / "var/cache/apt/pkgcache.bin").write_bytes(b"stale")
    (root / "usr/lib/grub/i386-pc/normal.mod").write_bytes(b"module")
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
    # GRUB finds its modules and a first menu that boots the root file system by label;
    # update-grub on the VM keeps the serial console and adds any drop-in's arguments.
    assert (rootfs / "boot/grub/i386-pc/normal.mod").read_bytes() == b"module"
    menu = (rootfs / "boot/grub/grub.cfg").read_text()
    assert "search --no-floppy --label root --set=root" in menu
    assert "linux /vmlinuz root=LABEL=root ro console=ttyS0" in menu
    default = (rootfs / "etc/default/grub").read_text()
    assert 'GRUB_CMDLINE_LINUX="console=ttyS0 net.ifnames=0"' in default
    subprocess.run(["sh", "-n", str(rootfs / "etc/default/grub")], check=True)
    sandbox._customise_vm(rootfs)  # a second pass is harmless


def test_the_vm_disk_has_grub_before_one_bootable_linux_partition(tmp_path: Path) -> None:
    boot, core, raw = tmp_path / "boot.img", tmp_path / "core.img", tmp_path / "disk.raw"
    boot.write_bytes(bytes(range(256)) * 2)
    core.write_bytes(b"\xc0" * 120_000)
    size = 64 << 20
    with raw.open("wb") as disk:
        disk.truncate((1 << 20) + size)
    sandbox._install_grub(raw, boot, core, size)
    data = raw.read_bytes()[: 1 << 20]
    assert data[:440] == boot.read_bytes()[:440]  # GRUB's boot code
    assert data[440:446] == bytes(6)  # the disk signature is left alone
    entry = data[446:462]
    assert entry[0] == 0x80 and entry[4] == 0x83  # bootable, Linux
    assert int.from_bytes(entry[8:12], "little") == 2048  # starts at 1 MiB
    assert int.from_bytes(entry[12:16], "little") == size // 512
    assert data[462:510] == bytes(48)  # no other partition
    assert data[510:512] == b"\x55\xaa"
    assert data[512 : 512 + 120_000] == core.read_bytes()  # core.img right after the MBR
    too_big = tmp_path / "big.img"
    too_big.write_bytes(bytes(1 << 20))
    with pytest.raises(sandbox.SovdeployError, match="unexpected GRUB images"):
        sandbox._install_grub(raw, boot, too_big, size)


def test_the_vm_image_name_follows_its_recipe() -> None:
    assert sandbox.vm_recipe_tag(MIRROR) == sandbox.vm_recipe_tag(MIRROR)
    assert sandbox.vm_recipe_tag(MIRROR) != sandbox.vm_recipe_tag("http://mirror.example/debian")
    assert sandbox.vm_recipe_tag(MIRROR) != sandbox.recipe_tag(MIRROR)
