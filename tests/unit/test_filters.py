"""The filters that build service URLs (plugins/filter/endpoints.py), through Ansible's
own templating, as the roles use them."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from sovdeploy.render import load_plugins

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
