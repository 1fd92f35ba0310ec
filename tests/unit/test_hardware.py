"""Discovery, the accelerator catalogue, derived host plans and the hardware preflight.

Discovery and preflight run against the recorded sysfs trees in tests/sysfs (see
record.py there for what each one is) and against this machine's own /sys.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sovdeploy import catalogue
from sovdeploy.cli import main
from sovdeploy.errors import InvalidInventoryError
from sovdeploy.hardware import plan as hostplan
from sovdeploy.hardware.facts import drift, suggest
from sovdeploy.hostside import sysfs
from sovdeploy.inventory import load
from sovdeploy.model import Host

ROOT = Path(__file__).resolve().parents[2]


def _tenancy(inventory):
    """The plans, flavors and networks, from the model and saved facts as the phases pass them."""
    loaded = load(inventory)
    return hostplan.tenancy_vars(loaded.deployment, loaded.facts)


TREES = ROOT / "tests" / "sysfs"
ACCEL = ROOT / "tests" / "inventories" / "accel"


def tree(name: str) -> dict:
    return sysfs.read(TREES / name)


# -- the recorded trees and the reader ----------------------------------------------


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + str(path.readlink())
        elif path.is_file():
            out[rel] = path.read_text()
    return out


def test_the_recorded_trees_are_what_record_py_writes(tmp_path):
    sys.path.insert(0, str(TREES))
    try:
        import record
    finally:
        sys.path.remove(str(TREES))
    for t in record.trees():
        record.write(t, tmp_path / t.name)
        assert _snapshot(tmp_path / t.name) == _snapshot(TREES / t.name), t.name


def test_the_reader_reads_a_recorded_hgx_host():
    facts = tree("gpu-h100")
    gpus = [d for d in facts["pci"] if d["id"] == "10de:2330"]
    assert len(gpus) == 8
    assert {d["numa_node"] for d in gpus} == {0, 1}
    assert len({d["iommu_group"] for d in gpus}) == 8
    assert all(d["driver"] == "vfio-pci" for d in gpus)
    port = next(d for d in facts["pci"] if "ens1f0np0" in d["net"])
    assert (port["id"], port["sriov_totalvfs"], port["numa_node"]) == ("15b3:101d", 127, 0)
    assert facts["cpu_vendor"] == "intel"
    assert facts["iommu"] == {
        "enabled": True,
        "kind": "intel",
        "units": ["dmar0", "dmar1"],
        "groups": facts["iommu"]["groups"],
    }
    assert len(facts["cpus"]) == 64
    assert set(facts["hugepages"]) == {"2048", "1048576"}


def test_the_reader_reads_this_machine():
    facts = sysfs.read("/sys")
    assert len(facts["cpus"]) == os.cpu_count()
    assert facts["pci"], "this machine has PCI devices"
    assert all(len(d["id"]) == 9 for d in facts["pci"])
    with Path("/proc/cpuinfo").open() as cpuinfo:
        vendor_line = next(line for line in cpuinfo if line.startswith("vendor_id"))
    expected = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(
        vendor_line.split(":")[1].strip()
    )
    assert facts["cpu_vendor"] == expected


def test_the_reader_runs_as_a_script_as_ansible_runs_it(tmp_path):
    import subprocess

    out = subprocess.run(
        # -S: no site-packages, so no sovdeploy either: the reader is standard library only.
        [sys.executable, "-S", sysfs.__file__, "--root", str(TREES / "dpdk-e810")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # no sovdeploy package on the path: standard library only
        env={"PATH": os.environ["PATH"]},
    )
    facts = json.loads(out.stdout)
    assert facts["cpu_vendor"] == "amd"
    bad = subprocess.run(
        [sys.executable, sysfs.__file__, "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "not a sysfs tree" in bad.stderr


@pytest.mark.parametrize(
    ("text", "cpus"), [("0-3,8,10-11", [0, 1, 2, 3, 8, 10, 11]), ("5", [5]), ("", [])]
)
def test_cpu_lists_round_trip(text, cpus):
    assert sysfs.parse_cpulist(text) == cpus
    assert sysfs.format_cpulist(cpus) == text


# -- the catalogue ------------------------------------------------------------------


def test_the_catalogue_knows_the_models_operators_buy():
    cat = catalogue.load()
    names = {m.name for m in cat.gpus.values()}
    for model in ("H100", "H200", "A100", "L40S", "L4 ", "MI300X"):
        assert any(model in n + " " for n in names), model
    h100 = cat.gpu("10de:2330")
    assert h100 is not None
    assert set(h100.modes) == {"passthrough", "vgpu", "mig"}
    assert h100.mig_vgpu_type("1g.10gb") == "H100XM-1-10C"
    assert "H100XM-10C" in h100.vgpu_types()
    mi300x = cat.gpu("1002:74a1")
    assert mi300x is not None
    assert [str(m) for m in mi300x.modes] == ["passthrough"]
    assert mi300x.host_drivers == ("amdgpu",)
    assert cat.nic("15b3:101d").max_vfs == 127
    assert cat.nic("8086:159b").dpdk_driver == "vfio-pci"


# -- derived plans ------------------------------------------------------------------


def _host(name: str, inventory: Path = ROOT / "inventories" / "example-eu") -> Host:
    return next(h for h in load(inventory).deployment.hosts if h.name == name)


def test_a_passthrough_gpu_host_gets_vfio_and_nova_pci_settings():
    plan = hostplan.plan(_host("gpu01"), catalogue.load())
    assert plan.kernel_args[:3] == ["intel_iommu=on", "iommu=pt", "vfio-pci.ids=10de:2330"]
    assert plan.early_modules == ["vfio", "vfio_iommu_type1", "vfio_pci"]
    assert "nouveau" in plan.blacklist
    assert "nvidia" in plan.blacklist
    # 2 NUMA nodes x 56 cores x 2 threads, 2 cores a node for the host
    assert sysfs.format_cpulist(plan.cpus.reserved) == "0-1,56-57,112-113,168-169"
    assert plan.nova["compute"]["cpu_dedicated_set"] == "2-55,58-111,114-167,170-223"
    assert "isolcpus=2-55,58-111,114-167,170-223" in plan.kernel_args
    pci = plan.nova["pci"]
    assert {"vendor_id": "10de", "product_id": "2330"} in pci["device_spec"]
    assert {"devname": "ens1f0np0", "physical_network": "physnet-sriov"} in pci["device_spec"]
    assert pci["alias"] == [
        {
            "name": "h100-sxm5-80gb",
            "vendor_id": "10de",
            "product_id": "2330",
            "device_type": "type-PCI",
            "numa_policy": "preferred",
        }
    ]
    assert pci["report_in_placement"] is True
    assert "PciPassthroughFilter" in plan.nova["filters"]
    assert plan.neutron_sriov["physical_device_mappings"] == (
        "physnet-sriov:ens1f0np0,physnet-sriov:ens1f1np1"
    )
    assert [(v.nic, v.count) for v in plan.vfs] == [("ens1f0np0", 16), ("ens1f1np1", 16)]


def test_vgpu_and_mig_hosts_keep_the_vgpu_driver_and_name_their_types():
    cat = catalogue.load()
    mig = hostplan.plan(_host("gpu03"), cat)
    assert mig.nova["devices"]["enabled_mdev_types"] == ["H100XM-1-10C"]
    assert mig.blacklist == ["nouveau"]
    assert not mig.vfio_ids
    vgpu = hostplan.plan(_host("gpu04"), cat)
    assert vgpu.nova["devices"]["enabled_mdev_types"] == ["L40S-12C"]
    assert vgpu.nova["devices"]["mdev_classes"] == {"L40S-12C": "CUSTOM_VGPU_L40S_12C"}
    assert vgpu.kernel_args[0] == "amd_iommu=on"


def test_a_dpdk_host_gets_pmd_cores_on_its_nics_numa_node():
    plan = hostplan.plan(_host("net1", ACCEL), catalogue.load())
    # AMD, 2 nodes x 8 cores x 2 threads: node 1 holds cores 8-15 (siblings 24-31);
    # core 8 stays with the host, cores 9 and 10 run PMD threads.
    assert sysfs.format_cpulist(plan.cpus.pmd) == "9-10,25-26"
    assert plan.ovs_dpdk["pmd-cpu-mask"] == hex((1 << 9) | (1 << 10) | (1 << 25) | (1 << 26))
    assert plan.ovs_dpdk["dpdk-socket-mem"] == "0,1024"
    assert plan.ovs_dpdk["ports"] == {"ens2f0np0": "vfio-pci", "ens2f1np1": "vfio-pci"}
    assert plan.hugepages == {"size": "1G", "count": 8}
    assert "default_hugepagesz=1G" in plan.kernel_args
    assert "hugepages=8" in plan.kernel_args
    assert not plan.cpus.guest  # a network host runs no guests
    assert not plan.nova


def test_flavors_follow_the_compute_hosts_hardware(accel):
    """GPU flavors per alias in powers of two up to the most a host has; a vGPU flavor per
    type; a DPDK flavor where a compute host runs OVS-DPDK; sizes from flavor_size."""
    hosts = accel / "hosts.yml"
    hosts.write_text(
        hosts.read_text().replace(
            "gpu1: {ansible_host: 192.0.2.11}",
            ("gpu1: {ansible_host: 192.0.2.11}\n        net1: {}"),
        )
    )
    settings = accel / "group_vars" / "all" / "sovdeploy.yml"
    data = yaml.safe_load(settings.read_text())
    data["sovdeploy_flavor_size"] = {"vcpus": 4, "ram_mb": 16384, "disk_gb": 40}
    settings.write_text(yaml.safe_dump(data))
    flavors = {f["name"]: f for f in _tenancy(accel)["accel_flavors"]}
    assert list(flavors) == [
        "gpu.h100-sxm5-80gb.x1",
        "gpu.h100-sxm5-80gb.x2",
        "gpu.h100-sxm5-80gb.x4",
        "dpdk.1g",
    ]
    x4 = flavors["gpu.h100-sxm5-80gb.x4"]
    assert (x4["vcpus"], x4["ram"], x4["disk"]) == (16, 65536, 40)
    assert x4["extra_specs"] == {"pci_passthrough:alias": "h100-sxm5-80gb:4"}
    assert flavors["dpdk.1g"]["extra_specs"] == {
        "hw:cpu_policy": "dedicated",
        "hw:mem_page_size": "1GB",
    }
    _set(
        accel,
        "gpu1",
        {"gpus": [{"pci_id": "10de:26b9", "count": 2, "mode": "vgpu", "profile": "L40S-12C"}]},
    )
    flavors = {f["name"]: f for f in _tenancy(accel)["accel_flavors"]}
    assert flavors["vgpu.L40S-12C"]["extra_specs"] == {"resources:CUSTOM_VGPU_L40S_12C": "1"}
    assert not [n for n in flavors if n.startswith("gpu.")]


def test_discovered_topology_replaces_the_declared_one():
    host = _host("net1", ACCEL)
    plan = hostplan.plan(host, catalogue.load(), tree("dpdk-e810"))
    assert plan.topology.source == "discovered"
    assert sysfs.format_cpulist(plan.cpus.pmd) == "9-10,25-26"


def test_kubernetes_workers_keep_their_gpus_for_pods():
    plan = hostplan.plan(_host("k8s-wk01"), catalogue.load())
    assert not plan.vfio_ids
    assert not plan.nova
    assert [v.count for v in plan.vfs] == [16, 16]


def test_validate_shows_each_accelerated_hosts_plan():
    result = CliRunner().invoke(main, ["validate", "-i", str(ROOT / "inventories/example-eu")])
    assert result.exit_code == 0, result.output
    for host in ("gpu01", "gpu02", "gpu03", "gpu04", "net01", "net02", "k8s-wk01"):
        assert f"{host}: derived plan" in result.output
    assert "ctl01: derived plan" not in result.output
    out = CliRunner().invoke(
        main, ["validate", "--json", "-i", str(ROOT / "inventories/example-eu")]
    )
    plans = json.loads(out.output)["plans"]
    assert plans["gpu01"]["cmdline"].startswith("intel_iommu=on iommu=pt vfio-pci.ids=10de:2330")
    assert plans["net01"]["ovs_dpdk"]["dpdk-socket-mem"] == "0,1024"


# -- discovery against an inventory ---------------------------------------------------


@pytest.fixture
def accel(tmp_path) -> Path:
    dest = tmp_path / "accel"
    shutil.copytree(ACCEL, dest)
    return dest


def discover(inventory: Path, host: str, tree_name: str):
    return CliRunner().invoke(
        main,
        ["discover", "-i", str(inventory), "--host", host, "--sysfs-root", str(TREES / tree_name)],
    )


def test_discover_prints_a_host_and_suggests_its_host_vars():
    result = CliRunner().invoke(main, ["discover", "--sysfs-root", str(TREES / "gpu-h100")])
    assert result.exit_code == 0, result.output
    assert "NVIDIA H100 SXM5 80GB" in result.output
    assert "IOMMU on (intel, 15 groups)" in result.output
    block = yaml.safe_load(result.output[result.output.index("---") :])["sovdeploy_hardware"]
    assert block["gpus"] == [{"pci_id": "10de:2330", "count": 8, "mode": "passthrough"}]
    assert block["cpu"] == {
        "vendor": "intel",
        "numa_nodes": 2,
        "cores_per_node": 16,
        "threads_per_core": 2,
    }
    assert block["memory_gib"] == 1024
    assert {n["name"] for n in block["nics"]} == {"ens1f0np0", "ens1f1np1"}


def test_a_suggested_block_is_a_valid_declaration(accel):
    facts = tree("gpu-h100")
    (accel / "host_vars" / "gpu1.yml").write_text(
        yaml.safe_dump({"sovdeploy_hardware": suggest(facts, catalogue.load())})
    )
    host = _host("gpu1", accel)
    assert list(drift(host, facts, catalogue.load())) == []


def test_discover_keeps_the_facts_and_validate_uses_them(accel):
    result = discover(accel, "net1", "dpdk-e810")
    assert result.exit_code == 0, result.output
    assert (accel / ".sovdeploy/discovery/net1.json").is_file()
    suggestion = yaml.safe_load((accel / ".sovdeploy/discovery/net1.host_vars.yml").read_text())
    assert suggestion["sovdeploy_hardware"]["cpu"]["vendor"] == "amd"
    out = CliRunner().invoke(main, ["validate", "-i", str(accel)])
    assert out.exit_code == 0, out.output
    assert "net1: derived plan (CPU layout discovered)" in out.output


def test_discover_reports_drift_from_the_inventory(accel):
    result = discover(accel, "gpu1", "gpu-h100")  # 8 GPUs where the inventory says 4
    assert result.exit_code == 0, result.output
    assert "[discover.drift]" in result.output
    assert "declares 4 GPU(s) 10de:2330, sysfs has 8" in result.output


def test_discover_names_only_inventory_hosts(accel):
    result = discover(accel, "gpu9", "gpu-h100")
    assert result.exit_code == 2
    assert "not hosts of" in result.output


# -- the preflight's refusals -------------------------------------------------------


def _set(inventory: Path, host: str, hardware: dict) -> None:
    path = inventory / "host_vars" / f"{host}.yml"
    data = yaml.safe_load(path.read_text())
    data["sovdeploy_hardware"].update(hardware)
    path.write_text(yaml.safe_dump(data))


def _refusal(inventory: Path, code: str) -> str:
    with pytest.raises(InvalidInventoryError) as caught:
        load(inventory)
    messages = [f"{f.message} | {f.hint}" for f in caught.value.findings if f.code == code]
    assert messages, [f.code for f in caught.value.findings]
    return "\n".join(messages)


def test_refuses_a_gpu_sharing_its_iommu_group(accel):
    assert discover(accel, "gpu1", "gpu-h100-shared-group").exit_code == 2
    text = _refusal(accel, "hardware.iommu_group")
    assert "GPU 0000:2a:00.0 (10de:2330) shares IOMMU group 21 with 0000:2a:00.1" in text
    assert "ACS" in text
    # The PCIe bridge sharing group 20 with the GPU at 0000:18:00.0 is accepted.
    assert "0000:18:00.0" not in text


def test_refuses_passthrough_with_the_iommu_off(accel):
    _set(
        accel,
        "gpu1",
        {
            "gpus": [{"pci_id": "10de:26b9", "count": 2}],
            "memory_gib": 256,
            "cpu": {"vendor": "intel", "numa_nodes": 1, "cores_per_node": 16},
        },
    )
    assert discover(accel, "gpu1", "iommu-off").exit_code == 2
    text = _refusal(accel, "hardware.iommu_off")
    assert "gpu1: the IOMMU is off" in text
    assert "VT-d" in text


def test_discover_without_an_inventory_names_what_the_preflight_refuses():
    """The rules that need no inventory are the preflight's own, on this path too."""
    shared = CliRunner().invoke(
        main, ["discover", "--sysfs-root", str(TREES / "gpu-h100-shared-group")]
    )
    assert shared.exit_code == 2, shared.output
    assert "[hardware.iommu_group]" in shared.output
    assert "GPU 0000:2a:00.0 (10de:2330) shares IOMMU group 21 with 0000:2a:00.1" in shared.output
    off = CliRunner().invoke(main, ["discover", "--sysfs-root", str(TREES / "iommu-off")])
    assert off.exit_code == 2, off.output
    assert "[hardware.iommu_off]" in off.output
    as_json = CliRunner().invoke(
        main, ["discover", "--json", "--sysfs-root", str(TREES / "gpu-h100-shared-group")]
    )
    found = json.loads(as_json.output)["findings"]
    # One: the GPU at 0000:18:00.0 shares its group only with a bridge, which is accepted.
    assert [(f["code"], f["value"]) for f in found] == [("hardware.iommu_group", "0000:2a:00.1")]


