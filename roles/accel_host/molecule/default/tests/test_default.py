"""The VM booted the planned command line, vfio-pci holds the device, the VFs exist."""

from pathlib import Path

import pytest
import yaml

PLAN = yaml.safe_load((Path(__file__).parents[1] / "converge.yml").read_text())[0]["roles"][0][
    "vars"
]["accel_host_plan"]


def test_the_running_kernel_has_every_planned_argument(host):
    running = host.file("/proc/cmdline").content_string.split()
    assert set(PLAN["kernel_args"]) <= set(running)


def test_the_hugepages_are_reserved_at_boot(host):
    meminfo = dict(
        line.split(":", 1) for line in host.file("/proc/meminfo").content_string.splitlines()
    )
    assert int(meminfo["HugePages_Total"]) == 64
    assert meminfo["Hugepagesize"].strip() == "2048 kB"


def test_the_iommu_is_on_and_vfio_pci_holds_the_device(host):
    assert host.file("/sys/kernel/iommu_groups").listdir(), "no IOMMU groups"
    devices = host.run(
        "grep -l 0x0005 /sys/bus/pci/devices/*/device | xargs -n1 dirname"
    ).stdout.split()
    test_devices = [
        d for d in devices if host.file(f"{d}/vendor").content_string.strip() == "0x1b36"
    ]
    assert len(test_devices) == 1
    driver = host.run(f"readlink -f {test_devices[0]}/driver").stdout.strip()
    assert driver.endswith("/vfio-pci")
    assert host.file(f"{test_devices[0]}/iommu_group").is_symlink
    assert host.file("/dev/vfio/vfio").exists


def test_vfio_loads_from_the_initramfs(host):
    kernel = host.run("uname -r").stdout.strip()
    listing = host.run(f"lsinitramfs /boot/initrd.img-{kernel}").stdout
    assert "vfio-pci.ko" in listing or "vfio_pci.ko" in listing
    assert "etc/modprobe.d/sovdeploy-vfio.conf" in listing


def test_the_vfs_were_made_at_boot_with_their_settings(host):
    if not host.file("/sys/class/net/eth1").exists:
        version = host.backend.run_local("qemu-system-x86_64 --version").stdout.splitlines()[0]
        pytest.skip(f"no SR-IOV NIC in the VM: igb needs QEMU 8.0 or later, this is {version}")
    assert host.file("/sys/class/net/eth1/device/sriov_numvfs").content_string.strip() == "2"
    link = host.run("ip -d link show eth1").stdout
    for vf in (0, 1):
        line = next(x for x in link.splitlines() if x.strip().startswith(f"vf {vf} "))
        assert "trust on" in line
        assert "spoof checking off" in line
    boot_id = host.file("/proc/sys/kernel/random/boot_id").content_string.strip()
    journal = host.run(
        f"journalctl -b {boot_id} -u sovdeploy-sriov-vfs.service --no-pager -o cat"
    ).stdout
    assert "eth1: 2 VFs, trust on, spoofchk off" in journal


def test_the_host_was_rebooted_once(host):
    # The last boot is the role's reboot: the journal has exactly two boots.
    boots = host.run("journalctl --list-boots --no-pager -q").stdout.strip().splitlines()
    assert len(boots) == 2
