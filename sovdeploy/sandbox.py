"""The sandbox's host images: a Debian 13 rootfs made with debootstrap.

Most sandbox hosts are podman containers of an image imported from that rootfs. A
host that needs its own kernel (auditd: the kernel's audit subsystem answers only
the initial PID namespace) runs as a QEMU virtual machine of a disk image made from
a rootfs with a kernel. Each is built once per recipe and cached under a name
derived from the recipe, so a second ``sovdeploy sandbox image`` (and every
``make up``) returns at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from sovdeploy.errors import CommandError, SovdeployError, UsageError
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


#: What a virtual machine adds: a kernel (booted directly by QEMU with its initrd, or by
#: GRUB from the disk), udev to load its drivers, kmod for the seed unit's modprobe, and
#: GRUB for BIOS (its modules and update-grub; no grub-pc, whose postinst wants a disk).
VM_PACKAGES: tuple[str, ...] = (
    *PACKAGES,
    "linux-image-amd64",
    "initramfs-tools",
    "udev",
    "kmod",
    "grub-pc-bin",
    "grub2-common",
)
#: Where virtual machine images are kept, one directory per recipe; ``latest`` links
#: to the newest.
VM_IMAGE_ROOT = Path("/var/lib/sovdeploy/vm-images")
#: The size of a VM's root file system (sparse: only what is written takes space).
VM_DISK_SIZE = "16G"
#: The root file system starts 1 MiB into the disk, after the MBR and GRUB's core image.
_PARTITION_START = 1 << 20
#: The VM's GRUB settings: what /etc/default/grub says on a server.
_GRUB_DEFAULT = """GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0 net.ifnames=0"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
"""
#: The first boot's menu; update-grub on the VM replaces it (grub-mkconfig needs the
#: running system's devices, which the image build has not).
_GRUB_CFG = """serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
insmod part_msdos
insmod ext2
search --no-floppy --label root --set=root
linux /vmlinuz root=LABEL=root ro console=ttyS0 net.ifnames=0
initrd /initrd.img
boot
"""
#: Modules built into GRUB's core image: enough to find and read /boot/grub.
_GRUB_CORE_MODULES = ("biosdisk", "part_msdos", "ext2", "search_label", "normal", "serial")
_SEED_SCRIPT = """#!/bin/sh
# Give this virtual machine the identity its launcher passed in QEMU's fw_cfg:
# host name, address, gateway and resolver, and root's authorized SSH keys.
set -eu
modprobe qemu_fw_cfg
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/sovdeploy
while IFS='=' read -r key value; do
    case "$key" in
        hostname) hostname="$value" ;;
        address) address="$value" ;;
        gateway) gateway="$value" ;;
        dns) dns="$value" ;;
    esac
done < "$fw/seed/raw"
echo "$hostname" > /etc/hostname
hostname "$hostname"
printf '127.0.0.1 localhost\n%s %s\n' "${address%/*}" "$hostname" > /etc/hosts
ip link set eth0 up
ip address replace "$address" dev eth0
ip route replace default via "$gateway"
echo "nameserver $dns" > /etc/resolv.conf
install -d -m 0700 /root/.ssh
install -m 0600 "$fw/authorized_keys/raw" /root/.ssh/authorized_keys
"""
_SEED_UNIT = """[Unit]
Description=Take the host name, address and SSH keys the sandbox passed in fw_cfg
DefaultDependencies=no
After=local-fs.target systemd-udevd.service
Before=network-pre.target ssh.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/sovdeploy-seed

[Install]
WantedBy=sysinit.target
"""


def podman_env() -> dict[str, str]:
    """Environment for podman calls: the project's containers.conf unless one is set."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(containers_conf()))
    return env