def test_discover_without_an_inventory_names_sr_iov_switched_off(tmp_path):
    copy = tmp_path / "sys"
    shutil.copytree(TREES / "gpu-h100", copy, symlinks=True)
    (copy / "bus/pci/devices/0000:31:00.1/sriov_totalvfs").write_text("0\n")
    result = CliRunner().invoke(main, ["discover", "--json", "--sysfs-root", str(copy)])
    assert result.exit_code == 2, result.output
    found = json.loads(result.output)["findings"]
    assert [(f["code"], f["value"]) for f in found] == [("hardware.sriov_off", "ens1f1np1")]
    assert "offers no VFs although its model has SR-IOV" in found[0]["message"]


def test_discover_names_the_part_of_sysfs_a_tree_lacks(tmp_path):
    copy = tmp_path / "sys"
    shutil.copytree(TREES / "gpu-h100", copy, symlinks=True)
    shutil.rmtree(copy / "devices/system/cpu")
    result = CliRunner().invoke(main, ["discover", "--sysfs-root", str(copy)])
    assert result.exit_code == 2, result.output
    assert "no devices/system/cpu" in result.output
    assert "bus/pci/devices" not in result.output


def test_refuses_more_vfs_than_the_port_offers(accel):
    _set(accel, "gpu1", {"nics": [{"name": "ens1f0np0", "pci_id": "15b3:101d", "sriov_vfs": 200}]})
    text = _refusal(accel, "hardware.vf_count")  # from the catalogue, before discovery
    assert "ens1f0np0 is asked for 200 VFs but offers 127" in text
    assert discover(accel, "gpu1", "gpu-h100-shared-group").exit_code == 2
    assert "(sriov_totalvfs)" in _refusal(accel, "hardware.vf_count")


