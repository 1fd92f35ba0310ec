"""Filters that build the addresses and URLs every service role writes into its config.

The roles name their peers by inventory group; these turn a group into the strings
oslo.config expects, in one place: a sorted list of internal addresses, ``host:port``
lists (IPv6 in brackets), RabbitMQ transport URLs and MariaDB connection URLs. User
names and passwords are percent-encoded, so a secret with ``@`` or ``/`` in it still
yields a valid URL (and ``sovdeploy plan`` shows a secret's placeholder encoded there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from ansible.errors import AnsibleFilterError


def internal_addresses(hosts: Iterable[str], hostvars: Mapping[str, Any]) -> list[str]:
    """The ``internal_address`` of each host, in sorted host-name order."""
    return [str(hostvars[host]["internal_address"]) for host in sorted(hosts)]


def host_port(address: str, port: int | str) -> str:
    """``address:port``, with an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def host_ports(addresses: Iterable[str], port: int | str) -> list[str]:
    """``host_port`` of each address."""
    return [host_port(address, port) for address in addresses]


def _credentials(user: str, password: str) -> str:
    return f"{quote(str(user), safe='')}:{quote(str(password), safe='')}"


def rabbit_url(
    addresses: Iterable[str], user: str, password: str, vhost: str, port: int | str = 5672
) -> str:
    """An oslo.messaging transport URL naming every broker, for one user and vhost."""
    credentials = _credentials(user, password)
    brokers = ",".join(f"{credentials}@{hp}" for hp in host_ports(addresses, port))
    if not brokers:
        raise AnsibleFilterError("rabbit_url needs at least one broker address")
    return f"rabbit://{brokers}/{quote(str(vhost), safe='')}"


def mysql_url(address: str, user: str, password: str, database: str, port: int | str = 3306) -> str:
    """An SQLAlchemy URL for PyMySQL, in utf8mb4."""
    server = host_port(str(address), port)
    return f"mysql+pymysql://{_credentials(user, password)}@{server}/{database}?charset=utf8mb4"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "internal_addresses": internal_addresses,
            "host_port": host_port,
            "host_ports": host_ports,
            "rabbit_url": rabbit_url,
            "mysql_url": mysql_url,
        }
