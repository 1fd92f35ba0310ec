"""HAProxy serves each API port with TLS from the deployment's CA, and MariaDB as TCP."""

import pytest

PORTS = [5000, 9292, 8778, 8774, 9696, 8776, 443, 6080]


def _vip(host):
    return host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"][
        "address"
    ]


@pytest.mark.parametrize("port", PORTS)
def test_api_port_speaks_tls_with_a_trusted_certificate(host, port):
    # No backend runs in this scenario: HAProxy itself answers 503 over verified TLS.
    vip = _vip(host)
    script = (
        "import urllib.request, urllib.error\n"
        "try:\n"
        f"    urllib.request.urlopen('https://{vip}:{port}/', timeout=10)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    result = host.run("python3 -c %s", script)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "503"


def test_database_port_is_plain_tcp(host):
    assert host.socket(f"tcp://{_vip(host)}:3306").is_listening


def test_no_keepalived_with_one_host(host):
    assert not host.service("keepalived").is_running