def test_refuses_hugepages_the_memory_cannot_hold(accel):
    _set(
        accel,
        "net1",
        {"dpdk": {"hugepage_size": "1G", "hugepages": 120, "pmd_cores": 2, "nics": ["ens2f0np0"]}},
    )
    text = _refusal(accel, "hardware.hugepages")
    assert "120 x 1G hugepages (120 GiB) leave the host too little of its 128 GiB" in text
    assert "at most 115 GiB" in text


def test_refuses_pmd_cores_overlapping_host_or_guest_cores(accel):
    _set(
        accel,
        "net1",
        {
            "cpu": {
                "vendor": "amd",
                "numa_nodes": 2,
                "cores_per_node": 8,
                "reserved_cpus": "0-1,16-17",
            },
            "dpdk": {"hugepages": 8, "pmd_cores": 1, "pmd_cpus": "1,9", "nics": ["ens2f0np0"]},
        },
    )
    text = _refusal(accel, "hardware.cpu_overlap")
    assert "PMD CPUs 1 are also host-reserved CPUs" in text


def test_refuses_a_dpdk_nic_on_a_numa_node_without_pmd(accel):
    _set(
        accel,
        "net1",
        {
            "dpdk": {
                "hugepages": 8,
                "pmd_cores": 1,
                "pmd_cpus": "2,18",
                "nics": ["ens2f0np0", "ens2f1np1"],
            }
        },
    )
    text = _refusal(accel, "hardware.dpdk_numa")
    assert "DPDK NIC ens2f0np0 is on NUMA node 1, which has no PMD core" in text