def recipe_tag(mirror: str) -> str:
    """Tag that changes whenever what goes into the image changes."""
    recipe = "\n".join([SUITE, mirror, *PACKAGES, *MASKED_UNITS, "v2"])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def vm_recipe_tag(mirror: str) -> str:
    """Name that changes whenever what goes into the virtual machine image changes."""
    recipe = "\n".join(
        [
            SUITE,
            mirror,
            *VM_PACKAGES,
            VM_DISK_SIZE,
            _SEED_SCRIPT,
            _SEED_UNIT,
            _GRUB_DEFAULT,
            _GRUB_CFG,
            *_GRUB_CORE_MODULES,
            str(_PARTITION_START),
        ]
    )
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
    _need("podman", "debootstrap")
    tag = recipe_tag(mirror)
    ref = f"{IMAGE_REPO}:{tag}"
    if image_exists(ref) and not rebuild:
        log(f"sandbox image {ref} is up to date")
        _run(["podman", "tag", ref, f"{IMAGE_REPO}:latest"], what="podman tag", env=podman_env())
        return ref
    with tempfile.TemporaryDirectory(prefix="sovdeploy-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _debootstrap(rootfs, mirror, PACKAGES, log)
        _customise(rootfs, mirror)
        for unit in MASKED_UNITS:
            link = rootfs / "etc/systemd/system" / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
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


def build_vm_image(
    mirror: str, *, rebuild: bool = False, log: Callable[[str], None] = print
) -> Path:
    """Build (or reuse) the virtual machine image and return its directory.

    The directory holds ``disk.qcow2`` (an MBR disk: GRUB for BIOS in its first MiB,
    then one partition with the ext4 root file system, labelled ``root``), and the
    ``vmlinuz`` and ``initrd.img`` QEMU boots directly when a VM does not boot from disk.

    Args:
        mirror: the apt mirror to bootstrap from (the inventory's declared apt source).
        rebuild: build even when an image for this recipe exists.
        log: where progress lines go.

    """
    _need("debootstrap", "mkfs.ext4", "qemu-img")
    out = VM_IMAGE_ROOT / vm_recipe_tag(mirror)
    latest = VM_IMAGE_ROOT / "latest"
    if (out / "disk.qcow2").exists() and not rebuild:
        log(f"virtual machine image {out} is up to date")
    else:
        VM_IMAGE_ROOT.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=VM_IMAGE_ROOT))
        try:
            _build_vm(work, mirror, log)
            shutil.rmtree(out, ignore_errors=True)
            work.chmod(0o755)
            work.rename(out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    tmp_link = VM_IMAGE_ROOT / ".latest"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(out.name)
    tmp_link.replace(latest)
    return out


def _build_vm(work: Path, mirror: str, log: Callable[[str], None]) -> None:
    rootfs = work / "rootfs"
    _debootstrap(rootfs, mirror, VM_PACKAGES, log)
    _customise(rootfs, mirror)
    _customise_vm(rootfs)
    for name in ("vmlinuz", "initrd.img"):
        found = sorted((rootfs / "boot").glob(f"{name}-*"))
        if len(found) != 1:
            raise SovdeployError(f"the VM rootfs should hold one /boot/{name}-*, not {found}")
        shutil.copyfile(found[0], work / name)
    # The image's own grub-mkimage builds the core image, so no GRUB is needed here.
    _run(
        [
            "chroot",
            str(rootfs),
            "grub-mkimage",
            "--format=i386-pc",
            "--output=/boot/grub/i386-pc/core.img",
            "--prefix=(hd0,msdos1)/boot/grub",
            *_GRUB_CORE_MODULES,
        ],
        what="grub-mkimage",
    )
    shutil.copyfile(rootfs / "boot/grub/i386-pc/core.img", work / "core.img")
    shutil.copyfile(rootfs / "usr/lib/grub/i386-pc/boot.img", work / "boot.img")
    log(f"making the virtual machine disk ({VM_DISK_SIZE}, sparse)")
    raw = work / "disk.raw"
    size = _bytes(VM_DISK_SIZE)
    with raw.open("wb") as disk:
        disk.truncate(_PARTITION_START + size)
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-L",
            "root",
            "-E",
            f"offset={_PARTITION_START}",
            "-d",
            str(rootfs),
            str(raw),
            VM_DISK_SIZE,
        ],
        what="mkfs.ext4",
    )
    _install_grub(raw, work / "boot.img", work / "core.img", size)
    (work / "boot.img").unlink()
    (work / "core.img").unlink()
    _run(
        ["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "disk.qcow2")],
        what="qemu-img convert",
    )
    raw.unlink()
    shutil.rmtree(rootfs)


def _bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def mbr_partition_table(start: int, size: int) -> bytes:
    """The 66 bytes from offset 446 of an MBR: one bootable Linux partition, and 0x55AA."""
    entry = (
        b"\x80"  # bootable
        + b"\xfe\xff\xff"  # CHS start: past the CHS range, use LBA
        + b"\x83"  # Linux
        + b"\xfe\xff\xff"  # CHS end
        + (start // 512).to_bytes(4, "little")
        + (size // 512).to_bytes(4, "little")
    )
    return entry + bytes(48) + b"\x55\xaa"


def _install_grub(raw: Path, boot_img: Path, core_img: Path, size: int) -> None:
    """Write GRUB's boot sector and core image before the partition, as grub-install would.

    GRUB's boot.img loads the sector after it (its default), which holds core.img's first
    sector; grub-mkimage sized that sector's block list to the whole core image.
    """
    boot = boot_img.read_bytes()
    core = core_img.read_bytes()
    if len(boot) != 512 or len(core) > _PARTITION_START - 512:
        raise SovdeployError(f"unexpected GRUB images: boot {len(boot)} B, core {len(core)} B")
    with raw.open("r+b") as disk:
        # The boot code only: the MBR's disk signature and partition table follow it.
        disk.write(boot[:440])
        disk.seek(446)
        disk.write(mbr_partition_table(_PARTITION_START, size))
        disk.seek(512)
        disk.write(core)


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise UsageError(f"`{tool}` is not installed: run `make deps`")


def _debootstrap(
    rootfs: Path, mirror: str, packages: Sequence[str], log: Callable[[str], None]
) -> None:
    log(f"debootstrap {SUITE} from {mirror} (a few minutes)")
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(packages)}",
            SUITE,
            str(rootfs),
            mirror,
        ],
        what="debootstrap",
    )


