"""Fixtures shared by the roles' molecule verifiers (testinfra): the host's internal
address, and the OpenStack CLI as the admin of the scenario's Keystone (the test
password is in .config/molecule/group_vars), through HAProxy's TLS endpoint."""

import json

import pytest

ADMIN = {
    "OS_USERNAME": "admin",
    "OS_PASSWORD": "molecule-admin",
    "OS_PROJECT_NAME": "admin",
    "OS_USER_DOMAIN_NAME": "Default",
    "OS_PROJECT_DOMAIN_NAME": "Default",
    "OS_IDENTITY_API_VERSION": "3",
}


@pytest.fixture
def address(host):
    facts = host.ansible("setup", "gather_subset=network")["ansible_facts"]
    return facts["ansible_default_ipv4"]["address"]


@pytest.fixture
def openstack(host, address):
    """openstack(*args) runs `openstack ARGS -f json` on the host; returns the JSON.

    as_user={"OS_USERNAME": ..., ...} logs in as someone else than the admin.
    """

    def run(*args, parse=True, as_user=None):
        env = {**ADMIN, **(as_user or {}), "OS_AUTH_URL": f"https://{address}:5000/v3"}
        command = "env " + " ".join(f"{k}={v}" for k, v in env.items()) + " openstack "
        result = host.run(command + " ".join(args) + (" -f json" if parse else ""))
        assert result.rc == 0, result.stderr
        return json.loads(result.stdout) if parse else result.stdout

    return run


_GET = """
import json, sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))
try:
    r = urllib.request.urlopen(request, timeout=30)
except urllib.error.HTTPError as e:
    r = e
sys.stdout.write(str(r.status) + "\\n" + r.read().decode(errors="replace"))
"""


@pytest.fixture
def placement(openstack, http_get, address):
    """placement(path) GETs a Placement API path as the admin; returns the JSON."""

    def get(path):
        token = openstack("token", "issue")["id"]
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "placement latest"}
        status, body = http_get(f"https://{address}:8778{path}", headers)
        assert status == 200, body
        return json.loads(body)

    return get


@pytest.fixture
def http_get(host):
    """http_get(url, headers) fetches url from the host, which trusts the scenario's CA.

    Returns (status, body).
    """

    def get(url, headers=None):
        result = host.run("python3 -c %s %s %s", _GET, url, json.dumps(headers or {}))
        assert result.rc == 0, result.stderr
        status, _, body = result.stdout.partition("\n")
        return int(status), body

    return get