def test_refuses_more_pmd_cores_than_a_node_has(accel):
    _set(accel, "net1", {"dpdk": {"hugepages": 8, "pmd_cores": 8, "nics": ["ens2f0np0"]}})
    text = _refusal(accel, "hardware.pmd_cores")
    assert "NUMA node 1 has 7 cores left after the host-reserved ones, for 8 PMD cores" in text


def test_refuses_cpus_the_host_does_not_have(accel):
    _set(
        accel,
        "net1",
        {"dpdk": {"hugepages": 8, "pmd_cores": 1, "pmd_cpus": "9,99", "nics": ["ens2f0np0"]}},
    )
    assert "pmd_cpus names CPUs 99 the host does not have" in _refusal(
        accel, "hardware.cpu_unknown"
    )


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        (
            {"pci_id": "1002:74a1", "count": 8, "mode": "vgpu", "profile": "x"},
            "AMD Instinct MI300X 192GB (1002:74a1) does not support vgpu",
        ),
        (
            {"pci_id": "10de:26b9", "count": 2, "mode": "mig", "profile": "1g.12gb"},
            "NVIDIA L40S 48GB (10de:26b9) does not support mig",
        ),
        (
            {"pci_id": "10de:2330", "count": 4, "mode": "mig", "profile": "1g.5gb"},
            "in mig mode has no profile '1g.5gb'",
        ),
    ],
)
def test_refuses_a_mode_the_device_does_not_support(accel, gpu, expected):
    _set(accel, "gpu1", {"gpus": [gpu]})
    assert expected in _refusal(accel, "hardware.gpu_mode")