def _customise_vm(rootfs: Path) -> None:
    """Make the rootfs boot as a QEMU guest that takes its identity from fw_cfg."""
    (rootfs / "etc/fstab").write_text("LABEL=root / ext4 defaults,discard 0 1\n")
    (rootfs / "etc/default/grub").write_text(_GRUB_DEFAULT)
    grub = rootfs / "boot/grub"
    shutil.copytree(rootfs / "usr/lib/grub/i386-pc", grub / "i386-pc", dirs_exist_ok=True)
    (grub / "grub.cfg").write_text(_GRUB_CFG)
    seed = rootfs / "usr/local/sbin/sovdeploy-seed"
    seed.write_text(_SEED_SCRIPT)
    seed.chmod(0o755)
    _enable(rootfs, "sovdeploy-seed.service", _SEED_UNIT, "sysinit.target")
    # No console login on a sandbox VM; its serial console is a log file.
    getty = rootfs / "etc/systemd/system/serial-getty@ttyS0.service"
    getty.unlink(missing_ok=True)
    getty.symlink_to("/dev/null")
    (rootfs / "etc/hostname").write_text("localhost\n")


def _enable(rootfs: Path, name: str, text: str, target: str) -> None:
    unit = rootfs / "etc/systemd/system" / name
    unit.write_text(text)
    wants = rootfs / f"etc/systemd/system/{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / name).unlink(missing_ok=True)
    (wants / name).symlink_to(f"/etc/systemd/system/{name}")


def _customise(rootfs: Path, mirror: str) -> None:
    """Make the rootfs boot cleanly under systemd and accept root over SSH by key."""
    sshd = rootfs / "etc/ssh/sshd_config.d/sovdeploy.conf"
    sshd.write_text("PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    # Host keys are made at first boot, so each container gets its own.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _enable(
        rootfs,
        "ssh-keygen.service",
        "[Unit]\nDescription=Generate SSH host keys\nBefore=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n"
        "[Install]\nWantedBy=multi-user.target\n",
        "multi-user.target",
    )
    (rootfs / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
    (rootfs / "etc/machine-id").write_text("")
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    # Ansible's apt takes the lists directory's age for the last update when apt has
    # no update stamp: dated to the epoch, and the caches of the deleted lists gone,
    # the first apt task with cache_valid_time on a new host updates.
    for cache in (rootfs / "var/cache/apt").glob("*.bin"):
        cache.unlink()
    os.utime(rootfs / "var/lib/apt/lists", (0, 0))
