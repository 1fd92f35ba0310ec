"""The filters that build service URLs (plugins/filter/endpoints.py), through Ansible's
own templating, as the roles use them."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from sovdeploy.preview import load_plugins

HOSTVARS = {
    "ctl02": {"internal_address": "10.10.0.12"},
    "ctl01": {"internal_address": "10.10.0.11"},
    "ctl03": {"internal_address": "fd00::13"},
}


def _render(expression: str, **variables: Any) -> Any:
    load_plugins()
    templar = Templar(loader=DataLoader(), variables={"hostvars": HOSTVARS, **variables})
    return templar.template(expression)


def test_internal_addresses_follow_sorted_host_names() -> None:
    hosts = ["ctl03", "ctl01", "ctl02"]
    result = _render("{{ hosts | internal_addresses(hostvars) }}", hosts=hosts)
    assert result == ["10.10.0.11", "10.10.0.12", "fd00::13"]


def test_host_ports_bracket_ipv6() -> None:
    result = _render(
        "{{ hosts | internal_addresses(hostvars) | host_ports(11211) | join(',') }}",
        hosts=list(HOSTVARS),
    )
    assert result == "10.10.0.11:11211,10.10.0.12:11211,[fd00::13]:11211"


def test_rabbit_url_names_every_broker_with_encoded_credentials() -> None:
    url = _render(
        "{{ hosts | internal_addresses(hostvars) | rabbit_url('nova', secret, 'nova') }}",
        hosts=list(HOSTVARS),
        secret="p@ss/w:rd",
    )
    creds = "nova:p%40ss%2Fw%3Ard"
    assert url == (
        f"rabbit://{creds}@10.10.0.11:5672,{creds}@10.10.0.12:5672,{creds}@[fd00::13]:5672/nova"
    )


def test_rabbit_url_refuses_an_empty_group() -> None:
    with pytest.raises(AnsibleError, match="at least one broker"):
        _render("{{ [] | rabbit_url('nova', 'x', 'nova') }}")


def test_mysql_url() -> None:
    url = _render("{{ '10.10.0.10' | mysql_url('glance', 'a@b', 'glance') }}")
    assert url == "mysql+pymysql://glance:a%40b@10.10.0.10:3306/glance?charset=utf8mb4"


def _example_plans() -> dict[str, Any]:
    from pathlib import Path

    from sovdeploy.hardware import plan as hostplan
    from sovdeploy.inventory import load

    loaded = load(Path(__file__).resolve().parents[2] / "inventories/example-eu")
    return hostplan.plans(loaded.deployment, loaded.facts)


def test_every_nova_host_gets_the_deployments_aliases_once() -> None:
    aliases = _render("{{ accel_plans | accel_aliases }}", accel_plans=_example_plans())
    # gpu01 and gpu02 pass H100s through; gpu03 (MIG) and gpu04 (vGPU) have no alias.
    assert [a["name"] for a in aliases] == ["h100-sxm5-80gb"]
    assert _render("{{ {} | accel_aliases }}") == []


def test_the_sriov_physnets_of_every_host_once_each() -> None:
    plans = {
        "a": {"vfs": [{"nic": "p0", "physnet": "sriov-b"}, {"nic": "p1", "physnet": None}]},
        "b": {"vfs": [{"nic": "p0", "physnet": "sriov-a"}, {"nic": "p1", "physnet": "sriov-b"}]},
        "c": {},
    }
    assert _render("{{ plans | sriov_physnets }}", plans=plans) == ["sriov-a", "sriov-b"]
    assert _render("{{ {} | sriov_physnets }}") == []


def test_a_compute_host_gets_its_pci_vgpu_and_cpu_sections() -> None:
    plans = _example_plans()
    conf = _render(
        "{{ plan | nova_accel_conf(plans | accel_aliases, compute=true) }}",
        plan=plans["gpu01"],
        plans=plans,
    )
    assert conf["pci"]["report_in_placement"] is True
    assert {"vendor_id": "10de", "product_id": "2330"} in conf["pci"]["device_spec"]
    assert conf["pci"]["alias"][0]["name"] == "h100-sxm5-80gb"
    assert conf["filter_scheduler"] == {"pci_in_placement": True}
    assert conf["compute"]["cpu_dedicated_set"] == "2-55,58-111,114-167,170-223"
    vgpu = _render(
        "{{ plan | nova_accel_conf([], compute=true, mdev_types={'L40S-12C': 'nvidia-1012'}) }}",
        plan=plans["gpu04"],
    )
    assert vgpu["devices"] == {"enabled_mdev_types": ["nvidia-1012"]}
    # Its own resource class, which the tenancy phase's vgpu.L40S-12C flavor asks for.
    assert vgpu["mdev_nvidia-1012"] == {"mdev_class": "CUSTOM_VGPU_L40S_12C"}
    assert "pci" in vgpu  # its SR-IOV ports' device_spec


def test_a_controller_gets_only_the_aliases() -> None:
    plans = _example_plans()
    conf = _render("{{ {} | nova_accel_conf(plans | accel_aliases, compute=false) }}", plans=plans)
    assert set(conf) == {"pci", "filter_scheduler"}
    assert set(conf["pci"]) == {"alias"}
    assert _render("{{ {} | nova_accel_conf([], compute=false) }}") == {}


def test_vgpu_type_names_resolve_to_the_hosts_mdev_types() -> None:
    offered = ["nvidia-1012\tNVIDIA L40S-12C", "nvidia-1013\tNVIDIA L40S-24C"]
    resolved = _render("{{ ['L40S-12C', 'L40S-4C'] | mdev_type_ids(offered) }}", offered=offered)
    assert resolved == {"L40S-12C": "nvidia-1012", "L40S-4C": None}


def test_a_list_of_mappings_is_written_once_per_mapping() -> None:
    from pathlib import Path

    template = (
        Path(__file__).resolve().parents[2] / "roles/service_setup/templates/ini.j2"
    ).read_text()
    text = _render(
        template,
        ansible_managed="managed",
        service_setup_config={
            "sections": {
                "pci": {
                    "alias": [{"name": "a", "vendor_id": "10de"}, {"name": "b"}],
                    "report_in_placement": True,
                },
                "filter_scheduler": {"enabled_filters": ["A", "B"]},
            }
        },
    )
    assert 'alias = {"name": "a", "vendor_id": "10de"}\nalias = {"name": "b"}\n' in text
    assert "report_in_placement = true" in text
    assert "enabled_filters = A,B" in text


def test_ovn_runs_the_userspace_datapath_on_dpdk_hosts_and_hosts_sriov_ports() -> None:
    """The ovn role's defaults, templated as the role does, over example-eu's plans."""
    from pathlib import Path

    import yaml

    role = Path(__file__).resolve().parents[2] / "roles/ovn"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    cms = yaml.safe_load((role / "vars/main.yml").read_text())["_ovn_external_ids"][
        "ovn-cms-options"
    ]
    plans = _example_plans()

    def value(expression: str, host: str, **extra: Any) -> Any:
        return _render(expression, accel_plans=plans, inventory_hostname=host, **extra)

    assert value(defaults["ovn_datapath_type"], "net01") == "netdev"
    assert value(defaults["ovn_datapath_type"], "gpu01") == "system"
    physnets = value(defaults["ovn_sriov_physnets"], "net01")
    assert physnets == ["physnet-sriov"]
    gateway = value(cms, "net01", ovn_sriov_physnets=physnets, _ovn_is_gateway=True)
    assert gateway == "enable-chassis-as-gw,enable-chassis-as-extport-host"
    assert value(cms, "gpu01", ovn_sriov_physnets=physnets, _ovn_is_gateway=False) == ""
    assert (
        value(cms, "net01", ovn_sriov_physnets=[], _ovn_is_gateway=True) == "enable-chassis-as-gw"
    )


def test_apt_pins_name_each_deb_at_its_manifest_version() -> None:
    from sovdeploy.kubernetes import artifacts as mirror

    artifacts = mirror.role_vars(mirror.load())["kubernetes_artifacts"]
    pins = _render("{{ ['iptables', 'conntrack'] | apt_pins(a) }}", a=artifacts)
    assert pins == [
        f"iptables={artifacts['iptables']['version']}",
        f"conntrack={artifacts['conntrack']['version']}",
    ]
    # containerd is built from pinned source, no longer Debian's.
    with pytest.raises(AnsibleError, match="'containerd' is a file, not a deb"):
        _render("{{ ['containerd'] | apt_pins(a) }}", a=artifacts)
    with pytest.raises(AnsibleError, match="'kubeadm' is a file, not a deb"):
        _render("{{ ['kubeadm'] | apt_pins(a) }}", a=artifacts)
    with pytest.raises(AnsibleError, match="has no 'dockerd'"):
        _render("{{ ['dockerd'] | apt_pins(a) }}", a=artifacts)


def test_pinned_image_is_named_by_its_upstream_name_or_a_registry_and_its_digest() -> None:
    from sovdeploy.kubernetes import artifacts as mirror

    artifacts = mirror.role_vars(mirror.load())["kubernetes_artifacts"]
    digest = artifacts["pause"]["sha256"]
    # The hosts' name: containerd's registry mirror sends the pull to the deployment's.
    assert _render("{{ 'pause' | pinned_image(a) }}", a=artifacts) == (
        f"registry.k8s.io/pause@sha256:{digest}"
    )
    image = _render("{{ 'pause' | pinned_image(a, 'registry.example/') }}", a=artifacts)
    assert image == f"registry.example/registry.k8s.io/pause@sha256:{digest}"
    with pytest.raises(AnsibleError, match="'kubeadm' is a file, not an image"):
        _render("{{ 'kubeadm' | pinned_image(a) }}", a=artifacts)


def test_debs_for_names_the_manifests_debs_of_each_kind_of_host() -> None:
    from sovdeploy.kubernetes import artifacts as mirror

    artifacts = mirror.role_vars(mirror.load())["kubernetes_artifacts"]
    every = _render("{{ a | debs_for('k8s') }}", a=artifacts)
    assert set(every) == {
        "iptables",
        "conntrack",
        "socat",
        "ethtool",
    }
    control = set(_render("{{ a | debs_for('control') }}", a=artifacts))
    assert control == {"haproxy", "keepalived", "rsyslog"}