def test_refuses_a_gpu_the_catalogue_does_not_know(accel):
    _set(accel, "gpu1", {"gpus": [{"pci_id": "10de:ffff", "count": 1}]})
    text = _refusal(accel, "hardware.unknown_gpu")
    assert "GPU 10de:ffff is not in the accelerator catalogue" in text
    assert "sovdeploy_catalogue.gpus" in text


def test_the_inventory_adds_a_model_the_catalogue_lacks(accel):
    _set(accel, "gpu1", {"gpus": [{"pci_id": "10de:ffff", "count": 2}]})
    settings = accel / "group_vars" / "all" / "sovdeploy.yml"
    data = yaml.safe_load(settings.read_text())
    data["sovdeploy_catalogue"] = {
        "gpus": {
            "10de:ffff": {
                "name": "NVIDIA Future 96GB",
                "vendor": "nvidia",
                "memory_gb": 96,
                "modes": ["passthrough"],
                "host_drivers": ["nouveau", "nvidia"],
            }
        }
    }
    settings.write_text(yaml.safe_dump(data))
    loaded = load(accel)
    plan = hostplan.plans(loaded.deployment, loaded.facts)["gpu1"]
    assert "vfio-pci.ids=10de:ffff" in plan["kernel_args"]
    assert plan["blacklist"] == ["nouveau", "nvidia"]
    assert plan["nova"]["pci"]["alias"] == [
        {
            "name": "future-96gb",
            "vendor_id": "10de",
            "product_id": "ffff",
            "device_type": "type-PCI",
            "numa_policy": "preferred",
        }
    ]
    # An entry is checked as the shipped ones are: a mode it does not list is refused.
    _set(accel, "gpu1", {"gpus": [{"pci_id": "10de:ffff", "count": 2, "mode": "vgpu"}]})
    assert "does not support vgpu" in _refusal(accel, "hardware.gpu_mode")


def test_refuses_a_dpdk_host_without_a_cpu_layout(accel):
    path = accel / "host_vars" / "net1.yml"
    data = yaml.safe_load(path.read_text())
    del data["sovdeploy_hardware"]["cpu"]
    path.write_text(yaml.safe_dump(data))
    assert "cannot be placed" in _refusal(accel, "hardware.cpu_missing")
    # Discovery supplies the layout.
    assert discover(accel, "net1", "dpdk-e810").exit_code == 0
    load(accel)


def test_refusals_point_at_the_inventory_line(accel):
    _set(accel, "gpu1", {"gpus": [{"pci_id": "10de:ffff", "count": 1}]})
    with pytest.raises(InvalidInventoryError) as caught:
        load(accel)
    finding = next(f for f in caught.value.findings if f.code == "hardware.unknown_gpu")
    assert finding.file == str(accel / "host_vars" / "gpu1.yml")
    assert finding.line is not None
    assert finding.key == "hosts.gpu1.sovdeploy_hardware.gpus.0.pci_id"


def _networks(inventory: Path, networks: dict) -> None:
    settings = inventory / "group_vars" / "all" / "sovdeploy.yml"
    data = yaml.safe_load(settings.read_text())
    data["sovdeploy_sriov_networks"] = networks
    settings.write_text(yaml.safe_dump(data))


def test_an_sriov_network_goes_to_the_tenancy_phase(accel):
    _networks(
        accel,
        {"sriov-a": {"physnet": "physnet-sriov", "vlan": 101, "cidr": "10.99.0.0/24"}},
    )
    (network,) = _tenancy(accel)["accel_networks"]
    assert network == {
        "name": "sriov-a",
        "physnet": "physnet-sriov",
        "type": "vlan",
        "vlan": 101,
        "cidr": "10.99.0.0/24",
        "gateway": None,
        "dhcp": True,
        "shared": True,
    }


def test_refuses_an_sriov_network_on_a_physnet_without_vfs(accel):
    _networks(accel, {"sriov-x": {"physnet": "physnet-x", "vlan": 5, "cidr": "10.99.0.0/24"}})
    text = _refusal(accel, "hardware.sriov_physnet")
    assert "SR-IOV network sriov-x is on physnet physnet-x, where no compute host has VFs" in text
    assert "physnet-sriov" in text


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ({"physnet": "physnet-sriov", "cidr": "10.99.0.0/24"}, "a vlan network needs its vlan ID"),
        (
            {"physnet": "physnet-sriov", "type": "flat", "vlan": 5, "cidr": "10.99.0.0/24"},
            "a flat network has no vlan ID",
        ),
        (
            {"physnet": "physnet-sriov", "vlan": 5, "cidr": "10.99.0.0/24", "gateway": "10.1.0.1"},
            "gateway 10.1.0.1 is not in 10.99.0.0/24",
        ),
    ],
)
def test_refuses_an_sriov_network_that_cannot_be(accel, network, expected):
    _networks(accel, {"sriov-x": network})
    with pytest.raises(InvalidInventoryError) as caught:
        load(accel)
    assert any(expected in f.message for f in caught.value.findings), caught.value.findings
